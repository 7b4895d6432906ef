//! The public HTTP API of a running stack, as a client sees it. Nothing here reaches into a
//! database or a topic: the load generator drives what an outside client could drive.

use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use rust_decimal::Decimal;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Api {
    /// Sends an operator's token by default; customer requests set their own.
    pub http: reqwest::Client,
    pub tokens: Arc<Tokens>,
    pub product: String,
    pub orchestrator: String,
    pub payment: String,
    pub bank: String,
}

/// Bearer tokens for the simulated users and the operator, signed with the identity service's key.
pub struct Tokens {
    issuer: identity::tokens::Issuer,
    admin: String,
}

impl Tokens {
    pub fn load(signing_key: &Path, issuer_url: &str) -> anyhow::Result<Self> {
        let key = identity::keys::SigningKey::load(signing_key).with_context(|| {
            format!("reading the identity signing key {} (start the stack first, or pass --signing-key)", signing_key.display())
        })?;
        // Tokens outlive any run: a 6-hour soak must not see its tokens expire.
        // For every service of the stack (each checks its own audience).
        let issuer = identity::tokens::Issuer::new(vec![key], issuer_url, identity::config::stack_audiences(), Duration::from_secs(6 * 3600))?;
        let admin = issuer.access_token("loadgen-operator", &["customer", "admin"])?;
        Ok(Self { issuer, admin })
    }

    /// A customer token for `user`.
    pub fn user(&self, user: &str) -> String {
        self.issuer.access_token(user, &["customer"]).expect("signing does not fail")
    }
}

/// [`client`] that sends the operator's token unless a request names another.
pub fn authed_client(timeout: Duration, tokens: &Tokens) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut admin = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", tokens.admin)).expect("a JWT is a header value");
    admin.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, admin);
    builder(timeout).default_headers(headers).build().expect("HTTP client")
}

/// An HTTP client tuned for load: keep-alive pool, no Nagle, bounded request time.
pub fn client(timeout: Duration) -> reqwest::Client {
    builder(timeout).build().expect("HTTP client")
}

fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
}

/// `"reserve 409"`, `"payment 500"`, `"payment transport: timeout"`: the key errors are counted under.
pub fn error_key(stage: &str, e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_decode() {
        "decode"
    } else {
        "other"
    };
    format!("{stage} transport: {kind}")
}

/// A decimal from a JSON string or number (money is a string in this API).
pub fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => Decimal::from_str(s).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

impl Api {
    pub fn new(http: reqwest::Client, tokens: Tokens, product: &str, orchestrator: &str, payment: &str, bank: &str) -> Self {
        let trim = |s: &str| s.trim_end_matches('/').to_string();
        Self { http, tokens: Arc::new(tokens), product: trim(product), orchestrator: trim(orchestrator), payment: trim(payment), bank: trim(bank) }
    }

    /// Waits (up to two minutes) until every named service answers `/health/ready`, then fails with
    /// a clear message. A previous step can leave the local broker busy for a while (e.g. `limits`
    /// pushing 50 000 messages through tansu), and services report not-ready meanwhile.
    pub async fn check_ready(&self, which: &[&str]) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        for w in which {
            let base = match *w {
                "product" => &self.product,
                "orchestrator" => &self.orchestrator,
                "bank" => &self.bank,
                _ => &self.payment,
            };
            loop {
                let last = match self.http.get(format!("{base}/health/ready")).send().await {
                    Ok(r) if r.status().is_success() => break,
                    Ok(r) => format!("{w} at {base} is not ready: {}", r.status()),
                    Err(e) => format!("{w} at {base} is not reachable (is the stack up?): {e}"),
                };
                anyhow::ensure!(std::time::Instant::now() < deadline, "{last} (waited 120 s)");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    /// `POST /products`; returns the new product's id.
    pub async fn create_product(&self, name: &str, description: &str, category: &str, price: &str, stock: i64) -> anyhow::Result<u64> {
        let r = self
            .http
            .post(format!("{}/products", self.product))
            .json(&json!({"name": name, "description": description, "category": category, "price": price, "stock": stock}))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.as_u16() == 201, "POST /products answered {status}: {body}");
        body["id"].as_u64().context("POST /products: no id")
    }

    /// `GET /products/{id}` → the product's JSON.
    pub async fn product(&self, id: u64) -> anyhow::Result<Value> {
        let r = self.http.get(format!("{}/products/{id}", self.product)).send().await?;
        anyhow::ensure!(r.status().is_success(), "GET /products/{id} answered {}", r.status());
        Ok(r.json().await?)
    }

    /// `GET /findAll?<query>` → (status, body).
    pub async fn find_all(&self, query: &str) -> Result<(u16, Value), reqwest::Error> {
        let r = self.http.get(format!("{}/findAll?{query}", self.product)).send().await?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// `GET :payment/ledger/summary`.
    pub async fn ledger(&self) -> anyhow::Result<Value> {
        let r = self.http.get(format!("{}/ledger/summary", self.payment)).send().await.context("GET /ledger/summary")?;
        anyhow::ensure!(r.status().is_success(), "GET /ledger/summary answered {}", r.status());
        Ok(r.json().await?)
    }

    /// `GET /orders/{id}` → the order's JSON, or None on 404.
    pub async fn order(&self, id: &str) -> anyhow::Result<Option<Value>> {
        let r = self.http.get(format!("{}/orders/{id}", self.orchestrator)).send().await?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        anyhow::ensure!(r.status().is_success(), "GET /orders/{id} answered {}", r.status());
        Ok(Some(r.json().await?))
    }
}
