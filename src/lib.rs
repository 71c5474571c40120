//! calsync keeps a booking platform's services and their Cal.com event types in
//! agreement without ever losing the platform's data.
//!
//! The platform's SQL database is the source of truth. Each pass lists every
//! Cal.com event type per account (API v2), compares them three-way with the
//! `services` table and the baseline both sides last agreed on, and then: imports
//! event types it does not know; pushes platform edits; keeps Cal.com-side edits
//! out of the platform, recording each new one as a PROTECTION event in the drift
//! ledger; and (when configured) pushes drifted services back.
//!
//! Data path and ownership:
//!
//! ```text
//! calcom (HTTP, wire types) ─┐                       ┌─ store (the only SQL)
//!                            ├─ reconcile::apply ────┤
//! domain (plain types) ◄─ reconcile::{diff, plan} (pure)
//! ```
//!
//! - [`domain`]: services, event types, money, fields, the write policy; no I/O.
//! - [`calcom`]: the only module that speaks to Cal.com; never touches the database.
//! - [`store`]: the only module with SQL; one transaction per account and pass.
//! - [`reconcile`]: load → diff → plan → apply → report.
//! - [`simulate`]: a Cal.com API v2 simulator for tests, demos and benchmarks.
//! - [`config`], [`cli`], [`app`], [`daemon`], [`http`], [`console`], [`schedule`],
//!   [`telemetry`]: configuration, commands, the service, its HTTP surface and
//!   operator console, logs and metrics.
//!
//! Invariants:
//! - no code path writes a business column of an existing service unless the
//!   operator's policy grants it ([`domain::OverwriteGrant`]);
//! - a service the platform set to `pending` is marked synced only if its values
//!   are still the ones pushed;
//! - every Cal.com value calsync does not apply, or pushes over, is in the drift
//!   ledger (written before the push);
//! - a partial or empty listing never orphans anything, and a missing event type
//!   is orphaned only when Cal.com answers 404 for it;
//! - secrets never reach logs, metrics or error messages.

pub mod app;
pub mod calcom;
pub mod cli;
pub mod config;
pub mod console;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod http;
pub mod reconcile;
pub mod schedule;
pub mod simulate;
pub mod store;
pub mod telemetry;
