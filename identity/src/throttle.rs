//! Failed-login throttling per username, kept in the database so every replica shares it.
//!
//! A window opens at a username's first counted attempt and lasts `window`. Every attempt is
//! counted *before* its password is checked, and uncounted again (the row deleted) when it succeeds:
//! so `max_failures` wrong passwords within a window lock that username until the window passes,
//! even when the guesses arrive all at once on several replicas. While locked, logins answer 429
//! with `Retry-After` without looking at the password. Unknown usernames are counted the same way,
//! so the answers do not tell which users exist.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

/// How many failures a window tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_failures: u32,
    pub window: Duration,
}

/// A username's current window: how many attempts it counts, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub failures: u32,
    pub started_at: DateTime<Utc>,
}

/// Whether one more login attempt may go ahead at `now`: `Ok` with the window that counts it, or
/// `Err` with how long until the current window passes (at least a second, whole seconds).
pub fn admit(current: Option<Window>, now: DateTime<Utc>, policy: Policy) -> Result<Window, Duration> {
    let window = chrono::Duration::from_std(policy.window).unwrap_or(chrono::Duration::MAX);
    match current {
        Some(w) if now < w.started_at + window => {
            if w.failures >= policy.max_failures {
                let left = (w.started_at + window - now).to_std().unwrap_or_default();
                Err(Duration::from_secs(left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(Duration::from_secs(1)))
            } else {
                Ok(Window { failures: w.failures + 1, started_at: w.started_at })
            }
        }
        _ => Ok(Window { failures: 1, started_at: now }),
    }
}

/// Counts one attempt for `username` if [`admit`] lets it through; `Ok(Err(retry_after))` when the
/// username is locked. One transaction holding the row lock, so concurrent attempts queue.
pub async fn count_attempt(pool: &MySqlPool, username: &str, now: DateTime<Utc>, policy: Policy) -> sqlx::Result<Result<(), Duration>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_count_attempt(pool, username, now, policy).await {
            Err(e) if attempt < 3 && sagaway_messaging::db::is_retryable_conflict(&e) => continue,
            other => return other,
        }
    }
}

async fn try_count_attempt(pool: &MySqlPool, username: &str, now: DateTime<Utc>, policy: Policy) -> sqlx::Result<Result<(), Duration>> {
    let mut tx = pool.begin().await?;
    // Makes sure the row exists (an empty window), so the SELECT below always has a row to lock.
    sqlx::query("INSERT INTO login_failures (username, failures, window_started_at) VALUES (?, 0, ?) ON DUPLICATE KEY UPDATE username = username")
        .bind(username)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let (failures, started_at): (u32, DateTime<Utc>) =
        sqlx::query_as("SELECT failures, window_started_at FROM login_failures WHERE username = ? FOR UPDATE")
            .bind(username)
            .fetch_one(&mut *tx)
            .await?;
    match admit(Some(Window { failures, started_at }), now, policy) {
        Ok(w) => {
            sqlx::query("UPDATE login_failures SET failures = ?, window_started_at = ? WHERE username = ?")
                .bind(w.failures)
                .bind(w.started_at)
                .bind(username)
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

/// A successful login: the username's window is forgotten.
pub async fn reset(pool: &MySqlPool, username: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE username = ?").bind(username).execute(pool).await?;
    Ok(())
}

/// Deletes the windows that have passed. Returns how many.
pub async fn purge(pool: &MySqlPool, now: DateTime<Utc>, policy: Policy) -> sqlx::Result<u64> {
    let cutoff = now - chrono::Duration::from_std(policy.window).unwrap_or(chrono::Duration::MAX);
    Ok(sqlx::query("DELETE FROM login_failures WHERE window_started_at <= ?").bind(cutoff).execute(pool).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy { max_failures: 3, window: Duration::from_secs(900) };

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_first_attempt_opens_a_window() {
        assert_eq!(admit(None, at(0), POLICY), Ok(Window { failures: 1, started_at: at(0) }));
    }

    #[test]
    fn attempts_up_to_the_limit_go_through_then_the_username_is_locked_until_the_window_passes() {
        let mut w = None;
        for n in 1..=3 {
            let next = admit(w, at(n * 10), POLICY).unwrap();
            assert_eq!(next, Window { failures: n as u32, started_at: at(10) });
            w = Some(next);
        }
        // window opened at 10 s and lasts 900 s
        assert_eq!(admit(w, at(40), POLICY), Err(Duration::from_secs(870)));
        assert_eq!(admit(w, at(909), POLICY), Err(Duration::from_secs(1)));
        assert_eq!(admit(w, at(910), POLICY), Ok(Window { failures: 1, started_at: at(910) }), "a new window");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let w = Some(Window { failures: 3, started_at: at(0) });
        let now = at(100) + chrono::Duration::milliseconds(300);
        assert_eq!(admit(w, now, POLICY), Err(Duration::from_secs(800)));
    }

    #[test]
    fn an_expired_window_is_forgotten_even_when_it_was_locked() {
        let w = Some(Window { failures: 99, started_at: at(0) });
        assert_eq!(admit(w, at(5000), POLICY), Ok(Window { failures: 1, started_at: at(5000) }));
    }
}
