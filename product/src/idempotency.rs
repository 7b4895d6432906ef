//! `Idempotency-Key` on `POST /reserve` (the records: [`sagaway_common::idempotency`]). The
//! request hash is a plain SHA-256 of the parsed request: a reservation request holds no secret.
//! A key is its caller's (the token's subject): records are `(caller, key)`, so another user's
//! request under the same key never replays, refuses (422) or waits behind (409) someone else's.

use std::time::Duration;

use http::HeaderMap;
pub use sagaway_common::idempotency::{Claim, Claimed, REPLAYED_HEADER, complete, release, run_purge};
use sagaway_common::idempotency::{self as records, ClaimError};
use sha2::{Digest, Sha256};
use sqlx::MySqlPool;

use crate::error::{ApiError, ApiResult};

/// The `Idempotency-Key` header, validated (1–255 visible ASCII characters).
pub fn key_from(headers: &HeaderMap) -> ApiResult<Option<String>> {
    records::key_from(headers).map_err(|m| ApiError::invalid("Idempotency-Key", m))
}

/// Hex SHA-256 of a request as canonical JSON (the caller builds it from the parsed request, so
/// the client's field order and spacing do not matter).
pub fn request_hash(request: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(request.to_string().as_bytes()))
}

/// Claims `caller`'s `key` for a request that hashes to `hash`.
pub async fn claim(pool: &MySqlPool, caller: &str, key: &str, hash: &str, ttl: Duration, lock: Duration) -> ApiResult<Claim> {
    records::claim_for(pool, caller, key, &[hash.to_string()], ttl, lock).await.map_err(|e| match e {
        ClaimError::Reused => ApiError::IdempotencyKeyReused,
        ClaimError::InFlight => ApiError::IdempotencyKeyInFlight,
        ClaimError::Database(e) => e.into(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::request_hash;

    #[test]
    fn equal_requests_hash_equal_and_different_ones_differ() {
        let a = request_hash(&json!({"product_id": 1, "user_id": "u", "quantity": 2}));
        assert_eq!(a, request_hash(&json!({"product_id": 1, "user_id": "u", "quantity": 2})));
        assert_ne!(a, request_hash(&json!({"product_id": 1, "user_id": "u", "quantity": 3})));
        assert_ne!(a, request_hash(&json!({"product_id": 1, "user_id": "v", "quantity": 2})));
        assert_eq!(a.len(), 64);
    }
}
