//! The HTTP API over the outage switch: `GET`/`POST /admin/outage`, over the functions of [`super`].

use axum::{Json, extract::State};
use sagaway_common::http::ApiJson;

use super::{OutageRequest, OutageState, state, switch};
use crate::{AppState, error::ApiResult};

/// Is the simulated acquirer down?
#[utoipa::path(get, path = "/admin/outage", tag = "admin", responses((status = 200, body = OutageState)))]
pub async fn get(State(app): State<AppState>) -> ApiResult<Json<OutageState>> {
    Ok(Json(state(&app.pool).await?))
}

/// Turn the simulated acquirer outage on or off.
#[utoipa::path(post, path = "/admin/outage", tag = "admin", request_body = OutageRequest,
    responses((status = 200, body = OutageState), (status = 400, description = "malformed JSON"),
              (status = 422, description = "`enabled` missing or not a boolean")))]
pub async fn set(State(app): State<AppState>, ApiJson(req): ApiJson<OutageRequest>) -> ApiResult<Json<OutageState>> {
    Ok(Json(switch(&app.pool, req.enabled).await?))
}
