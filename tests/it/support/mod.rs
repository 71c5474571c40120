//! Test harness: fresh databases per test on every backend, the simulator, the
//! binary with a clean environment and `calsync run` as a process, the one
//! config writer, log capture, the fault suite's rig and its TCP proxy, and
//! loopback helpers.

pub mod app;
pub mod binary;
pub mod browser;
pub mod config;
pub mod daemon;
pub mod db;
pub mod fault_rig;
pub mod logs;
pub mod net;
pub mod simulator;
pub mod tcp_proxy;
