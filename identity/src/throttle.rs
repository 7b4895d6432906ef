//! Failed-login throttling per (username, client address), kept in the database so every replica
//! shares it.
//!
//! Each (username, client) pair has its own record: a wrong guess from one address never slows a
//! login from another, so nobody can lock an operator out by guessing their password. The first
//! `max_failures` attempts of a pair go through; after that each attempt must wait a delay that
//! starts at `base_delay` and doubles with every further failure, up to `max_delay`. A pair that
//! has made no attempt for `window` starts afresh. Every attempt is counted (and its delay set)
//! *before* its password is checked, under the row lock, and the record is deleted when the
//! password is right: so concurrent guesses on several replicas cannot slip between the delays.
//! While a pair must wait, its logins answer 429 with `Retry-After` without looking at the
//! password. Unknown usernames are counted the same way, so the answers do not tell which users
//! exist.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

use crate::client::ClientKey;

/// How many failures go through, and how the delays grow after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts of one (username, client) that need no delay.
    pub max_failures: u32,
    /// The delay after the `max_failures`-th failure; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// A pair with no attempt for this long is forgotten.
    pub window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self { max_failures: 5, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(900), window: Duration::from_secs(900) }
    }
}

impl Policy {
    /// How long the next attempt must wait after `failures` counted attempts.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures < self.max_failures {
            return Duration::ZERO;
        }
        let doublings = (failures - self.max_failures).min(40);
        self.base_delay.saturating_mul(1u32 << doublings.min(31)).min(self.max_delay)
    }
}

/// A (username, client) pair's record: attempts counted, the last one, and when the next may come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub failures: u32,
    pub last_attempt_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Whether one more attempt may go ahead at `now`: `Ok` with the record that counts it (as a
/// failure, until the password proves otherwise), or `Err` with how long to wait (whole seconds,
/// at least one).
pub fn admit(current: Option<Record>, now: DateTime<Utc>, policy: Policy) -> Result<Record, Duration> {
    // `now` is each replica's clock when its request began, so concurrent attempts may be counted
    // a little out of order: an attempt that needs no delay is never refused for that.
    let failures = match current {
        Some(r) if now < r.last_attempt_at + chrono(policy.window) => {
            if !policy.delay_after(r.failures).is_zero() && now < r.next_attempt_at {
                let left = (r.next_attempt_at - now).to_std().unwrap_or_default();
                return Err(Duration::from_secs(left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(Duration::from_secs(1)));
            }
            r.failures.saturating_add(1)
        }
        _ => 1,
    };
    let now = current.map_or(now, |r| now.max(r.last_attempt_at));
    Ok(Record { failures, last_attempt_at: now, next_attempt_at: now + chrono(policy.delay_after(failures)) })
}

/// Counts one attempt of `username` from `client` if [`admit`] lets it through; `Ok(Err(retry_after))`
/// when the pair must wait. One transaction holding the row lock, so concurrent attempts queue.
pub async fn count_attempt(pool: &MySqlPool, username: &str, client: ClientKey, now: DateTime<Utc>, policy: Policy) -> sqlx::Result<Result<(), Duration>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_count_attempt(pool, username, client, now, policy).await {
            Err(e) if attempt < 3 && sagaway_messaging::db::is_retryable_conflict(&e) => continue,
            other => return other,
        }
    }
}

async fn try_count_attempt(pool: &MySqlPool, username: &str, client: ClientKey, now: DateTime<Utc>, policy: Policy) -> sqlx::Result<Result<(), Duration>> {
    let client = client.to_string();
    let mut tx = pool.begin().await?;
    // Makes sure the row exists (no failures, long quiet), so the SELECT below always has a row to lock.
    sqlx::query(
        "INSERT INTO login_throttle (username, client, failures, last_attempt_at, next_attempt_at) VALUES (?, ?, 0, ?, ?) \
         ON DUPLICATE KEY UPDATE username = username",
    )
    .bind(username)
    .bind(&client)
    .bind(now - chrono(policy.window))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let (failures, last_attempt_at, next_attempt_at): (u32, DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "SELECT failures, last_attempt_at, next_attempt_at FROM login_throttle WHERE username = ? AND client = ? FOR UPDATE",
    )
    .bind(username)
    .bind(&client)
    .fetch_one(&mut *tx)
    .await?;
    let current = (failures > 0).then_some(Record { failures, last_attempt_at, next_attempt_at });
    match admit(current, now, policy) {
        Ok(r) => {
            sqlx::query("UPDATE login_throttle SET failures = ?, last_attempt_at = ?, next_attempt_at = ? WHERE username = ? AND client = ?")
                .bind(r.failures)
                .bind(r.last_attempt_at)
                .bind(r.next_attempt_at)
                .bind(username)
                .bind(&client)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ok(()))
        }
        Err(retry_after) => {
            tx.commit().await?;
            Ok(Err(retry_after))
        }
    }
}

