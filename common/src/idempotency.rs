//! `Idempotency-Key` records with Stripe's semantics, for every service that takes the header
//! (`POST /payment`, `POST /reserve`); the service hashes its request its own way.
//!
//! - First use: the key is claimed (`in_flight`) in its own committed statement, so a concurrent
//!   request with the same key sees the claim; the answer is stored with it when done (a success's
//!   answer in the transaction of its effect, so neither can exist without the other).
//! - Same key + same request after completion: the stored status and body are replayed (the
//!   service adds `Idempotent-Replayed: true`). Same key + different request: [`ClaimError::Reused`]
//!   (422). Same key still in flight: [`ClaimError::InFlight`] (409).
//! - A 5xx releases the claim so the client may retry. An in-flight claim older than the lock
//!   timeout is considered abandoned (its process died) and may be taken over; every claim has an
//!   owner token ([`Claimed`]), so a request that stalled past a takeover can neither complete nor
//!   release its successor's claim.
//! - Records are kept for the configured TTL (≥ 24 h) and then purged ([`run_purge`]).
//! - A key is its caller's: [`claim_for`] claims `(caller, key)` in a table with a `caller` column
//!   (the orchestrator's and the product service's), so one user can neither replay nor pre-claim
//!   another user's key. [`claim`] / [`claim_matching`] work on a table keyed by the key alone,
//!   whose keys must then name their caller themselves (the bank stores `user:sha256(key)`).

use std::time::Duration;

use ::http::{HeaderMap, StatusCode};
use sqlx::{MySqlPool, Row};

/// The response header marking a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A claim we hold: the key, our owner token, and whose key it is (`None`: a table keyed by the key
/// alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub key: String,
    pub owner: String,
    pub caller: Option<String>,
}

/// The row of a key: `caller = ? AND idempotency_key = ?` in a table with callers, else the key
/// alone. [`bind_key`] binds its values in the same order.
fn key_is(caller: Option<&str>) -> &'static str {
    if caller.is_some() { "caller = ? AND idempotency_key = ?" } else { "idempotency_key = ?" }
}

fn bind_key<'q>(
    q: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
    caller: Option<&'q str>,
    key: &'q str,
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    match caller {
        Some(c) => q.bind(c).bind(key),
        None => q.bind(key),
    }
}

/// What claiming a key found.
pub enum Claim {
    /// The key is ours: process the request, then [`complete`] or [`release`].
    Fresh(Claimed),
    /// The request was already answered: replay this.
    Replay { status: StatusCode, body: String },
}

/// Why a key could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The key was used with another request: 422.
    #[error("Idempotency-Key reused with another request")]
    Reused,
    /// The first request with this key is still running: 409.
    #[error("a request with this Idempotency-Key is still in flight")]
    InFlight,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The `Idempotency-Key` header, validated (1–255 visible ASCII characters); the error says what is wrong.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().map_err(|_| "must be visible ASCII")?.trim().to_string();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err("must be 1-255 visible ASCII characters");
    }
    Ok(Some(key))
}

/// Claims `key` for a request that hashes to `hash`, in a table keyed by the key alone.
pub async fn claim(pool: &MySqlPool, key: &str, hash: &str, ttl: Duration, lock: Duration) -> Result<Claim, ClaimError> {
    claim_matching(pool, key, &[hash.to_string()], ttl, lock).await
}

/// [`claim`] for a request whose hash has several valid forms — a keyed hash under each configured
/// key, so a retry that arrives after a key rotation still matches its record. The first is
/// recorded for a new claim; a stored hash equal to any of them is the same request.
pub async fn claim_matching(pool: &MySqlPool, key: &str, hashes: &[String], ttl: Duration, lock: Duration) -> Result<Claim, ClaimError> {
    claim_in(pool, None, key, hashes, ttl, lock).await
}

/// [`claim_matching`] of `caller`'s `key`, in a table whose rows are `(caller, idempotency_key)`:
/// another caller's record under the same key is never seen, replayed or refused.
pub async fn claim_for(pool: &MySqlPool, caller: &str, key: &str, hashes: &[String], ttl: Duration, lock: Duration) -> Result<Claim, ClaimError> {
    claim_in(pool, Some(caller), key, hashes, ttl, lock).await
}

