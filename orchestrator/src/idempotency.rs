//! `Idempotency-Key` with Stripe's semantics.
//!
//! - First use: the key is claimed (`in_flight`) in its own committed transaction, so concurrent
//!   requests with the same key see the claim; the response is stored with it when done.
//! - Same key + same body after completion: the stored status and body are replayed, with the
//!   header `Idempotent-Replayed: true`.
//! - Same key + different body: 422. Same key still in flight: 409.
//! - A 5xx releases the claim (the client may retry); an in-flight claim older than the lock
//!   timeout is considered abandoned (its process died) and may be taken over.
//! - Every claim carries a fresh owner token ([`Claimed`]); only the owner completes or releases
//!   it, so a request that stalled past a takeover cannot touch the new owner's claim or answer.
//! - Records are kept for the configured TTL (≥ 24 h) and then purged.
//!
//! The body hash is an HMAC under the card key: the body holds a card number, and a plain hash of
//! a PAN can be brute-forced.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use sagaway_common::card::{self, CardKey};
use sqlx::{MySqlPool, Row};

use crate::error::{ApiError, ApiResult};

/// The response header marking a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A claim we hold: the key and our owner token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub key: String,
    pub owner: String,
}

/// What claiming a key found.
pub enum Claim {
    /// The key is ours: process the request, then [`complete`] or [`release`].
    Fresh(Claimed),
    /// The request was already answered: replay this.
    Replay { status: StatusCode, body: String },
}

/// The `Idempotency-Key` header, validated (1–255 visible ASCII characters).
pub fn key_from(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?.trim().to_string();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid("Idempotency-Key", "must be 1-255 visible ASCII characters"));
    }
    Ok(Some(key))
}

/// The keyed hash of a canonical JSON body (serde_json sorts object keys).
pub fn body_hash(key: &CardKey, body: &serde_json::Value) -> String {
    card::keyed_hash(key, body.to_string().as_bytes())
}

/// Claims `key` for a request whose body hashes to `hash`.
pub async fn claim(pool: &MySqlPool, key: &str, hash: &str, ttl: Duration, lock: Duration) -> ApiResult<Claim> {
    // Records past their TTL no longer count: drop this key's if it has expired.
    sqlx::query("DELETE FROM idempotency_keys WHERE idempotency_key = ? AND created_at < NOW(6) - INTERVAL ? SECOND")
        .bind(key)
        .bind(ttl.as_secs())
        .execute(pool)
        .await?;
    let owner = uuid::Uuid::new_v4().to_string();
    let ours = || Claim::Fresh(Claimed { key: key.to_string(), owner: owner.clone() });
    let inserted = sqlx::query("INSERT IGNORE INTO idempotency_keys (idempotency_key, request_hash, state, owner) VALUES (?, ?, 'in_flight', ?)")
        .bind(key)
        .bind(hash)
        .bind(&owner)
        .execute(pool)
        .await?
        .rows_affected()
        == 1;
    if inserted {
        return Ok(ours());
    }
    let row = sqlx::query(
        "SELECT request_hash, state, response_status, response_body, \
         created_at < NOW(6) - INTERVAL ? SECOND AS abandoned FROM idempotency_keys WHERE idempotency_key = ?",
    )
    .bind(lock.as_secs())
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        // Released between our insert and our read: try once more.
        return Box::pin(claim(pool, key, hash, ttl, lock)).await;
    };
    if row.get::<String, _>("request_hash") != hash {
        return Err(ApiError::IdempotencyKeyReused);
    }
    if row.get::<String, _>("state") == "done" {
        let status = StatusCode::from_u16(row.get::<i16, _>("response_status") as u16).unwrap_or(StatusCode::OK);
        return Ok(Claim::Replay { status, body: row.get::<Option<String>, _>("response_body").unwrap_or_default() });
    }
    let abandoned: i64 = row.try_get::<i64, _>("abandoned").or_else(|_| row.try_get::<i32, _>("abandoned").map(i64::from))?;
    if abandoned == 1 {
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET created_at = NOW(6), owner = ? WHERE idempotency_key = ? AND state = 'in_flight' \
             AND created_at < NOW(6) - INTERVAL ? SECOND",
        )
        .bind(&owner)
        .bind(key)
        .bind(lock.as_secs())
        .execute(pool)
        .await?
        .rows_affected();
        if taken == 1 {
            return Ok(ours());
        }
    }
    Err(ApiError::IdempotencyKeyInFlight)
}

/// Stores the answer to replay, if the claim is still ours. Returns false when it is not (it was
/// taken over after our lock timeout, or already completed): then nothing is written.
pub async fn complete<'c>(conn: impl sqlx::Executor<'c, Database = sqlx::MySql>, claim: &Claimed, status: StatusCode, body: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', response_status = ?, response_body = ? \
         WHERE idempotency_key = ? AND owner = ? AND state = 'in_flight'",
    )
    .bind(status.as_u16() as i16)
    .bind(body)
    .bind(&claim.key)
    .bind(&claim.owner)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets our claim after a server error, so the client can retry. Someone else's claim stays.
pub async fn release(pool: &MySqlPool, claim: &Claimed) -> sqlx::Result<bool> {
    let gone = sqlx::query("DELETE FROM idempotency_keys WHERE idempotency_key = ? AND owner = ? AND state = 'in_flight'")
        .bind(&claim.key)
        .bind(&claim.owner)
        .execute(pool)
        .await?;
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
