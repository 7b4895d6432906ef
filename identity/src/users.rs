//! Users: the rules a username, password and display name follow (pure), and the `users` table.
//!
//! The username is the user id everywhere in Sagaway (the `sub` of every token, the `user_id` of
//! reservations and orders), so it follows the same alphabet the services accept: 1–64 ASCII
//! letters, digits and `_ - . @ :`. It is unique byte for byte (`alice` and `Alice` are two users):
//! the column has a binary collation.

use serde::Serialize;
use sqlx::MySqlPool;
use utoipa::ToSchema;

pub const USERNAME_MAX_CHARS: usize = 64;
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 1024;
pub const DISPLAY_NAME_MAX_CHARS: usize = 100;

/// Why a sign-up field is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    #[error("username must be 1-64 characters of letters, digits and _ - . @ :")]
    Username,
    #[error("password must be at least 10 characters")]
    PasswordTooShort,
    #[error("password must not be the username")]
    PasswordIsUsername,
    #[error("password must be at most 1024 characters")]
    PasswordTooLong,
    #[error("display_name must be 1-100 characters, without control characters")]
    DisplayName,
}

impl RuleViolation {
    /// The request field at fault.
    pub fn field(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::PasswordTooShort | Self::PasswordIsUsername | Self::PasswordTooLong => "password",
            Self::DisplayName => "display_name",
        }
    }

    /// The problem `code`: `weak_password` for a guessable password, `validation_failed` otherwise.
    pub fn code(self) -> &'static str {
        match self {
            Self::PasswordTooShort | Self::PasswordIsUsername => "weak_password",
            _ => "validation_failed",
        }
    }
}

/// 1–64 ASCII letters, digits and `_ - . @ :` (the user-id alphabet of the services).
pub fn check_username(username: &str) -> Result<(), RuleViolation> {
    let ok = !username.is_empty()
        && username.len() <= USERNAME_MAX_CHARS
        && username.chars().all(|c| c.is_ascii_alphanumeric() || "_-.@:".contains(c));
    if ok { Ok(()) } else { Err(RuleViolation::Username) }
}

/// 10–1024 characters (Unicode scalar values), and not the username itself in any letter case.
pub fn check_password(password: &str, username: &str) -> Result<(), RuleViolation> {
    let chars = password.chars().count();
    if chars > PASSWORD_MAX_CHARS {
        return Err(RuleViolation::PasswordTooLong);
    }
    if chars < PASSWORD_MIN_CHARS {
        return Err(RuleViolation::PasswordTooShort);
    }
    if password.to_lowercase() == username.to_lowercase() {
        return Err(RuleViolation::PasswordIsUsername);
    }
    Ok(())
}

/// The display name to store: the given one trimmed (1–100 characters, no control characters), or
/// the username when none is given.
pub fn display_name(given: Option<&str>, username: &str) -> Result<String, RuleViolation> {
    let Some(given) = given else { return Ok(username.to_string()) };
    let name = given.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > DISPLAY_NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(RuleViolation::DisplayName);
    }
    Ok(name.to_string())
}

/// A role carried in the `roles` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every user: may shop (reserve, pay, see their own orders).
    Customer,
    /// Operators: the admin APIs (dead letters, catalogue management).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }
}

/// Every user is a customer; an admin is one too.
pub fn roles(is_admin: bool) -> Vec<Role> {
    if is_admin { vec![Role::Customer, Role::Admin] } else { vec![Role::Customer] }
}

/// A row of `users`. `Debug` leaves the password hash out.
#[derive(Clone, sqlx::FromRow)]
pub struct User {
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub is_admin: bool,
}

impl User {
    pub fn roles(&self) -> Vec<Role> {
        roles(self.is_admin)
    }

    /// The roles as the strings the `roles` claim carries.
    pub fn role_names(&self) -> Vec<&'static str> {
        self.roles().into_iter().map(Role::as_str).collect()
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("is_admin", &self.is_admin)
            .finish_non_exhaustive()
    }
}

/// A new user's fields, already checked.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
}

/// A username column as sqlx can read it: MariaDB flags a `utf8mb4_bin` column as binary, which sqlx
/// refuses to decode as a `String`; the conversion drops the flag (comparisons still use the column's
/// binary collation, as they are made on the column itself).
pub(crate) const USERNAME_AS_TEXT: &str = "CONVERT(username USING utf8mb4)";

