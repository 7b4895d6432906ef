//! Rotating refresh tokens.
//!
//! A login starts a *family*; each refresh token is single use and is exchanged for the next one of
//! the same family. Only the SHA-256 of a token is stored. Presenting a token that was already used
//! means two parties hold the family (a stolen token, or a client replaying): the whole family is
//! revoked, so every token of it fails from then on. Logout revokes the family too. A family keeps
//! the audiences its login was granted: a refresh may ask for fewer, never for more.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{MySqlPool, MySqlConnection};

use crate::passwords::random_bytes;

/// What the database knows about a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub family_id: String,
    pub username: String,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    pub family_revoked: bool,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Valid and unused: mark it used and issue the next token of its family.
    Rotate,
    /// Already used: revoke its family and refuse (`refresh_token_reused`).
    Reused,
    /// Unknown, expired, or of a revoked family: refuse (`invalid_refresh_token`).
    Invalid,
}

/// The rotation rule. An expired token is just invalid (whoever holds it can do nothing with it);
/// an unexpired used one is a replay, even when its family is already revoked.
pub fn decide(stored: Option<&Stored>, now: DateTime<Utc>) -> Decision {
    match stored {
        None => Decision::Invalid,
        Some(s) if s.expires_at <= now => Decision::Invalid,
        Some(s) if s.used => Decision::Reused,
        Some(s) if s.family_revoked => Decision::Invalid,
        Some(_) => Decision::Rotate,
    }
}

/// A new refresh token: 32 random bytes in base64url (43 characters).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What is stored instead of the token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// Starts a family for `username` (a login granted `audiences`) and returns its first token.
pub async fn start_family(pool: &MySqlPool, username: &str, audiences: &[String], now: DateTime<Utc>, ttl: Duration) -> sqlx::Result<String> {
    let family_id = uuid::Uuid::new_v4().to_string();
    let audiences = serde_json::to_string(audiences).expect("strings serialise");
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO refresh_families (id, username, created_at, audiences) VALUES (?, ?, ?, ?)")
        .bind(&family_id)
        .bind(username)
        .bind(now)
        .bind(audiences)
        .execute(&mut *tx)
        .await?;
    let token = insert_token(&mut tx, &family_id, now, ttl).await?;
    tx.commit().await?;
    Ok(token)
}

async fn insert_token(conn: &mut MySqlConnection, family_id: &str, now: DateTime<Utc>, ttl: Duration) -> sqlx::Result<String> {
    let token = new_token();
    sqlx::query("INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) VALUES (?, ?, ?, ?)")
        .bind(&token_hash(&token)[..])
        .bind(family_id)
        .bind(now)
        .bind(expiry(now, ttl))
        .execute(conn)
        .await?;
    Ok(token)
}

/// The audiences the login of `token` was granted: `None` for an unknown token or a family recorded
/// before audiences were (the caller then uses the defaults; [`rotate`] decides whether the token
/// is any good).
pub async fn audiences_of(pool: &MySqlPool, token: &str) -> sqlx::Result<Option<Vec<String>>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT f.audiences FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = ?")
            .bind(&token_hash(token)[..])
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(a,)| a).and_then(|a| serde_json::from_str(&a).ok()))
}

/// The outcome of presenting a refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The next token of the family, for `username`, whose login was granted `audiences` (`None`:
    /// a family recorded before audiences were, which gets the defaults).
    Rotated { username: String, token: String, audiences: Option<Vec<String>> },
    /// The token had been used before; its family is now revoked.
    Reused,
    Invalid,
}

/// Applies [`decide`] to `token` in one transaction holding its row lock (two concurrent uses of
/// one token: the second sees it used). The username is read as text like [`users::find`](crate::users::find) does.
pub async fn rotate(pool: &MySqlPool, token: &str, now: DateTime<Utc>, ttl: Duration) -> sqlx::Result<Rotation> {
    let hash = token_hash(token);
    let mut tx = pool.begin().await?;
    let row: Option<(String, String, DateTime<Utc>, bool, bool, Option<String>)> = sqlx::query_as(
        "SELECT t.family_id, CONVERT(f.username USING utf8mb4), t.expires_at, t.used_at IS NOT NULL, f.revoked_at IS NOT NULL, f.audiences \
         FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
         WHERE t.token_hash = ? FOR UPDATE",
    )
    .bind(&hash[..])
    .fetch_optional(&mut *tx)
    .await?;
    let audiences = row.as_ref().and_then(|r| r.5.as_deref()).and_then(|a| serde_json::from_str::<Vec<String>>(a).ok());
    let stored = row.map(|(family_id, username, expires_at, used, family_revoked, _)| Stored {
        family_id,
        username,
        expires_at,
        used,
        family_revoked,
    });
    match (decide(stored.as_ref(), now), stored) {
        (Decision::Rotate, Some(s)) => {
            sqlx::query("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?")
                .bind(now)
                .bind(&hash[..])
                .execute(&mut *tx)
                .await?;
            let next = insert_token(&mut tx, &s.family_id, now, ttl).await?;
            tx.commit().await?;
            Ok(Rotation::Rotated { username: s.username, token: next, audiences })
        }
        (Decision::Reused, Some(s)) => {
            revoke_family(&mut tx, &s.family_id, now).await?;
            tx.commit().await?;
            tracing::warn!(username = %s.username, family_id = %s.family_id, "refresh token reused; its family is revoked");
            Ok(Rotation::Reused)
        }
        _ => Ok(Rotation::Invalid),
    }
}

async fn revoke_family(conn: &mut MySqlConnection, family_id: &str, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE refresh_families SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
        .bind(now)
        .bind(family_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Logout: revokes the family of `token`. Unknown tokens are ignored.
pub async fn revoke(pool: &MySqlPool, token: &str, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE refresh_families f JOIN refresh_tokens t ON t.family_id = f.id \
         SET f.revoked_at = COALESCE(f.revoked_at, ?) WHERE t.token_hash = ?",
    )
    .bind(now)
    .bind(&token_hash(token)[..])
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes the families whose every token has expired (their tokens go with them). Returns how
/// many families.
pub async fn purge(pool: &MySqlPool, now: DateTime<Utc>) -> sqlx::Result<u64> {
    let res = sqlx::query(
        "DELETE FROM refresh_families WHERE created_at < ? \
         AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.id AND t.expires_at > ?)",
    )
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(res.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn stored(used: bool, family_revoked: bool) -> Stored {
        Stored { family_id: "f".into(), username: "alice".into(), expires_at: at(100), used, family_revoked }
    }

    #[test]
    fn a_fresh_token_rotates() {
        assert_eq!(decide(Some(&stored(false, false)), at(0)), Decision::Rotate);
    }

    #[test]
    fn a_used_token_is_a_replay_even_in_a_revoked_family() {
        assert_eq!(decide(Some(&stored(true, false)), at(0)), Decision::Reused);
        assert_eq!(decide(Some(&stored(true, true)), at(0)), Decision::Reused);
    }

    #[test]
    fn unknown_expired_and_revoked_tokens_are_invalid() {
        assert_eq!(decide(None, at(0)), Decision::Invalid);
        assert_eq!(decide(Some(&stored(false, false)), at(100)), Decision::Invalid, "expiry is exclusive");
        assert_eq!(decide(Some(&stored(true, false)), at(200)), Decision::Invalid, "an expired replay is just invalid");
        assert_eq!(decide(Some(&stored(false, true)), at(0)), Decision::Invalid);
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a.clone()));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
