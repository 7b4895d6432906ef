//! The identity service: accounts, login, rotating refresh tokens, and the JWT issuer every Sagaway
//! service trusts. Access tokens are EdDSA (Ed25519) JWTs; the public keys are served as a JWKS, so a
//! verifier needs nothing but `/.well-known/jwks.json`.
//!
//! # Layout
//! - [`config`]: settings from the environment (`IDENTITY_*`, `SAGAWAY_ENV`, `SAGAWAY_STATE_DIR`).
//! - [`keys`]: Ed25519 signing keys (PKCS#8 PEM files, `kid` derivation, JWKs, `keygen`, the dev key).
//! - [`tokens`]: the [`tokens::Issuer`]: claims and signing of access tokens, the JWKS.
//! - [`users`]: username / password / display-name rules (pure), roles, the `users` table.
//! - [`passwords`]: argon2id hashing and verification, off the async threads, bounded.
//! - [`client`]: the client address of a request (the peer, or `X-Forwarded-For` from a trusted proxy).
//! - [`throttle`]: failed-login throttling per (username, client address) with growing delays: the
//!   rule (pure) and its table.
//! - [`refresh`]: rotating refresh tokens with reuse detection: the rule (pure) and its tables.
//! - [`api`]: `POST /auth/signup`, `/auth/login`, `/auth/refresh`, `/auth/logout` (JSON).
//! - [`oauth`]: `POST /auth/token`, the RFC 6749 token endpoint (form-encoded).
//! - [`discovery`]: `/.well-known/jwks.json`, `/.well-known/openid-configuration`.
//! - [`admin`]: `create-user`, `token` and `IDENTITY_BOOTSTRAP_ADMIN`.
//! - [`error`]: errors as problem+json.
//! - [`Application`]: wires it together and runs it until shutdown.

pub mod admin;
pub mod api;
pub mod client;
pub mod config;
pub mod discovery;
pub mod error;
pub mod keys;
pub mod oauth;
pub mod passwords;
pub mod refresh;
pub mod throttle;
pub mod tokens;
pub mod users;

use sagaway_common::http::ProblemResponses;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    routing::{get, post},
};
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;
use passwords::Passwords;
use tokens::Issuer;

/// Migrations of the `identity` database, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: MySqlPool,
    pub issuer: Arc<Issuer>,
    pub passwords: Arc<Passwords>,
    pub refresh_ttl: Duration,
    pub login_throttle: throttle::Policy,
    /// The audiences a token may be granted (`IDENTITY_AUDIENCES`); the defaults are the issuer's.
    pub audiences: Arc<Vec<String>>,
    /// Whose `X-Forwarded-For` names the client (`IDENTITY_TRUSTED_PROXIES`).
    pub trusted_proxies: Arc<Vec<client::Cidr>>,
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&ProblemResponses),
    info(title = "Sagaway identity service",
         description = "Accounts, login, rotating refresh tokens, and the EdDSA JWT issuer (JWKS) the services trust."),
    paths(api::signup, api::login, api::refresh, api::logout, oauth::token, discovery::jwks, discovery::openid_configuration),
    components(schemas(api::SignupRequest, api::UserView, api::LoginRequest, api::RefreshRequest, api::LogoutRequest, api::TokenResponse,
                       oauth::TokenRequest, oauth::OAuthError,
                       users::Role, keys::Jwks, keys::Jwk, discovery::OpenIdConfiguration))
)]
pub struct ApiDoc;

/// The document this deployment serves: [`ApiDoc`] with the audiences a client may ask for (the
/// configured `IDENTITY_AUDIENCES`) as the `audience` fields' values, so a request the document
/// allows is one the service grants.
pub fn document(audiences: &[String]) -> serde_json::Value {
    let mut doc = sagaway_common::http::document_json(ApiDoc::openapi());
    for schema in ["LoginRequest", "RefreshRequest"] {
        let audience = &mut doc["components"]["schemas"][schema]["properties"]["audience"];
        if audience.is_object() {
            audience["items"] = serde_json::json!({"type": "string", "enum": audiences});
        }
    }
    doc
}

