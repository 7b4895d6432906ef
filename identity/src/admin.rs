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

/// What `IDENTITY_BOOTSTRAP_ADMIN` does about the user it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// No such user: create it, an admin, with the configured password.
    Create,
    /// The admin is there already (its password is left as it is).
    AlreadyAdmin,
    /// A user of that name exists and is not an admin: refuse. Signing up is open, so anyone may
    /// have taken the name first; making it an admin is an explicit act of an operator.
    Refuse,
}

/// The rule (pure).
pub fn bootstrap_step(existing: Option<&User>) -> Bootstrap {
    match existing {
        None => Bootstrap::Create,
        Some(u) if u.is_admin => Bootstrap::AlreadyAdmin,
        Some(_) => Bootstrap::Refuse,
    }
}

/// The error of [`Bootstrap::Refuse`]: says what to do.
fn refused(username: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "IDENTITY_BOOTSTRAP_ADMIN: the user {username:?} already exists and is not an admin; refusing to promote it \
         (signing up is open, so anyone may hold that name). If the account is yours, promote it explicitly \
         (`identity create-user {username} --admin`, `scripts/stack user {username} --admin`); otherwise choose another username"
    )
}

/// `IDENTITY_BOOTSTRAP_ADMIN`: creates `username` as an admin with `password` when it does not
/// exist; accepts it when it is already an admin (password unchanged); refuses (an error: the
/// service does not start) when it exists and is not an admin.
pub async fn bootstrap_admin(pool: &MySqlPool, passwords: &Passwords, username: &str, password: &Password) -> anyhow::Result<()> {
    users::check_username(username).map_err(|v| anyhow::anyhow!("IDENTITY_BOOTSTRAP_ADMIN: {username:?}: {v}"))?;
    match bootstrap_step(users::find(pool, username).await?.as_ref()) {
        Bootstrap::AlreadyAdmin => {
            tracing::info!(username, "bootstrap admin already present");
            return Ok(());
        }
        Bootstrap::Refuse => return Err(refused(username)),
        Bootstrap::Create => {}
    }
    users::check_password(password.expose(), username).map_err(|v| anyhow::anyhow!("IDENTITY_BOOTSTRAP_ADMIN: {v}"))?;
    let password_hash = passwords.hash(password).await?;
    let new = NewUser { username, display_name: username, password_hash: &password_hash, is_admin: true };
    if users::insert(pool, &new).await? {
        tracing::info!(username, "bootstrap admin created");
        return Ok(());
    }
    // Taken in the meantime (a sign-up, or another replica's bootstrap): the same rule again.
    match bootstrap_step(users::find(pool, username).await?.as_ref()) {
        Bootstrap::AlreadyAdmin => Ok(()),
        _ => Err(refused(username)),
    }
}

/// `identity token`: an access token for `username` (created with a random password when missing,
/// promoted when `admin`), signed by `issuer`.
pub async fn token_for(pool: &MySqlPool, passwords: &Passwords, issuer: &Issuer, username: &str, admin: bool) -> anyhow::Result<String> {
    let (_, user) = provision(pool, passwords, username, None, admin).await?;
    issuer.access_token(&user.username, &user.role_names())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(is_admin: bool) -> User {
        User { username: "ops".into(), display_name: "ops".into(), password_hash: String::new(), is_admin }
    }

    #[test]
    fn bootstrap_creates_a_missing_admin_accepts_an_admin_and_refuses_anyone_else() {
        assert_eq!(bootstrap_step(None), Bootstrap::Create);
        assert_eq!(bootstrap_step(Some(&user(true))), Bootstrap::AlreadyAdmin);
        assert_eq!(bootstrap_step(Some(&user(false))), Bootstrap::Refuse);
        let message = refused("ops").to_string();
        assert!(message.contains("IDENTITY_BOOTSTRAP_ADMIN") && message.contains("not an admin") && message.contains("--admin"), "{message}");
    }
}
