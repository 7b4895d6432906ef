//! `Idempotency-Key` on `POST /payment` (the records: [`sagaway_common::idempotency`]).
//!
//! The body hash is an HMAC under the card key: the body holds a card number, and a plain hash of
//! a PAN can be brute-forced.

use std::time::Duration;

use http::HeaderMap;
pub use sagaway_common::idempotency::{Claim, Claimed, REPLAYED_HEADER, complete, release, run_purge};
use sagaway_common::{
    card::{self, CardKey},
    idempotency::{self as records, ClaimError},
};
use sqlx::MySqlPool;

use crate::error::{ApiError, ApiResult};

/// The `Idempotency-Key` header, validated (1–255 visible ASCII characters).
pub fn key_from(headers: &HeaderMap) -> ApiResult<Option<String>> {
    records::key_from(headers).map_err(|m| ApiError::invalid("Idempotency-Key", m))
}

/// The keyed hash of a canonical JSON body (serde_json sorts object keys).
pub fn body_hash(key: &CardKey, body: &serde_json::Value) -> String {
    card::keyed_hash(key, body.to_string().as_bytes())
}

/// Claims `key` for a request whose body hashes to `hash`.
pub async fn claim(pool: &MySqlPool, key: &str, hash: &str, ttl: Duration, lock: Duration) -> ApiResult<Claim> {
    records::claim(pool, key, hash, ttl, lock).await.map_err(|e| match e {
        ClaimError::Reused => ApiError::IdempotencyKeyReused,
        ClaimError::InFlight => ApiError::IdempotencyKeyInFlight,
        ClaimError::Database(e) => e.into(),
    })
}
