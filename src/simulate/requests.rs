//! The log of `/v2` requests the simulator received, so tests can prove what a
//! client sent (and that it sent nothing while blocked). It records which user a
//! key belongs to, never the key itself.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One `/v2` request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    /// 1, 2, 3… in arrival order since start (not reset by clearing).
    pub seq: u64,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    pub method: String,
    /// Path including the query string.
    pub path: String,
    /// The user of the bearer key, when the key is known.
    pub user_id: Option<i64>,
    /// The status sent; 0 when the connection was dropped without a response.
    pub status: u16,
}

/// Oldest entries are dropped beyond this, so a long demo cannot grow without
/// bound (a benchmark of 100k requests fits easily).
const MAX_ENTRIES: usize = 500_000;

pub(crate) struct RequestLog {
    started: Instant,
    inner: Mutex<(u64, VecDeque<RequestLogEntry>)>,
}

impl RequestLog {
    pub fn new() -> Self {
        RequestLog {
            started: Instant::now(),
            inner: Mutex::new((0, VecDeque::new())),
        }
    }

    pub fn record(&self, method: &str, path: &str, user_id: Option<i64>, status: u16) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        let mut guard = self.lock();
        let (seq, entries) = &mut *guard;
        *seq += 1;
        if entries.len() == MAX_ENTRIES {
            entries.pop_front();
        }
        entries.push_back(RequestLogEntry {
            seq: *seq,
            at_ms,
            method: method.to_owned(),
            path: path.to_owned(),
            user_id,
            status,
        });
    }

    pub fn entries(&self) -> Vec<RequestLogEntry> {
        self.lock().1.iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.lock().1.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, VecDeque<RequestLogEntry>)> {
        // Appending cannot leave the log half-written, so a poisoned lock is usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
