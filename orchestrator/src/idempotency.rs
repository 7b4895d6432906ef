//! `Idempotency-Key` on `POST /payment` (the records: [`sagaway_common::idempotency`]).
//!
//! The body hash is an HMAC under the idempotency subkey of the card keys: the body holds a card
//! number, and a plain hash of a PAN can be brute-forced. A body has one hash per configured key;
//! the active key's is recorded, and a record matching any of them is the same body — so a retry
//! after a key rotation replays instead of answering 422.
//!
//! A key is its caller's (the token's subject): records are `(caller, key)`, so another user's
//! request under the same key is a request of its own — it never replays, refuses (422) or waits
//! behind (409) someone else's.

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

/// The keyed hashes of a canonical JSON body (serde_json sorts object keys): under the active key
/// first (the one recorded), then under every other configured key ([`card::idempotency_hashes`]).
pub fn body_hashes(key: &CardKey, body: &serde_json::Value) -> Vec<String> {
    card::idempotency_hashes(key, body.to_string().as_bytes())
}

/// Claims `caller`'s `key` for a request whose body hashes to `hash`.
pub async fn claim(pool: &MySqlPool, caller: &str, key: &str, hash: &str, ttl: Duration, lock: Duration) -> ApiResult<Claim> {
    claim_matching(pool, caller, key, &[hash.to_string()], ttl, lock).await
}

/// Claims `caller`'s `key` for a request whose body hashes to any of `hashes` ([`body_hashes`]).
pub async fn claim_matching(pool: &MySqlPool, caller: &str, key: &str, hashes: &[String], ttl: Duration, lock: Duration) -> ApiResult<Claim> {
    records::claim_for(pool, caller, key, hashes, ttl, lock).await.map_err(|e| match e {
        ClaimError::Reused => ApiError::IdempotencyKeyReused,
        ClaimError::InFlight => ApiError::IdempotencyKeyInFlight,
        ClaimError::Database(e) => e.into(),
    })
}
