//! The identity service and the other services together: a user signs up and logs in at identity,
//! and its access token reserves, pays and reads the order at product and orchestrator, which
//! check it against identity's JWKS. Then identity's signing key is rotated (a new key signs, the
//! old one is still published): tokens of both keys open the services without a restart — the
//! services fetch the JWKS again when a token names a key they have not seen. And each service
//! checks its own audience: a token the user asked for another service does not open it.

use std::time::{Duration, Instant};

use e2e::system::{System, SystemOptions};
use identity::keys::{KeySource, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// One identity service on a fixed port (so a restart keeps its URL) over one database.
struct Identity {
    url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_identity(database: &str, port: u16, keys: Vec<SigningKey>) -> anyhow::Result<(Identity, std::sync::Arc<identity::tokens::Issuer>)> {
    let mut cfg = identity::Config::local(database);
    cfg.http_port = port;
    cfg.signing_keys = KeySource::Keys(keys);
    let app = identity::Application::build(cfg).await?;
    let issuer = app.issuer();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    Ok((Identity { url: format!("http://127.0.0.1:{port}"), stop, task }, issuer))
}

impl Identity {
    async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn login(http: &reqwest::Client, identity: &str, username: &str, password: &str) -> anyhow::Result<String> {
    login_for(http, identity, username, password, &[]).await
}

/// A login asking for the audiences `audience` (none: identity's defaults, every service).
async fn login_for(http: &reqwest::Client, identity: &str, username: &str, password: &str, audience: &[&str]) -> anyhow::Result<String> {
    let res = http.post(format!("{identity}/auth/login")).json(&json!({"username": username, "password": password, "audience": audience})).send().await?;
    anyhow::ensure!(res.status() == StatusCode::OK, "login: {}", res.status());
    let body: Value = res.json().await?;
    assert_eq!(body["token_type"], "Bearer");
    Ok(body["access_token"].as_str().unwrap().to_string())
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_up_user_pays_with_identitys_tokens_across_a_key_rotation() -> anyhow::Result<()> {
    let database = format!("identity_t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let port = free_port();
    let old_key = SigningKey::generate();
    let old_kid = old_key.kid().to_string();
    let (id, issuer) = start_identity(&database, port, vec![old_key.clone()]).await?;
    // The services check the orchestrator's audience here (each of them its own in a real stack).
    let auth = sagaway_common::auth::AuthConfig::local(&id.url, issuer.issuer(), "sagaway-orchestrator");
    let sys = System::spawn(SystemOptions { auth: Some(auth), ..Default::default() }).await?;
    let http = &sys.http;

    let res = http.post(format!("{}/auth/signup", id.url)).json(&json!({"username": "zoe", "password": "a long enough secret"})).send().await?;
    assert_eq!(res.status(), StatusCode::CREATED);
    let zoe = login(http, &id.url, "zoe", "a long enough secret").await?;
    assert_eq!(kid(&zoe), old_kid);
    let admin = issuer.access_token("ops", &["customer", "admin"])?;

    let res = http.post(format!("{}/products", sys.product_url)).bearer_auth(&admin).json(&json!({"name": "lamp", "price": "30.00", "stock": 5})).send().await?;
    assert_eq!(res.status(), StatusCode::CREATED);
    let product = res.json::<Value>().await?["id"].as_u64().unwrap();
    // A customer's token is not an operator's.
    let res = http.post(format!("{}/products", sys.product_url)).bearer_auth(&zoe).json(&json!({"name": "x", "price": "1.00", "stock": 1})).send().await?;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = http.post(format!("{}/reserve", sys.product_url)).bearer_auth(&zoe).json(&json!({"product_id": product, "quantity": 1})).send().await?;
    assert_eq!(res.status(), StatusCode::CREATED);
    let reservation: Value = res.json().await?;
    assert_eq!(reservation["user_id"], "zoe", "the user is the token's subject");
    let card = json!({"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}});
    let res = http.post(format!("{}/payment", sys.orchestrator_url)).bearer_auth(&zoe)
        .json(&json!({"reservation_id": reservation["id"], "payment_method": card})).send().await?;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let order_id = res.json::<Value>().await?["order_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o: Value = http.get(format!("{}/orders/{order_id}", sys.orchestrator_url)).bearer_auth(&zoe).send().await?.json().await?;
        if o["status"] == "COMPLETED" {
            break;
        }
        assert!(Instant::now() < deadline, "order stuck: {o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A token zoe asked for the product service only is not the orchestrator's to accept.
    let for_product = login_for(http, &id.url, "zoe", "a long enough secret", &["sagaway-product"]).await?;
    let res = http.get(format!("{}/orders/{order_id}", sys.orchestrator_url)).bearer_auth(&for_product).send().await?;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.text().await?.contains("wrong audience"));
    let for_orchestrator = login_for(http, &id.url, "zoe", "a long enough secret", &["sagaway-orchestrator"]).await?;
    let res = http.get(format!("{}/orders/{order_id}", sys.orchestrator_url)).bearer_auth(&for_orchestrator).send().await?;
    assert_eq!(res.status(), StatusCode::OK);

    // Rotation: identity restarts with a new signing key, the old one still published.
    id.shutdown().await;
    let new_key = SigningKey::generate();
    let (id, _) = start_identity(&database, port, vec![new_key.clone(), old_key]).await?;
    let jwks: Value = http.get(format!("{}/.well-known/jwks.json", id.url)).send().await?.json().await?;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    let fresh = login(http, &id.url, "zoe", "a long enough secret").await?;
    assert_eq!(kid(&fresh), new_key.kid(), "the new key signs");
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the services' JWKS refetch interval (1 s in tests)
    for (which, token) in [("new key", &fresh), ("old key", &zoe)] {
        let res = http.get(format!("{}/orders/{order_id}", sys.orchestrator_url)).bearer_auth(token).send().await?;
        assert_eq!(res.status(), StatusCode::OK, "a token of the {which} opens the orchestrator");
        let res = http.get(format!("{}/reservations/{}", sys.product_url, reservation["id"].as_str().unwrap())).bearer_auth(token).send().await?;
        assert_eq!(res.status(), StatusCode::OK, "a token of the {which} opens the product service");
    }

    id.shutdown().await;
    sys.stop().await;
    let admin_db = sqlx::MySqlPool::connect(&e2e::StackAddr::from_env().mysql_url("mysql")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS `{database}`")).execute(&admin_db).await?;
    Ok(())
}
