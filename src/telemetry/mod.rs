//! Telemetry: every metric in one file (`metrics`), operator-visible events as types
//! (`events`), and the tracing setup (`logging`).

pub mod events;
pub mod logging;
pub mod metrics;
