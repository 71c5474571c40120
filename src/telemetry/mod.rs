//! Telemetry: every metric in one file (`metrics`), on labelled families that
//! cost little per series (`compact`), operator-visible events as types
//! (`events`), and the tracing setup (`logging`).

pub mod compact;
pub mod events;
pub mod logging;
pub mod metrics;
