//! calsync keeps a booking platform's services and their Cal.com event types in
//! agreement without ever losing the platform's data.
//!
//! (crate map: see the module list below)

pub mod calcom;
pub mod config;
pub mod domain;
pub mod reconcile;
pub mod schedule;
pub mod simulate;
pub mod store;
pub mod telemetry;
