//! Test harness: fresh databases per test on every backend, the simulator, helpers.

pub mod app;
pub mod browser;
pub mod daemon;
pub mod db;
pub mod net;
