//! Cal.com's v2 throttler: a fixed window of `limit` requests per credential;
//! the request that exceeds it starts a block during which every request is
//! refused. This file owns the counters and the `X-RateLimit-*-Default`
//! headers; it must never decide anything about authentication.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hyper::HeaderMap;
use hyper::header::HeaderValue;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub limit: u32,
    pub window: Duration,
    pub block: Duration,
}

/// What the throttler says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Whole seconds until the window resets or the block ends, rounded up.
    pub reset_secs: u64,
}

impl Verdict {
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit-default", HeaderValue::from(self.limit));
        headers.insert(
            "x-ratelimit-remaining-default",
            HeaderValue::from(self.remaining),
        );
        headers.insert(
            "x-ratelimit-reset-default",
            HeaderValue::from(self.reset_secs),
        );
    }
}

struct Bucket {
    window_start: Instant,
    hits: u32,
    blocked_until: Option<Instant>,
}

pub(crate) struct RateLimiter {
    inner: Mutex<(Limits, HashMap<String, Bucket>)>,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        RateLimiter {
            inner: Mutex::new((limits, HashMap::new())),
        }
    }

    /// New limits apply from now on, with every credential starting afresh.
    pub fn set_limits(&self, limits: Limits) {
        let mut inner = self.lock();
        *inner = (limits, HashMap::new());
    }

    /// Counts one request by `tracker` (a credential or a client IP).
    pub fn hit(&self, tracker: &str) -> Verdict {
        let now = Instant::now();
        let mut guard = self.lock();
        let (limits, buckets) = &mut *guard;
        let limits = *limits;
        if !buckets.contains_key(tracker) {
            buckets.insert(
                tracker.to_owned(),
                Bucket {
                    window_start: now,
                    hits: 0,
                    blocked_until: None,
                },
            );
        }
        let bucket = buckets.get_mut(tracker).expect("bucket inserted above");

        if let Some(until) = bucket.blocked_until {
            if now < until {
                return blocked(limits.limit, until - now);
            }
            // The block is over: the credential starts a fresh window.
            bucket.blocked_until = None;
            bucket.window_start = now;
            bucket.hits = 0;
        }
        if now.duration_since(bucket.window_start) >= limits.window {
            bucket.window_start = now;
            bucket.hits = 0;
        }
        bucket.hits = bucket.hits.saturating_add(1);
        if bucket.hits > limits.limit {
            bucket.blocked_until = Some(now + limits.block);
            return blocked(limits.limit, limits.block);
        }
        let window_left = (bucket.window_start + limits.window).saturating_duration_since(now);
        Verdict {
            allowed: true,
            limit: limits.limit,
            remaining: limits.limit - bucket.hits,
            reset_secs: ceil_secs(window_left),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Limits, HashMap<String, Bucket>)> {
        // Counters stay consistent even if a holder panicked.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn blocked(limit: u32, left: Duration) -> Verdict {
    Verdict {
        allowed: false,
        limit,
        remaining: 0,
        reset_secs: ceil_secs(left),
    }
}

/// Cal.com's storage rounds milliseconds up to whole seconds.
fn ceil_secs(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: u32) -> RateLimiter {
        RateLimiter::new(Limits {
            limit,
            window: Duration::from_secs(60),
            block: Duration::from_secs(30),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_over_the_limit_starts_a_block() {
        let rl = limiter(2);
        let first = rl.hit("k");
        assert!(first.allowed);
        assert_eq!((first.remaining, first.reset_secs), (1, 60));
        assert_eq!(rl.hit("k").remaining, 0);
        let third = rl.hit("k");
        assert!(!third.allowed);
        assert_eq!((third.remaining, third.reset_secs), (0, 30));
        // Other credentials are counted separately.
        assert!(rl.hit("other").allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_lasts_its_duration_then_a_fresh_window_starts() {
        let rl = limiter(1);
        rl.hit("k");
        rl.hit("k");
        tokio::time::advance(Duration::from_millis(29_500)).await;
        let during = rl.hit("k");
        assert!(!during.allowed);
        assert_eq!(during.reset_secs, 1, "half a second left rounds up");
        tokio::time::advance(Duration::from_millis(600)).await;
        let after = rl.hit("k");
        assert!(after.allowed);
        assert_eq!(after.reset_secs, 60);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_resets_after_its_length() {
        let rl = limiter(1);
        assert!(rl.hit("k").allowed);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(rl.hit("k").allowed);
    }
}
