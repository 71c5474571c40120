//! Test harness: fresh databases per test on every backend, the simulator, the
//! binary with a clean environment, the one config writer, log capture, the
//! fault suite's rig and its TCP proxy, loopback helpers.

pub mod app;
pub mod binary;
pub mod config;
pub mod db;
pub mod fault_rig;
pub mod logs;
pub mod net;
pub mod simulator;
pub mod tcp_proxy;