/// The user named exactly `username` (byte for byte).
pub async fn find(pool: &MySqlPool, username: &str) -> sqlx::Result<Option<User>> {
    let sql = format!("SELECT {USERNAME_AS_TEXT} AS username, display_name, password_hash, is_admin FROM users WHERE username = ?");
    sqlx::query_as::<_, User>(&sql)
        .bind(username)
        .fetch_optional(pool)
        .await
}

/// Inserts a user; `Ok(false)` when the username is taken.
pub async fn insert(pool: &MySqlPool, user: &NewUser<'_>) -> sqlx::Result<bool> {
    let res = sqlx::query("INSERT INTO users (username, display_name, password_hash, is_admin) VALUES (?, ?, ?, ?)")
        .bind(user.username)
        .bind(user.display_name)
        .bind(user.password_hash)
        .bind(user.is_admin)
        .execute(pool)
        .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) if sagaway_messaging::db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes `username` an admin; `Ok(false)` when there is no such user.
pub async fn promote(pool: &MySqlPool, username: &str) -> sqlx::Result<bool> {
    // `is_admin = TRUE` on a row that already is one still "matches": rows_affected counts changed
    // rows, so look the user up instead of trusting it.
    sqlx::query("UPDATE users SET is_admin = TRUE WHERE username = ?").bind(username).execute(pool).await?;
    Ok(find(pool, username).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_use_the_user_id_alphabet() {
        for ok in ["alice", "Alice", "a", "bob_1", "carol.d-e", "dave@example.com", "tenant:erin", &"x".repeat(64)] {
            assert_eq!(check_username(ok), Ok(()), "{ok}");
        }
        for bad in ["", " alice", "alice ", "al ice", "alïce", "a/b", "a\nb", "<script>", &"x".repeat(65)] {
            assert_eq!(check_username(bad), Err(RuleViolation::Username), "{bad:?}");
        }
    }

    #[test]
    fn passwords_need_ten_characters_and_are_bounded() {
        assert_eq!(check_password("123456789", "alice"), Err(RuleViolation::PasswordTooShort));
        assert_eq!(check_password("1234567890", "alice"), Ok(()));
        // characters, not bytes: nine accented letters are still too short
        assert_eq!(check_password("ééééééééé", "alice"), Err(RuleViolation::PasswordTooShort));
        assert_eq!(check_password(&"p".repeat(1024), "alice"), Ok(()));
        assert_eq!(check_password(&"p".repeat(1025), "alice"), Err(RuleViolation::PasswordTooLong));
        assert_eq!(check_password("Alice.Smith", "alice.smith"), Err(RuleViolation::PasswordIsUsername));
    }

    #[test]
    fn violations_name_their_field_and_code() {
        assert_eq!((RuleViolation::PasswordTooShort.field(), RuleViolation::PasswordTooShort.code()), ("password", "weak_password"));
        assert_eq!((RuleViolation::PasswordTooLong.field(), RuleViolation::PasswordTooLong.code()), ("password", "validation_failed"));
        assert_eq!((RuleViolation::Username.field(), RuleViolation::Username.code()), ("username", "validation_failed"));
        assert_eq!(RuleViolation::DisplayName.field(), "display_name");
    }

    #[test]
    fn display_name_defaults_to_the_username_and_is_trimmed() {
        assert_eq!(display_name(None, "alice").unwrap(), "alice");
        assert_eq!(display_name(Some("  Alice Liddell "), "alice").unwrap(), "Alice Liddell");
        assert_eq!(display_name(Some("   "), "alice"), Err(RuleViolation::DisplayName));
        assert_eq!(display_name(Some("a\u{7}b"), "alice"), Err(RuleViolation::DisplayName));
        assert_eq!(display_name(Some(&"n".repeat(101)), "alice"), Err(RuleViolation::DisplayName));
    }

    #[test]
    fn every_user_is_a_customer_and_admins_are_also_admin() {
        assert_eq!(roles(false), vec![Role::Customer]);
        assert_eq!(roles(true), vec![Role::Customer, Role::Admin]);
        assert_eq!(serde_json::to_value(roles(true)).unwrap(), serde_json::json!(["customer", "admin"]));
    }
}
