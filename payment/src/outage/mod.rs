//! The acquirer outage switch (`GET`/`POST /admin/outage`): while on, every acquirer call fails
//! with the transient error `acquirer_unavailable`, which counts as an attempt and is retried like
//! any other transient error (so a long outage ends in the dead-letter topic).
//!
//! The flag lives in the `settings` table only, and every charge attempt reads it inside its own
//! transaction (one primary-key lookup). So it survives a restart and holds for every instance of
//! the service at once, with no in-memory copy that could disagree with the database.
//!
//! Its HTTP API is [`api`], over the functions here.

pub mod api;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{MySqlConnection, MySqlPool, Row};
use utoipa::ToSchema;

const SETTING: &str = "acquirer_outage";

/// Whether the simulated acquirer is down.
pub async fn is_on(conn: &mut MySqlConnection) -> sqlx::Result<bool> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM settings WHERE name = ?").bind(SETTING).fetch_optional(conn).await?;
    Ok(value.as_deref() == Some("true"))
}

/// `POST /admin/outage` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutageRequest {
    pub enabled: bool,
}

/// The switch's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutageState {
    pub enabled: bool,
    /// When it was last flipped (absent if never).
    pub updated_at: Option<DateTime<Utc>>,
}

async fn load(conn: &mut MySqlConnection) -> sqlx::Result<OutageState> {
    let row = sqlx::query("SELECT value, updated_at FROM settings WHERE name = ?").bind(SETTING).fetch_optional(conn).await?;
    Ok(match row {
        Some(r) => OutageState { enabled: r.get::<String, _>("value") == "true", updated_at: Some(r.get("updated_at")) },
        None => OutageState { enabled: false, updated_at: None },
    })
}

/// The switch's state now.
pub async fn state(pool: &MySqlPool) -> sqlx::Result<OutageState> {
    let mut conn = pool.acquire().await?;
    load(&mut conn).await
}

/// Turns the switch on or off; returns its new state.
pub async fn switch(pool: &MySqlPool, enabled: bool) -> sqlx::Result<OutageState> {
    let mut conn = pool.acquire().await?;
    sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = NOW(6)")
        .bind(SETTING)
        .bind(if enabled { "true" } else { "false" })
        .execute(&mut *conn)
        .await?;
    tracing::warn!(enabled, "acquirer outage switch flipped");
    load(&mut conn).await
}