async fn claim_in(pool: &MySqlPool, caller: Option<&str>, key: &str, hashes: &[String], ttl: Duration, lock: Duration) -> Result<Claim, ClaimError> {
    let hash = hashes.first().map(String::as_str).unwrap_or_default();
    for _ in 0..3 {
        // Records past their TTL no longer count: drop this key's if it has expired.
        bind_key(sqlx::query(&format!("DELETE FROM idempotency_keys WHERE {} AND created_at < NOW(6) - INTERVAL ? SECOND", key_is(caller))), caller, key)
            .bind(ttl.as_secs())
            .execute(pool)
            .await?;
        let owner = uuid::Uuid::new_v4().to_string();
        let ours = Claim::Fresh(Claimed { key: key.to_string(), owner: owner.clone(), caller: caller.map(str::to_string) });
        let insert = match caller {
            Some(c) => sqlx::query("INSERT IGNORE INTO idempotency_keys (caller, idempotency_key, request_hash, state, owner) VALUES (?, ?, ?, 'in_flight', ?)").bind(c),
            None => sqlx::query("INSERT IGNORE INTO idempotency_keys (idempotency_key, request_hash, state, owner) VALUES (?, ?, 'in_flight', ?)"),
        };
        let inserted = insert.bind(key).bind(hash).bind(&owner).execute(pool).await?.rows_affected() == 1;
        if inserted {
            return Ok(ours);
        }
        let select = format!(
            "SELECT request_hash, state, response_status, response_body, \
             CAST(created_at < NOW(6) - INTERVAL ? SECOND AS SIGNED) AS abandoned FROM idempotency_keys WHERE {}",
            key_is(caller)
        );
        let row = bind_key(sqlx::query(&select).bind(lock.as_secs()), caller, key).fetch_optional(pool).await?;
        let Some(row) = row else {
            continue; // released between our insert and our read: try again
        };
        let stored: String = row.get("request_hash");
        if !hashes.contains(&stored) {
            return Err(ClaimError::Reused);
        }
        if row.get::<String, _>("state") == "done" {
            let status = StatusCode::from_u16(row.get::<i16, _>("response_status") as u16).unwrap_or(StatusCode::OK);
            return Ok(Claim::Replay { status, body: row.get::<Option<String>, _>("response_body").unwrap_or_default() });
        }
        if row.get::<i64, _>("abandoned") == 1 {
            let take = format!(
                "UPDATE idempotency_keys SET created_at = NOW(6), owner = ? WHERE {} AND state = 'in_flight' \
                 AND created_at < NOW(6) - INTERVAL ? SECOND",
                key_is(caller)
            );
            let taken = bind_key(sqlx::query(&take).bind(&owner), caller, key).bind(lock.as_secs()).execute(pool).await?.rows_affected();
            if taken == 1 {
                return Ok(ours);
            }
        }
        return Err(ClaimError::InFlight);
    }
    Err(ClaimError::InFlight)
}

/// Stores the answer to replay, if the claim is still ours. Returns false when it is not (it was
/// taken over after our lock timeout): then nothing is written.
pub async fn complete<'c>(
    conn: impl sqlx::Executor<'c, Database = sqlx::MySql>,
    claim: &Claimed,
    status: StatusCode,
    body: &str,
) -> sqlx::Result<bool> {
    let sql = format!(
        "UPDATE idempotency_keys SET state = 'done', response_status = ?, response_body = ? \
         WHERE {} AND owner = ? AND state = 'in_flight'",
        key_is(claim.caller.as_deref())
    );
    let done = bind_key(sqlx::query(&sql).bind(status.as_u16() as i16).bind(body), claim.caller.as_deref(), &claim.key)
        .bind(&claim.owner)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets our claim after a server error, so the client can retry. Someone else's claim stays.
pub async fn release(pool: &MySqlPool, claim: &Claimed) -> sqlx::Result<bool> {
    let sql = format!("DELETE FROM idempotency_keys WHERE {} AND owner = ? AND state = 'in_flight'", key_is(claim.caller.as_deref()));
    let gone = bind_key(sqlx::query(&sql), claim.caller.as_deref(), &claim.key).bind(&claim.owner).execute(pool).await?;
    Ok(gone.rows_affected() == 1)
}

/// Deletes records older than `ttl`, every `every`, until `shutdown`.
pub async fn run_purge(pool: MySqlPool, ttl: Duration, every: Duration, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        if let Err(e) = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < NOW(6) - INTERVAL ? SECOND LIMIT 10000")
            .bind(ttl.as_secs())
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "idempotency purge failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use ::http::{HeaderMap, HeaderValue};

    use super::key_from;

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("idempotency-key", HeaderValue::from_str(v).unwrap());
            key_from(&h)
        };
        assert_eq!(key_from(&HeaderMap::new()).unwrap(), None);
        assert_eq!(with("  abc-123 ").unwrap().as_deref(), Some("abc-123"));
        assert!(with("").is_err());
        assert!(with("a b").is_err());
        assert!(with(&"k".repeat(256)).is_err());
    }
}
