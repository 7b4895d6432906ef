//! Operator bootstrap: `identity create-user`, `identity token`, and `IDENTITY_BOOTSTRAP_ADMIN`.

use anyhow::{Context, bail};
use sqlx::MySqlPool;

use crate::{
    passwords::{Password, Passwords},
    tokens::Issuer,
    users::{self, NewUser, User},
};

/// What [`provision`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Provisioned {
    /// A new user. `generated_password` is set when no password was given: show it once.
    Created { generated_password: Option<Password> },
    /// An existing user was made an admin.
    Promoted,
    /// An existing user, left as it was (its password is never changed here).
    Existing,
}

/// Creates `username` (with `password`, or a generated one), an admin when `admin`; an existing
/// user is promoted when `admin`, otherwise left alone.
pub async fn provision(
    pool: &MySqlPool,
    passwords: &Passwords,
    username: &str,
    password: Option<Password>,
    admin: bool,
) -> anyhow::Result<(Provisioned, User)> {
    users::check_username(username).map_err(|v| anyhow::anyhow!("{username:?}: {v}"))?;
    if users::find(pool, username).await?.is_none() {
        let generated = password.is_none();
        let password = password.unwrap_or_else(Password::generate);
        users::check_password(password.expose(), username).map_err(|v| anyhow::anyhow!("{v}"))?;
        let password_hash = passwords.hash(&password).await?;
        let new = NewUser { username, display_name: username, password_hash: &password_hash, is_admin: admin };
        if users::insert(pool, &new).await? {
            let user = users::find(pool, username).await?.context("the user just created is gone")?;
            tracing::info!(username, admin, "user created");
            return Ok((Provisioned::Created { generated_password: generated.then_some(password) }, user));
        }
        // Created concurrently by someone else: treat it as existing.
    }
    let user = users::find(pool, username).await?.context("user vanished")?;
    if admin && !user.is_admin {
        if !users::promote(pool, username).await? {
            bail!("user {username:?} vanished");
        }
        tracing::info!(username, "user promoted to admin");
        let user = users::find(pool, username).await?.context("user vanished")?;
        return Ok((Provisioned::Promoted, user));
    }
    Ok((Provisioned::Existing, user))
}

/// `IDENTITY_BOOTSTRAP_ADMIN`: makes sure `username` exists and is an admin. An existing user keeps
/// its password.
pub async fn bootstrap_admin(pool: &MySqlPool, passwords: &Passwords, username: &str, password: &Password) -> anyhow::Result<()> {
    let (outcome, _) = provision(pool, passwords, username, Some(password.clone()), true)
        .await
        .context("IDENTITY_BOOTSTRAP_ADMIN")?;
    match outcome {
        Provisioned::Created { .. } => tracing::info!(username, "bootstrap admin created"),
        Provisioned::Promoted => tracing::info!(username, "bootstrap admin: existing user promoted (password unchanged)"),
        Provisioned::Existing => tracing::info!(username, "bootstrap admin already present"),
    }
    Ok(())
}

/// `identity token`: an access token for `username` (created with a random password when missing,
/// promoted when `admin`), signed by `issuer`.
pub async fn token_for(pool: &MySqlPool, passwords: &Passwords, issuer: &Issuer, username: &str, admin: bool) -> anyhow::Result<String> {
    let (_, user) = provision(pool, passwords, username, None, admin).await?;
    issuer.access_token(&user.username, &user.role_names())
}
