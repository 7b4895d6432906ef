//! Checks a signed inter-bank request ([`crate::rules::interbank_auth`]) and remembers its nonce in
//! `interbank_nonces`: the primary key refuses a replay, across restarts and bank replicas.

use sqlx::MySqlPool;

use crate::rules::interbank_auth::{Credentials, Directory, Refusal, Request, SkewWindow, verify};

/// Why a request was refused, or the database failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Every check, in order: the headers, the signature against the sender's key in `directory`, the
/// timestamp (`now`, unix seconds, within `window`), then the nonce. Returns the sending bank.
pub async fn authenticate<'h>(
    pool: &MySqlPool,
    directory: &Directory,
    window: SkewWindow,
    now: i64,
    request: &Request<'_>,
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<String, AuthError> {
    let credentials = Credentials::from_headers(header)?;
    let verified = verify(request, &credentials, directory, now, window)?;
    let fresh = sqlx::query("INSERT IGNORE INTO interbank_nonces (bank, nonce, expires_at) VALUES (?, ?, ?)")
        .bind(&verified.bank)
        .bind(&verified.nonce)
        .bind(verified.remember_until)
        .execute(pool)
        .await?
        .rows_affected()
        == 1;
    if !fresh {
        return Err(Refusal::Replayed.into());
    }
    Ok(verified.bank)
}

/// Forgets nonces whose timestamps the skew window refuses anyway.
pub async fn purge_nonces(pool: &MySqlPool, now: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM interbank_nonces WHERE expires_at < ? LIMIT 1000").bind(now).execute(pool).await?.rows_affected())
}

/// Unix seconds by the system clock: signatures use real time on both sides (a bank's injectable
/// business clock may be set elsewhere in tests).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