/// A successful login: the pair's record is forgotten (other addresses' are not: they are
/// someone else's guesses).
pub async fn reset(pool: &MySqlPool, username: &str, client: ClientKey) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_throttle WHERE username = ? AND client = ?").bind(username).bind(client.to_string()).execute(pool).await?;
    Ok(())
}

/// Deletes the records that have been quiet for a window. Returns how many.
pub async fn purge(pool: &MySqlPool, now: DateTime<Utc>, policy: Policy) -> sqlx::Result<u64> {
    let cutoff = now - chrono(policy.window);
    Ok(sqlx::query("DELETE FROM login_throttle WHERE last_attempt_at <= ? AND next_attempt_at <= ?")
        .bind(cutoff)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const POLICY: Policy = Policy { max_failures: 3, base_delay: Duration::from_secs(2), max_delay: Duration::from_secs(60), window: Duration::from_secs(900) };

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_first_attempts_need_no_delay_then_delays_double_up_to_the_limit() {
        let delays: Vec<u64> = (1..=10).map(|n| POLICY.delay_after(n).as_secs()).collect();
        assert_eq!(delays, vec![0, 0, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(POLICY.delay_after(u32::MAX), Duration::from_secs(60), "no overflow");
    }

    #[test]
    fn an_attempt_inside_the_delay_is_refused_with_the_time_left() {
        let mut r = None;
        for n in 1..=3 {
            let next = admit(r, at(n), POLICY).unwrap();
            assert_eq!(next.failures, n as u32);
            r = Some(next);
        }
        // the third failure (at 3 s) set a 2 s delay
        assert_eq!(admit(r, at(4), POLICY), Err(Duration::from_secs(1)));
        let fourth = admit(r, at(5), POLICY).unwrap();
        assert_eq!((fourth.failures, fourth.next_attempt_at), (4, at(9)), "then 4 s");
        assert_eq!(admit(Some(fourth), at(6), POLICY), Err(Duration::from_secs(3)));
        let half = at(8) + chrono::Duration::milliseconds(300);
        assert_eq!(admit(Some(fourth), half, POLICY), Err(Duration::from_secs(1)), "rounded up");
    }

    #[test]
    fn attempts_counted_out_of_order_within_the_free_ones_go_through() {
        let first = admit(None, at(10), POLICY).unwrap();
        let second = admit(Some(first), at(9), POLICY).expect("began earlier, counted later: still free");
        assert_eq!((second.failures, second.last_attempt_at), (2, at(10)), "the clock never goes back");
    }

    #[test]
    fn a_quiet_window_forgets_the_failures() {
        let r = Some(Record { failures: 50, last_attempt_at: at(0), next_attempt_at: at(60) });
        assert_eq!(admit(r, at(900), POLICY).unwrap().failures, 1);
        assert_eq!(admit(r, at(899), POLICY).unwrap().failures, 51);
    }

    proptest! {
        /// Whatever the attempts' timing: the attempts admitted never come closer together than the
        /// delay their failures call for, and the first `max_failures` are never refused.
        #[test]
        fn admitted_attempts_respect_the_growing_delays(gaps in proptest::collection::vec(0i64..40, 1..60)) {
            let mut r: Option<Record> = None;
            let mut now = at(0);
            let mut admitted = 0u32;
            for gap in gaps {
                now += chrono::Duration::seconds(gap);
                match admit(r, now, POLICY) {
                    Ok(next) => {
                        if let Some(prev) = r {
                            prop_assert!(now >= prev.last_attempt_at + chrono(POLICY.delay_after(prev.failures)));
                        }
                        admitted += 1;
                        prop_assert_eq!(next.failures, admitted);
                        r = Some(next);
                    }
                    Err(wait) => {
                        prop_assert!(admitted >= POLICY.max_failures, "refused after {} attempts", admitted);
                        prop_assert!(wait >= Duration::from_secs(1) && wait <= POLICY.max_delay);
                    }
                }
            }
        }
    }
}