pub fn router(state: AppState) -> Router {
    let audiences = state.audiences.clone();
    Router::new()
        .route("/auth/signup", post(api::signup))
        .route("/auth/login", post(api::login))
        .route("/auth/refresh", post(api::refresh))
        .route("/auth/logout", post(api::logout))
        .route("/auth/token", post(oauth::token))
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route("/.well-known/openid-configuration", get(discovery::openid_configuration))
        .merge(sagaway_common::http::api_reference(move || document(&audiences)))
        .with_state(state)
}

/// A built service, bound to its port, not yet serving.
pub struct Application {
    port: u16,
    state: AppState,
    listener: TcpListener,
    purge_interval: Duration,
}

impl Application {
    /// Loads the signing keys (refusing to start without any), creates and migrates the database,
    /// binds the port, and creates the bootstrap admin (refusing to start when that username is
    /// taken by someone who is not an admin).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let keys = config.signing_keys.load()?;
        let pool = connect(&config).await?;
        let listener = TcpListener::bind((config.http_host.as_str(), config.http_port))
            .await
            .with_context(|| format!("binding {}:{}", config.http_host, config.http_port))?;
        let port = listener.local_addr()?.port();
        let issuer = Arc::new(Issuer::new(keys, config.issuer_url(port), config.default_audiences.clone(), config.access_ttl)?);
        let passwords = Arc::new(Passwords::new(config.hash_concurrency).await?);
        if let Some(b) = &config.bootstrap_admin {
            admin::bootstrap_admin(&pool, &passwords, &b.username, &b.password).await?;
        }
        let state = AppState {
            pool,
            issuer,
            passwords,
            refresh_ttl: config.refresh_ttl,
            login_throttle: config.login_throttle,
            audiences: Arc::new(config.audiences.clone()),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        };
        Ok(Self { port, state, listener, purge_interval: config.purge_interval })
    }

    /// The bound port (useful when the configured port was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The issuer this service signs with: tests mint tokens with it directly.
    pub fn issuer(&self) -> Arc<Issuer> {
        self.state.issuer.clone()
    }

    /// The service's database.
    pub fn pool(&self) -> MySqlPool {
        self.state.pool.clone()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests and stops the purge job.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let purge = tokio::spawn(run_purge(self.state.pool.clone(), self.state.login_throttle, self.purge_interval, shutdown.clone()));
        tracing::info!(port = self.port, issuer = self.state.issuer.issuer(), kid = self.state.issuer.signing_kid(), "identity service listening");
        let readiness = sagaway_common::http::Readiness { service: "identity", dependencies: vec![sagaway_messaging::health::Dependency::Database(self.state.pool.clone())] };
        let app = sagaway_common::http::with_operations(router(self.state.clone()), readiness);
        let stop = shutdown.clone();
        // The peer address reaches the handlers: login throttling keys on the client address.
        let served = axum::serve(self.listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .context("HTTP server");
        shutdown.cancel();
        let _ = purge.await;
        served
    }
}

/// Creates the database when missing, runs the migrations, returns a pool.
pub async fn connect(config: &Config) -> anyhow::Result<MySqlPool> {
    sagaway_messaging::db::connect_and_migrate(&config.database_url, config.db_max_connections, &MIGRATOR).await
}

/// The `migrate` command: database and schema, nothing else.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    connect(config).await?.close().await;
    Ok(())
}

/// Every `interval`: deletes refresh-token families that have fully expired, and passed login windows.
async fn run_purge(pool: MySqlPool, policy: throttle::Policy, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let now = chrono::Utc::now();
        match refresh::purge(&pool, now).await {
            Ok(n) if n > 0 => tracing::info!(families = n, "purged expired refresh tokens"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging refresh tokens failed"),
        }
        if let Err(e) = throttle::purge(&pool, now, policy).await {
            tracing::warn!(error = %e, "purging login windows failed");
        }
    }
}
