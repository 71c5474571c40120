//! The integration test binary: every scenario runs against real servers
//! (SQLite, PostgreSQL, MariaDB) and the Cal.com simulator.

mod support;

mod calcom_client;
mod cli;
mod console;
mod daemon;
mod decisions;
mod faults;
mod fuzz;
mod reliability;
mod runbook;
mod scenarios;
mod security;
mod steady;
mod store;
mod three_way;
