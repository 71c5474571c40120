//! Telemetry.
pub mod metrics;
