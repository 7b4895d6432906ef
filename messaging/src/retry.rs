//! Retrying with backoff, in one place: the in-process loops (the inbox's in-place retries and
//! partition assignment, the search indexer, …) pause with a [`Backoff`], and the payment
//! processor's charge retries (scheduled through a Kafka topic rather than slept) take their delays
//! from the same [`window`] and [`equal_jitter`].
//!
//! - **Window** after failed attempt `n` (1-based): `min(cap, first · 2^(n-1))`.
//! - **Delay**: jittered in the *upper half* of the window ("equal jitter"): `window/2 + U[0, window/2]`.
//!   A herd of retries spreads apart, yet the gaps of one retrier still grow while the window
//!   doubles (full jitter could make a later retry come sooner than an earlier one).
//! - **Deterministic in tests**: the randomness comes from a [`Jitter`] source ([`FixedJitter`],
//!   [`SeededJitter`]), and [`Backoff::next_delay`] gives the schedule as values, so tests check
//!   the delays without sleeping them; [`Backoff::pause`] only adds tokio's sleep and shutdown.
//!
//! Why not the `backon` crate: these loops decide per failure what comes next (dead-letter after a
//! budget only while the database answers, stop on shutdown, keep counting across a reset), and the
//! payment processor needs the delay as a value to schedule, not a future to run; backon drives the
//! retried future itself and its jitter cannot be fixed by a test. What remains is thirty lines.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio_util::sync::CancellationToken;

/// A source of jitter: a number in `[0, 1]`.
pub trait Jitter: Send + Sync + fmt::Debug {
    fn unit(&self) -> f64;
}

/// Jitter from the thread-local RNG (production).
#[derive(Debug, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn unit(&self) -> f64 {
        rand::rng().random_range(0.0..=1.0)
    }
}

/// Always the same point of the window (tests; `1.0` = no jitter, the window's top).
#[derive(Debug)]
pub struct FixedJitter(pub f64);

impl Jitter for FixedJitter {
    fn unit(&self) -> f64 {
        self.0.clamp(0.0, 1.0)
    }
}

/// A reproducible random sequence (tests).
#[derive(Debug)]
pub struct SeededJitter(Mutex<StdRng>);

impl SeededJitter {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl Jitter for SeededJitter {
    fn unit(&self) -> f64 {
        self.0.lock().expect("jitter lock").random_range(0.0..=1.0)
    }
}

/// The backoff window after failed attempt `attempt` (1-based): `min(cap, first · 2^(attempt-1))`.
pub fn window(first: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
    first.saturating_mul(factor).min(cap)
}

/// A delay in the upper half of `window`, at `unit` ∈ [0, 1] of that half.
pub fn equal_jitter(window: Duration, unit: f64) -> Duration {
    let half = window / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// The pauses of one retrying loop: each [`Backoff::pause`] waits longer, up to the cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    jitter: Arc<dyn Jitter>,
    failures: u32,
}

impl Backoff {
    /// Random jitter; windows `first`, `2·first`, … up to `cap`.
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self::with_jitter(first, cap, Arc::new(RandomJitter))
    }

    pub fn with_jitter(first: Duration, cap: Duration, jitter: Arc<dyn Jitter>) -> Self {
        Self { first, cap, jitter, failures: 0 }
    }

    /// The delay the next [`Backoff::pause`] will wait, counting one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        equal_jitter(window(self.first, self.cap, self.failures), self.jitter.unit())
    }

    /// Waits the next delay; false if `shutdown` came first (stop retrying).
    pub async fn pause(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// Back to the first window (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn windows_double_up_to_the_cap() {
        let windows: Vec<Duration> = (1..=7).map(|a| window(MS(200), MS(5000), a)).collect();
        assert_eq!(windows, [200, 400, 800, 1600, 3200, 5000, 5000].map(MS));
        assert_eq!(window(MS(200), MS(5000), 1000), MS(5000), "no overflow for absurd attempt numbers");
    }

    #[test]
    fn delays_stay_in_the_upper_half_of_the_window_and_never_shrink() {
        assert_eq!(equal_jitter(MS(200), 0.0), MS(100));
        assert_eq!(equal_jitter(MS(200), 1.0), MS(200));
        assert_eq!(equal_jitter(MS(200), 7.0), MS(200), "units are clamped");
        let mut b = Backoff::with_jitter(MS(50), MS(5000), Arc::new(SeededJitter::new(7)));
        let mut previous_top = Duration::ZERO;
        for attempt in 1..=9 {
            let w = window(MS(50), MS(5000), attempt);
            let d = b.next_delay();
            assert!(d >= w / 2 && d <= w, "attempt {attempt}: {d:?} outside [{:?}, {w:?}]", w / 2);
            // While the window doubles, the next floor is the previous top: gaps never shrink.
            assert!(w / 2 >= previous_top || w == MS(5000), "attempt {attempt}");
            previous_top = w;
        }
    }

    #[test]
    fn seeded_jitter_is_reproducible_and_reset_starts_over() {
        let delays = |seed| {
            let mut b = Backoff::with_jitter(MS(10), MS(1000), Arc::new(SeededJitter::new(seed)));
            (0..6).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(42), delays(42));
        let mut b = Backoff::with_jitter(MS(10), MS(1000), Arc::new(FixedJitter(1.0)));
        assert_eq!([b.next_delay(), b.next_delay(), b.next_delay()], [MS(10), MS(20), MS(40)]);
        b.reset();
        assert_eq!(b.next_delay(), MS(10));
    }

    #[tokio::test]
    async fn pause_sleeps_at_least_the_delay() {
        let mut b = Backoff::with_jitter(MS(10), MS(20), Arc::new(FixedJitter(1.0)));
        let shutdown = CancellationToken::new();
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            assert!(b.pause(&shutdown).await);
        }
        assert!(start.elapsed() >= MS(10 + 20 + 20), "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn shutdown_interrupts_a_pause() {
        let mut b = Backoff::with_jitter(Duration::from_secs(60), Duration::from_secs(60), Arc::new(FixedJitter(1.0)));
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(MS(5)).await;
            stopper.cancel();
        });
        let start = tokio::time::Instant::now();
        assert!(!b.pause(&shutdown).await);
        assert!(start.elapsed() < Duration::from_secs(60));
    }
}
