//! The gateway: Sagaway's one origin for browsers and clients (port 8080).
//!
//! # Layout
//! - [`path`]: the one reading of a request path — unreserved escapes decoded, dot-segments resolved,
//!   encoded separators refused — applied to every request before anything routes it (pure).
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
pub mod path;
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
    /// The bounds of resumes with `Last-Event-ID`.
    pub replays: Arc<Replays>,
    /// Ends the open event streams when the gateway stops (so the graceful shutdown can finish).
    pub shutdown: CancellationToken,
}

/// What bounds the resumes: a rate per user and the number reading Kafka at once.
pub struct Replays {
    pub rate: Arc<sagaway_common::rate::PerUser>,
    pub slots: tokio::sync::Semaphore,
}

impl Replays {
    pub fn new(limits: &config::Limits) -> Self {
        Self { rate: sagaway_common::rate::PerUser::new(f64::from(limits.replays_per_minute) / 60.0, 5), slots: tokio::sync::Semaphore::new(limits.replay_concurrency) }
    }
}

/// The gateway as served: every request's path normalised ([`path`]) before [`router`] routes it —
/// a path with an encoded separator answers 400 `invalid_path` without reaching any route.
pub fn app(gw: Gateway) -> Router {
    // The outer router only hands every request to the inner one, through the rewrite: a layer
    // on the inner router would run after its routing, on the path as received.
    Router::new().fallback_service(router(gw)).layer(axum::middleware::from_fn(normalise))
}

/// Rewrites the request's path to its normal form, or refuses it.
async fn normalise(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let normal = match path::normalise(req.uri().path()) {
        Ok(n) => n.path(),
        Err(e) => return sagaway_common::http::Problem::new(StatusCode::BAD_REQUEST, "invalid_path", e.to_string()).into_response(),
    };
    if normal != req.uri().path() {
        let target = match req.uri().query() {
            Some(q) => format!("{normal}?{q}"),
            None => normal,
        };
        let mut parts = req.uri().clone().into_parts();
        match target.parse() {
            Ok(pq) => parts.path_and_query = Some(pq),
            Err(_) => return sagaway_common::http::Problem::new(StatusCode::BAD_REQUEST, "invalid_path", "the path cannot be read").into_response(),
        }
        match axum::http::Uri::from_parts(parts) {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return sagaway_common::http::Problem::new(StatusCode::BAD_REQUEST, "invalid_path", "the path cannot be read").into_response(),
        }
    }
    next.run(req).await
}

/// The gateway's own `/metrics`: an admin's token, or the configured scrape token
/// (`GATEWAY_METRICS_TOKEN[_FILE]`, compared in constant time).
async fn metrics_text(State(gw): State<Gateway>, headers: axum::http::HeaderMap) -> Response {
    let token = match sagaway_common::auth::bearer_token(headers.get(axum::http::header::AUTHORIZATION)) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let scrape = gw.config.metrics_token.as_deref().is_some_and(|expected| same(expected.as_bytes(), token.as_bytes()));
    if !scrape {
        match gw.verifier.verify(token).await {
            Ok(caller) if caller.is_admin() => {}
            Ok(_) => return sagaway_common::http::Problem::new(StatusCode::FORBIDDEN, "forbidden", "the gateway's metrics need the admin role or the scrape token").into_response(),
            Err(e) => return e.into_response(),
        }
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], sagaway_common::http::metrics_handle().render()).into_response()
}

/// Byte equality without an early exit (the scrape token is a secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn router(gw: Gateway) -> Router {
    let streams = protect(
        Router::new()
            .route("/api/events", get(push::sse::events))
            .route("/api/orders/{id}/events", get(push::sse::order_events))
            .route("/api/ws/ticket", axum::routing::post(push::ws::ticket)),
        gw.verifier.clone(),
    );
    // Installs the recorder now, so every metric from the start is kept.
    let _ = sagaway_common::http::metrics_handle();
    let bank_codes: Vec<String> = gw.config.upstreams.banks.keys().cloned().collect();
    Router::new()
        .route("/health/live", get(|| async { Json(json!({"status": "live"})) }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .merge(streams)
        // The ticket in the query authenticates the handshake (a browser cannot send a header).
        .route("/api/ws", get(push::ws::socket))
        .route("/api/banks", get(banks))
        .merge(sagaway_common::http::api_reference(move || api_doc::document(&bank_codes)))
        .route("/api/{*rest}", any(proxy::forward))
        .fallback(web::serve)
        .with_state(gw)
}

/// The banks behind this gateway (`/api/banks/{code}/…`), for the web app's bank pages, and the
/// currency of the catalogue's prices (the product service's answers carry none).
async fn banks(State(gw): State<Gateway>) -> Json<serde_json::Value> {
    Json(json!({"banks": gw.config.upstreams.banks.keys().collect::<Vec<_>>(), "currency": gw.config.catalogue_currency}))
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
        let gw = Gateway {
            verifier: Verifier::new(config.auth.clone()),
            tickets: Arc::new(push::tickets::Tickets::new(&config.limits)),
            replays: Arc::new(Replays::new(&config.limits)),
            config: Arc::new(config),
            http,
            hub: Hub::new(),
            shutdown: CancellationToken::new(),
        };
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
        // With each connection's address: the proxy names it in `X-Forwarded-For`.
        let served = axum::serve(self.listener, app(gw).into_make_service_with_connect_info::<std::net::SocketAddr>())
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
