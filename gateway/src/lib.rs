//! The gateway: Sagaway's one origin for browsers and clients (port 8080).
//!
//! # Layout
//! - [`routes`]: which service answers which `/api/…` path, and what the edge checks first (pure).
//! - [`proxy`]: forwards `/api/…` to that service — bodies streamed, a deadline per request, the
//!   token checked at the edge (the services check again), a request id passed on.
//! - [`push`]: live events — `GET /api/events`, `GET /api/orders/{id}/events` (Server-Sent Events
//!   fed from `order.events` and the banks' `bank.events`, resumable with `Last-Event-ID`) and the
//!   same over a WebSocket at `/api/ws` (a single-use ticket from `POST /api/ws/ticket`).
//! - [`web`]: the web app (`web/`), compiled in and served at `/`.
//! - [`api_doc`]: the OpenAPI document of the gateway's own routes (`/openapi.json`, `/docs/`).
//! - [`config`]: settings from the environment.
//! - [`Application`]: binds, starts the event feed, serves until shutdown.

pub mod api_doc;
pub mod config;
pub mod proxy;
pub mod push;
pub mod routes;
pub mod web;

use std::sync::{Arc, atomic::Ordering};

use anyhow::Context;
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{any, get},
};
use sagaway_common::auth::{Verifier, protect};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use push::hub::Hub;

/// What every handler can reach.
#[derive(Clone)]
pub struct Gateway {
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub verifier: Arc<Verifier>,
    pub hub: Arc<Hub>,
    /// Single-use tickets for WebSocket handshakes.
    pub tickets: Arc<push::tickets::Tickets>,
    /// Ends the open event streams when the gateway stops (so the graceful shutdown can finish).
    pub shutdown: CancellationToken,
}

pub fn router(gw: Gateway) -> Router {
    let streams = protect(
        Router::new()
            .route("/api/events", get(push::sse::events))
            .route("/api/orders/{id}/events", get(push::sse::order_events))
            .route("/api/ws/ticket", axum::routing::post(push::ws::ticket)),
        gw.verifier.clone(),
    );
    let metrics = sagaway_common::http::metrics_handle();
    let bank_codes: Vec<String> = gw.config.upstreams.banks.keys().cloned().collect();
    Router::new()
        .route("/health/live", get(|| async { Json(json!({"status": "live"})) }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(move || std::future::ready(metrics.render())))
        .merge(streams)
        // The ticket in the query authenticates the handshake (a browser cannot send a header).
        .route("/api/ws", get(push::ws::socket))
        .route("/api/banks", get(banks))
        .merge(sagaway_common::http::api_reference(move || api_doc::document(&bank_codes)))
        .route("/api/{*rest}", any(proxy::forward))
        .fallback(web::serve)
        .with_state(gw)
}

/// The banks behind this gateway (`/api/banks/{code}/…`), for the web app's bank pages.
async fn banks(State(gw): State<Gateway>) -> Json<serde_json::Value> {
    Json(json!({"banks": gw.config.upstreams.banks.keys().collect::<Vec<_>>()}))
}

/// Ready once the event feed has its starting positions (the topics exist and the broker answers).
async fn ready(State(gw): State<Gateway>) -> Response {
    if gw.hub.ready.load(Ordering::Acquire) {
        Json(json!({"service": "gateway", "status": "ready", "checks": {"event_feed": "up"}})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"service": "gateway", "status": "not_ready", "checks": {"event_feed": "down"}}))).into_response()
    }
}

/// A built gateway, bound to its port, not yet serving.
pub struct Application {
    port: u16,
    gw: Gateway,
    listener: tokio::net::TcpListener,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port)).await.with_context(|| format!("binding {}:{}", config.host, config.port))?;
        let port = listener.local_addr()?.port();
        let http = reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(30)).tcp_nodelay(true).build()?;
        let gw = Gateway { verifier: Verifier::new(config.auth.clone()), config: Arc::new(config), http, hub: Hub::new(), tickets: Arc::default(), shutdown: CancellationToken::new() };
        Ok(Self { port, gw, listener })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled; then ends the event streams and drains.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let gw = self.gw.clone();
        let feed = tokio::spawn(push::feed::run(gw.hub.clone(), gw.config.kafka_brokers.clone(), gw.config.event_topics.clone(), gw.shutdown.clone()));
        tracing::info!(port = self.port, "gateway listening");
        let streams = gw.shutdown.clone();
        let served = axum::serve(self.listener, router(gw))
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                streams.cancel();
            })
            .await
            .context("HTTP server");
        self.gw.shutdown.cancel();
        let _ = feed.await;
        served
    }
}
