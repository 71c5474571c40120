//! The Cal.com simulator as most tests start it: on a free loopback port, with
//! Cal.com's own rate limit, knowing the given API keys (any other `cal_` key gets
//! HTTP 401, as a revoked one does).

use calsync::simulate::{SimConfig, Simulator};

/// A simulator that knows `keys`, with `seed_event_types` event types per key.
pub async fn simulator(keys: &[&str], seed_event_types: usize) -> Simulator {
    Simulator::start(
        "127.0.0.1:0".parse().expect("a loopback address"),
        SimConfig {
            api_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            seed_event_types,
            ..SimConfig::default()
        },
    )
    .await
    .expect("starting the Cal.com simulator")
}
