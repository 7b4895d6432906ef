//! Password hashing: argon2id with the `argon2` crate's defaults (m = 19 MiB, t = 2, p = 1), stored
//! as PHC strings. Hashing and verifying run on the blocking pool, at most `hash_concurrency` at
//! once. Passwords are only ever compared by argon2 verification.

use std::{fmt, sync::Arc};

use anyhow::Context;
use argon2::{
    Argon2, PasswordHasher, PasswordVerifier,
    password_hash::{PasswordHash, SaltString},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::TryRngCore;
use serde::Deserialize;
use tokio::sync::Semaphore;

/// A password (or any secret string) that `Debug` never shows.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// A random password: 24 characters of base64url (144 bits).
    pub fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(random_bytes::<18>()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).expect("the operating system's random source is available");
    bytes
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) of `password` with a fresh salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let phc = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc` (its own algorithm and parameters are used).
pub fn verify(password: &str, phc: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(anyhow::anyhow!("verifying a password: {e}")),
    }
}

/// The hasher the handlers share: bounded concurrency, and a dummy hash so that a login for an
/// unknown user costs the same verification as one for a known user.
pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
}

impl Passwords {
    /// Computes the dummy hash (one argon2 hash, on the blocking pool).
    pub async fn new(concurrency: usize) -> anyhow::Result<Self> {
        let dummy = tokio::task::spawn_blocking(|| hash(Password::generate().expose())).await.context("hashing task")??;
        Ok(Self { permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy: dummy.into() })
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash(password.expose())).await.context("hashing task")?
    }

    /// Verifies `password` against `phc`; with `None` (no such user) verifies against the dummy
    /// hash, taking as long, and answers false.
    pub async fn verify(&self, password: &Password, phc: Option<&str>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let known = phc.is_some();
        let phc: Arc<str> = phc.map(Arc::from).unwrap_or_else(|| self.dummy.clone());
        let password = password.clone();
        let matched = tokio::task::spawn_blocking(move || verify(password.expose(), &phc)).await.context("verifying task")??;
        Ok(known && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_defaults_and_a_fresh_salt() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify("correct horse battery", &a).unwrap());
        assert!(!verify("correct horse batterY", &a).unwrap());
        assert!(verify("x", "not a phc string").is_err());
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let p = Password::new("hunter2hunter2");
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert_eq!(Password::generate().expose().len(), 24);
        assert_ne!(Password::generate(), Password::generate());
    }

    #[tokio::test]
    async fn unknown_users_are_verified_against_the_dummy_and_refused() {
        let passwords = Passwords::new(1).await.unwrap();
        let p = Password::new("whatever-password");
        assert!(!passwords.verify(&p, None).await.unwrap());
        let stored = passwords.hash(&p).await.unwrap();
        assert!(passwords.verify(&p, Some(&stored)).await.unwrap());
    }
}
