//! `/health/live`, `/health/ready` and `/metrics`, shaped like the other services' (common's
//! `with_operations` checks a Kafka broker too; identity has none, so its readiness is the database).

use std::time::{Duration, Instant};

use axum::{
    Json, Router,
    extract::{MatchedPath, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use sqlx::MySqlPool;

/// `app` plus the health and metrics routes, and request metrics for every route.
pub fn with_operations(app: Router, pool: MySqlPool) -> Router {
    let handle = sagaway_common::http::metrics_handle();
    let ops = Router::new()
        .route("/health/live", get(|| async { Json(json!({"status": "live"})) }))
        .route("/health/ready", get(ready))
        .with_state(pool)
        .route("/metrics", get(move || std::future::ready(handle.render())));
    app.merge(ops).layer(axum::middleware::from_fn(track_http))
}

/// `{"service": "identity", "status": "ready"|"not_ready", "checks": {"database": "up"|"down"}}`,
/// 503 when not ready; why is logged, never answered.
async fn ready(State(pool): State<MySqlPool>) -> Response {
    let db = tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&pool))
        .await
        .map_err(|_| "no answer within 2 s".to_string())
        .and_then(|res| res.map(|_| ()).map_err(|e| e.to_string()));
    if let Err(e) = &db {
        tracing::warn!(service = "identity", dependency = "database", error = %e, "readiness check failed");
    }
    let ok = db.is_ok();
    let body = json!({
        "service": "identity",
        "status": if ok { "ready" } else { "not_ready" },
        "checks": {"database": if ok { "up" } else { "down" }},
    });
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body)).into_response()
}

async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route).record(started.elapsed().as_secs_f64());
    res
}
