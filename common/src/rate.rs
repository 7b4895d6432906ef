//! A token bucket for `rate`: at most `rate` operations per second on average, with bursts of at
//! most `max(1, rate)`. It starts full, so a short replay is not slowed down at all.

use std::time::{Duration, Instant};

pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` operations per second (must be positive and finite).
    pub fn new(rate: f64) -> Self {
        let capacity = rate.max(1.0);
        Self { rate, capacity, tokens: capacity, last: Instant::now() }
    }

    /// How long to wait before the next token (zero when one is available), taking it.
    pub fn take(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.capacity);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate) }
    }

    /// Waits for a token.
    pub async fn acquire(&mut self) {
        let wait = self.take();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_paces() {
        let mut b = TokenBucket::new(4.0);
        for _ in 0..4 {
            assert_eq!(b.take(), Duration::ZERO);
        }
        let wait = b.take();
        assert!(wait > Duration::from_millis(200) && wait <= Duration::from_millis(250), "{wait:?}");
        let wait = b.take();
        assert!(wait > Duration::from_millis(450) && wait <= Duration::from_millis(500), "{wait:?}");
    }

    #[test]
    fn slow_rates_allow_one_at_a_time() {
        let mut b = TokenBucket::new(0.5);
        assert_eq!(b.take(), Duration::ZERO);
        let wait = b.take();
        assert!(wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2), "{wait:?}");
    }
}
