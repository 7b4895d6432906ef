//! A token bucket for `rate`: at most `rate` operations per second on average, with bursts of at
//! most `max(1, rate)`. It starts full, so a short replay is not slowed down at all.
//!
//! [`PerUser`] keeps one bucket per user for request rate limits (`POST /reserve`, `POST /payment`):
//! over the limit, the request is refused with 429 and `Retry-After` instead of waiting.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

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

    /// Takes a token if one is available now; otherwise takes nothing and says how long until one is.
    pub fn try_take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    fn is_full(&self) -> bool {
        self.tokens + self.last.elapsed().as_secs_f64() * self.rate >= self.capacity
    }

    /// Waits for a token.
    pub async fn acquire(&mut self) {
        let wait = self.take();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// One token bucket per user: `rate` requests per second on average, bursts of `burst`.
pub struct PerUser {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

/// Buckets kept before idle (full) ones are dropped; a full bucket is the same as no bucket.
const KEEP_BUCKETS: usize = 10_000;

impl PerUser {
    /// `rate` per second (positive) with bursts of `burst` (at least 1).
    pub fn new(rate: f64, burst: u32) -> Arc<Self> {
        Arc::new(Self { rate, burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) })
    }

    /// Admits one request of `user`, or says how long until the next would be admitted.
    pub fn check(&self, user: &str) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= KEEP_BUCKETS && !buckets.contains_key(user) {
            buckets.retain(|_, b| !b.is_full());
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = buckets.entry(user.to_string()).or_insert_with(|| {
            let mut b = TokenBucket::new(rate);
            b.capacity = burst;
            b.tokens = burst;
            b
        });
        bucket.try_take()
    }
}

/// Middleware: limits each authenticated caller (see [`crate::auth::protect`], which must run
/// first) by their user id; 429 problem `rate_limited` with `Retry-After` (whole seconds, at least 1).
pub async fn limit_per_user(State(limiter): State<Arc<PerUser>>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<crate::auth::Caller>() else {
        return crate::auth::AuthError::Missing.into_response();
    };
    match limiter.check(&caller.user_id) {
        Ok(()) => next.run(req).await,
        Err(wait) => too_many_requests("rate_limited", "too many requests for this user; retry after the time in Retry-After", wait),
    }
}

/// A 429 problem with `Retry-After` in whole seconds (rounded up, at least 1).
pub fn too_many_requests(code: &str, detail: &str, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut res = crate::http::Problem::new(StatusCode::TOO_MANY_REQUESTS, code, detail).with("retry_after", secs.max(1)).into_response();
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
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

    #[test]
    fn per_user_limits_each_user_separately_and_says_when_to_retry() {
        let limiter = PerUser::new(1.0, 3);
        for _ in 0..3 {
            assert_eq!(limiter.check("alice"), Ok(()));
        }
        let wait = limiter.check("alice").unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        // A refused request takes nothing: the wait does not grow.
        assert!(limiter.check("alice").unwrap_err() <= wait);
        assert_eq!(limiter.check("Alice"), Ok(()), "another user (ids are byte-exact) has a bucket of their own");
    }
}
