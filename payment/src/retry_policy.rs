//! The retry policy of charges, in one place.
//!
//! - **What is retried:** only transient acquirer errors, [`is_transient`]: `processing_error` (the
//!   acquirer hiccuped) and `acquirer_unavailable` (the outage switch is on). Declines and card
//!   validation failures are permanent and answered at once.
//! - **How many times:** at most [`RetryPolicy::max_attempts`] acquirer calls per round
//!   (`PAYMENT_MAX_ATTEMPTS`, default 5, counting the first). After the last failure the command is
//!   dead-lettered on `payment_dlq` and the orchestrator gets `failed` with [`ERROR_CLASS`].
//! - **When:** exponential backoff, base `PAYMENT_RETRY_BASE_MS` (default 200 ms), factor 2, capped
//!   at `PAYMENT_RETRY_MAX_MS` (default 5000 ms): the window before attempt `n + 1` is
//!   `min(cap, base · 2^(n-1))`. The delay is jittered inside the *upper half* of that window
//!   ("equal jitter": `window/2 + U[0, window/2]`), not the whole window ("full jitter"). Full jitter
//!   can make a later retry come sooner than an earlier one; keeping the lower half as a floor still
//!   spreads a herd of retries apart while guaranteeing that the gaps between attempts of one order
//!   grow while the window doubles (which the retry tests assert); once the cap is reached delays
//!   stay jittered in `[cap/2, cap]`.
//! - **Where:** retries never block the consumer of `payment.commands`: the command is written to
//!   `saga.retry` with its due time and [`crate::retry`] puts it back when due.
//!
//! The windows and the jitter are the shared backoff's ([`sagaway_messaging::retry`]); the randomness
//! comes from a [`Jitter`] source so tests can make it deterministic.

use std::{fmt, sync::Arc, time::Duration};

use sagaway_messaging::retry;

/// The `error_class` of a charge that gave up on transient acquirer errors.
pub const ERROR_CLASS: &str = "processing_error";

/// True for acquirer error codes worth retrying.
pub fn is_transient(code: &str) -> bool {
    matches!(code, "processing_error" | "acquirer_unavailable")
}

/// The jitter sources live with the shared backoff ([`sagaway_messaging::retry`]).
pub use sagaway_messaging::retry::{FixedJitter, Jitter, RandomJitter, SeededJitter};

/// What to do after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again as attempt `next_attempt` after `delay`.
    Retry { next_attempt: u32, delay: Duration },
    /// The budget is spent: dead-letter and answer `failed`.
    GiveUp,
}

/// Backoff settings; see the module documentation.
#[derive(Clone)]
pub struct RetryPolicy {
    /// First window (`PAYMENT_RETRY_BASE_MS`).
    pub base: Duration,
    /// Largest window (`PAYMENT_RETRY_MAX_MS`).
    pub cap: Duration,
    /// Acquirer calls per round, the first included (`PAYMENT_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    pub jitter: Arc<dyn Jitter>,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("base", &self.base)
            .field("cap", &self.cap)
            .field("max_attempts", &self.max_attempts)
            .field("jitter", &self.jitter)
            .finish()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_millis(5000),
            max_attempts: 5,
            jitter: Arc::new(RandomJitter),
        }
    }
}

impl RetryPolicy {
    /// The backoff window after failed attempt `attempt` (1-based): `min(cap, base · 2^(attempt-1))`.
    pub fn window(&self, attempt: u32) -> Duration {
        retry::window(self.base, self.cap, attempt)
    }

    /// The jittered delay after failed attempt `attempt`: in `[window/2, window]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        retry::equal_jitter(self.window(attempt), self.jitter.unit())
    }

    /// Retry or give up after failed attempt `attempt`.
    pub fn decide(&self, attempt: u32) -> Decision {
        if attempt >= self.max_attempts {
            Decision::GiveUp
        } else {
            Decision::Retry { next_attempt: attempt + 1, delay: self.delay(attempt) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Arc<dyn Jitter>) -> RetryPolicy {
        RetryPolicy { base: Duration::from_millis(200), cap: Duration::from_millis(5000), max_attempts: 5, jitter }
    }

    #[test]
    fn windows_double_up_to_the_cap() {
        let p = policy(Arc::new(FixedJitter(1.0)));
        let windows: Vec<u64> = (1..=7).map(|a| p.window(a).as_millis() as u64).collect();
        assert_eq!(windows, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(p.window(1000), Duration::from_millis(5000), "no overflow for absurd attempt numbers");
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_the_window() {
        assert_eq!(policy(Arc::new(FixedJitter(0.0))).delay(1), Duration::from_millis(100));
        assert_eq!(policy(Arc::new(FixedJitter(1.0))).delay(1), Duration::from_millis(200));
        assert_eq!(policy(Arc::new(FixedJitter(0.5))).delay(3), Duration::from_millis(600));
        let p = policy(Arc::new(SeededJitter::new(7)));
        for attempt in 1..=8 {
            let d = p.delay(attempt);
            let w = p.window(attempt);
            assert!(d >= w / 2 && d <= w, "attempt {attempt}: {d:?} outside [{:?}, {w:?}]", w / 2);
        }
    }

    #[test]
    fn delays_never_shrink_whatever_the_jitter() {
        // The worst case for growth: a late draw followed by an early one.
        let high = policy(Arc::new(FixedJitter(1.0)));
        let low = policy(Arc::new(FixedJitter(0.0)));
        // While the window still doubles (200..3200 ms here) the next floor is the previous top.
        for attempt in 1..5 {
            assert!(low.delay(attempt + 1) >= high.delay(attempt), "attempt {attempt}");
        }
    }

    #[test]
    fn seeded_jitter_is_reproducible() {
        let a = policy(Arc::new(SeededJitter::new(42)));
        let b = policy(Arc::new(SeededJitter::new(42)));
        let da: Vec<_> = (1..=5).map(|n| a.delay(n)).collect();
        let db: Vec<_> = (1..=5).map(|n| b.delay(n)).collect();
        assert_eq!(da, db);
    }

    #[test]
    fn gives_up_after_the_budget() {
        let p = policy(Arc::new(FixedJitter(1.0)));
        assert_eq!(p.decide(1), Decision::Retry { next_attempt: 2, delay: Duration::from_millis(200) });
        assert_eq!(p.decide(4), Decision::Retry { next_attempt: 5, delay: Duration::from_millis(1600) });
        assert_eq!(p.decide(5), Decision::GiveUp);
        assert_eq!(p.decide(9), Decision::GiveUp);
    }

    #[test]
    fn only_acquirer_hiccups_are_transient() {
        assert!(is_transient("processing_error"));
        assert!(is_transient("acquirer_unavailable"));
        for permanent in ["card_declined", "insufficient_funds", "expired_card", "incorrect_number", "invalid_cvc"] {
            assert!(!is_transient(permanent), "{permanent}");
        }
    }
}
