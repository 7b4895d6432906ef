//! Shared by the identity integration tests: each test runs its own Application on port 0 with a
//! fresh database (`identity_t_<uuid12>`) on the local MariaDB (`scripts/stack up --infra`).
#![allow(dead_code)]

use std::sync::Arc;

use identity::{Application, Config, tokens::Issuer};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub pool: MySqlPool,
    pub database: String,
    pub config: Config,
    pub issuer: Arc<Issuer>,
    shutdown: CancellationToken,
}

/// An answer: status, headers, JSON body (Null when there is none).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with `status` and `code`.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{}", self.body);
        assert_eq!(self.body["status"], json!(status), "{}", self.body);
        assert_eq!(self.body["code"], json!(code), "{}", self.body);
    }
}

pub fn test_database() -> String {
    format!("identity_t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Starts an app with `Config::local` on a fresh database, changed by `edit` first.
pub async fn spawn_with(edit: impl FnOnce(&mut Config)) -> TestApp {
    sagaway_common::telemetry::init("identity-test");
    let mut config = Config::local(&test_database());
    edit(&mut config);
    let database = config.database_url.rsplit('/').next().unwrap().to_string();
    let app = Application::build(config.clone()).await.expect("the identity app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let issuer = app.issuer();
    let pool = app.pool();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp { address, http: reqwest::Client::new(), pool, database, config, issuer, shutdown }
}

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Answer {
        answer(self.http.get(self.url(path)).send().await.expect("request sent")).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        answer(self.http.post(self.url(path)).json(body).send().await.expect("request sent")).await
    }

    /// A client whose connections come from `local` (any 127.x.y.z address is this machine), so
    /// tests can log in from several client addresses.
    pub fn client_from(&self, local: &str) -> reqwest::Client {
        reqwest::Client::builder().local_address(local.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
    }

    /// `POST /auth/login` through `http` with extra `headers`.
    pub async fn login_with(&self, http: &reqwest::Client, username: &str, password: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = http.post(self.url("/auth/login")).json(&json!({"username": username, "password": password}));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        answer(req.send().await.expect("request sent")).await
    }

    pub async fn signup(&self, username: &str, password: &str) -> Answer {
        self.post("/auth/signup", &json!({"username": username, "password": password})).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Answer {
        self.post("/auth/login", &json!({"username": username, "password": password})).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post("/auth/refresh", &json!({"refresh_token": refresh_token})).await
    }

    /// Signs `username` up and logs in; returns the login answer's body.
    pub async fn signed_up_and_logged_in(&self, username: &str, password: &str) -> Value {
        let s = self.signup(username, password).await;
        assert_eq!(s.status, 201, "{}", s.body);
        let l = self.login(username, password).await;
        assert_eq!(l.status, 200, "{}", l.body);
        l.body
    }

    /// Verifies `token` the way a service does: with the key its `kid` names in the JWKS this app
    /// serves, EdDSA only, this app's issuer (`iss`) and the orchestrator's audience (one of the
    /// default audiences).
    pub async fn verify(&self, token: &str) -> anyhow::Result<Value> {
        self.verify_for(token, "sagaway-orchestrator").await
    }

    /// The same, for the service whose audience is `audience`.
    pub async fn verify_for(&self, token: &str, audience: &str) -> anyhow::Result<Value> {
        let jwks: JwkSet = self.http.get(self.url("/.well-known/jwks.json")).send().await?.json().await?;
        let kid = jsonwebtoken::decode_header(token)?.kid.ok_or_else(|| anyhow::anyhow!("no kid in the header"))?;
        let jwk = jwks.find(&kid).ok_or_else(|| anyhow::anyhow!("kid {kid} is not in the JWKS"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[self.issuer.issuer()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        Ok(jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)?.claims)
    }

    /// Stops the app and drops its database.
    pub async fn cleanup(self) {
        self.shutdown.cancel();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.database)).execute(&self.pool).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    Answer { status, headers, body }
}
