//! Per-key request budget. Two guards, both needed:
//! - a local GCRA budget (governor) keeps calsync under `requests_per_minute`, with
//!   a small burst and a sustained rate chosen so no 60 s window can exceed it;
//! - Cal.com's own answer: after a 429, or when `X-RateLimit-Remaining-Default`
//!   reaches 0, nothing is sent for that key until `X-RateLimit-Reset-Default`
//!   seconds (60 when absent) have passed.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// Cal.com blocks a key for 60 s after it exceeds its limit.
pub const DEFAULT_BLOCK: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct KeyLimiter {
    budget: DefaultDirectRateLimiter,
    blocked_until: Mutex<Option<Instant>>,
}

impl KeyLimiter {
    pub fn new(requests_per_minute: u32) -> Self {
        let rpm = requests_per_minute.max(1);
        // Burst of ~5 s worth; the rest spread evenly, so burst + sustained <= rpm in
        // any 60 s window.
        let burst = (rpm / 12).max(1);
        let sustained = rpm.saturating_sub(burst).max(1);
        let period = Duration::from_secs(60) / sustained;
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self {
            budget: RateLimiter::direct(quota),
            blocked_until: Mutex::new(None),
        }
    }

    /// Waits until a request may be sent for this key.
    pub async fn acquire(&self) {
        loop {
            if let Some(until) = self.blocked_until() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            self.budget.until_ready().await;
            // A block may have started while we waited for the budget.
            if self.blocked_until().is_none() {
                return;
            }
        }
    }

    /// Sends nothing for `duration` (extends, never shortens, a current block).
    pub fn block_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut guard = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }

    /// The end of the current block, if one is in force.
    pub fn blocked_until(&self) -> Option<Instant> {
        let mut guard = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        match *guard {
            Some(until) if until > Instant::now() => Some(until),
            Some(_) => {
                *guard = None;
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_block_holds_every_request_until_it_passes() {
        let limiter = KeyLimiter::new(6000);
        limiter.block_for(Duration::from_millis(300));
        let started = std::time::Instant::now();
        limiter.acquire().await;
        assert!(started.elapsed() >= Duration::from_millis(290));
    }

    #[tokio::test]
    async fn a_shorter_block_does_not_shorten_a_longer_one() {
        let limiter = KeyLimiter::new(120);
        limiter.block_for(Duration::from_secs(60));
        limiter.block_for(Duration::from_secs(1));
        let until = limiter.blocked_until().unwrap();
        assert!(until > Instant::now() + Duration::from_secs(50));
    }

    #[tokio::test]
    async fn the_burst_is_bounded_by_the_budget() {
        // 120/min: a burst of 10 passes at once, the 11th must wait.
        let limiter = KeyLimiter::new(120);
        for _ in 0..10 {
            assert!(limiter.budget.check().is_ok());
        }
        assert!(limiter.budget.check().is_err());
    }
}
