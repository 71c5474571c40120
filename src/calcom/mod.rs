//! The only module that speaks HTTP/JSON to Cal.com (API v2). It never touches the
//! database and never imports `reconcile` or `store`.
//!
//! - [`wire`]: the JSON shapes and the boundary into domain types;
//! - [`client`]: requests, retries, the per-key budget, body limits, metrics;
//! - [`limit`]: the per-key limiter that honours Cal.com's 429 blocks.

pub mod client;
pub mod error;
pub mod limit;
pub mod wire;

pub use client::{AccountClient, CalcomClient, Endpoint, Listing};
pub use error::CalcomError;
pub use wire::{EventTypePatch, RecordError};
