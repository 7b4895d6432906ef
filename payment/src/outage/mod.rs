//! The acquirer outage switch (`GET`/`POST /admin/outage`): while on, every acquirer call fails
//! with the transient error `acquirer_unavailable`, which counts as an attempt and is retried like
//! any other transient error (so a long outage ends in the dead-letter topic).
//!
//! The flag lives in the `settings` table only, and every charge attempt reads it inside its own
//! transaction (one primary-key lookup). So it survives a restart and holds for every instance of
//! the service at once, with no in-memory copy that could disagree with the database.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use sagaway_common::http::ApiJson;
use serde::{Deserialize, Serialize};
use sqlx::{MySqlConnection, Row};
use utoipa::ToSchema;

use crate::{AppState, error::ApiResult};

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

/// Is the simulated acquirer down?
#[utoipa::path(get, path = "/admin/outage", tag = "admin", responses((status = 200, body = OutageState)))]
pub async fn get(State(app): State<AppState>) -> ApiResult<Json<OutageState>> {
    let mut conn = app.pool.acquire().await?;
    Ok(Json(load(&mut conn).await?))
}

/// Turn the simulated acquirer outage on or off.
#[utoipa::path(post, path = "/admin/outage", tag = "admin", request_body = OutageRequest,
    responses((status = 200, body = OutageState), (status = 400, description = "malformed JSON"),
              (status = 422, description = "`enabled` missing or not a boolean")))]
pub async fn set(State(app): State<AppState>, ApiJson(req): ApiJson<OutageRequest>) -> ApiResult<Json<OutageState>> {
    let mut conn = app.pool.acquire().await?;
    sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = NOW(6)")
        .bind(SETTING)
        .bind(if req.enabled { "true" } else { "false" })
        .execute(&mut *conn)
        .await?;
    tracing::warn!(enabled = req.enabled, "acquirer outage switch flipped");
    Ok(Json(load(&mut conn).await?))
}
