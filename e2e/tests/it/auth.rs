//! Identity at the services' doors (issue 11): every route of every service, tried with no token,
//! a tampered one, an expired one, `alg: none`, the wrong audience/issuer, an unknown key and an
//! HMAC token keyed with public data, answers 401 — never 2xx or 5xx; a customer on an admin route
//! gets 403. The routes come from each service's own OpenAPI document, and
//! `every_route_in_the_source_is_in_the_openapi_documents` keeps that list complete, so a new
//! route cannot be forgotten. Then: two users cannot see or touch each other's things, the per-user
//! rate limit answers 429 with Retry-After, and the dead-letter audit names the token's subject.

use std::time::Duration;

use e2e::system::{System, SystemOptions, payment_body};
use reqwest::{Method, StatusCode};
use sagaway_common::{auth_testing::TestKey, config::UserRate};
use serde_json::{Value, json};

const VISA: &str = "4242424242424242";

/// Routes anyone may call (DESIGN.md §7: browsing, health, metrics, API documents).
const PUBLIC: &[(&str, &str)] = &[("GET", "/findAll"), ("GET", "/products/{id}"), ("GET", "/openapi.json")];

/// Routes only an admin may call: catalogue writes, `/admin/*` of every service, the ledger.
fn admin_only(method: &str, path: &str) -> bool {
    path.starts_with("/admin/")
        || (method == "POST" && (path == "/" || path == "/products"))
        || (matches!(method, "PATCH" | "DELETE") && path == "/products/{id}")
        || path == "/ledger/summary"
}

/// Every (method, path) a service's OpenAPI document lists, and whether it documents a bearer token
/// (`Some(true)`), a bank's signature (`Some(false)`: the banks' `/interbank/*`) or nothing (`None`).
async fn documented_routes(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<(String, String, Option<bool>)>> {
    let doc: Value = http.get(format!("{base}/openapi.json")).send().await?.json().await?;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(op) = item.get(method) {
                let has = |scheme: &str| op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get(scheme).is_some()));
                let scheme = if has("bearer") { Some(true) } else if has("interbank") { Some(false) } else { None };
                out.push((method.to_uppercase(), path.clone(), scheme));
            }
        }
    }
    anyhow::ensure!(!out.is_empty(), "{base} documents no routes");
    Ok(out)
}

/// A concrete URL path for a templated one (every id placeholder becomes a plausible id).
fn concrete(path: &str) -> String {
    path.split('/').map(|seg| if seg.starts_with('{') { "1" } else { seg }).collect::<Vec<_>>().join("/")
}

/// Tokens that must all be refused, by what is wrong with them.
fn bad_tokens(sys: &System) -> Vec<(&'static str, Option<String>)> {
    let now = chrono::Utc::now().timestamp();
    let good = sys.admin_token("mallory");
    let claims = |extra: Value| {
        let mut c = sys.issuer.claims("mallory", &["customer", "admin"]);
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let parts: Vec<&str> = good.split('.').collect();
    // The payload swapped for another user's while the signature stays: a tampered token.
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims(json!({"sub": "alice"}))), parts[2]);
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": sys.issuer.key.kid})), b64(&claims(json!({}))));
    // HS256 "signed" with the public JWK as the secret: the classic algorithm-confusion forgery.
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(sys.issuer.key.kid.clone());
        let secret = sys.issuer.key.jwk()["x"].as_str().unwrap().to_string();
        jsonwebtoken::encode(&header, &claims(json!({})), &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).unwrap()
    };
    vec![
        ("no token", None),
        ("not a JWT", Some("not-a-jwt".into())),
        ("tampered", Some(tampered)),
        ("expired", Some(sys.issuer.key.sign(&claims(json!({"iat": now - 7200, "exp": now - 3600}))))),
        ("alg none", Some(none)),
        ("wrong audience", Some(sys.issuer.key.sign(&claims(json!({"aud": "someone-else"}))))),
        ("wrong issuer", Some(sys.issuer.key.sign(&claims(json!({"iss": "https://evil.example"}))))),
        ("no exp", Some(sys.issuer.key.sign(&{
            let mut c = claims(json!({}));
            c.as_object_mut().unwrap().remove("exp");
            c
        }))),
        ("unknown key", Some(TestKey::generate().sign(&claims(json!({}))))),
        ("HS256 with the public key", Some(hs256)),
    ]
}

async fn call(http: &reqwest::Client, method: &str, url: &str, token: Option<&str>) -> anyhow::Result<(StatusCode, reqwest::header::HeaderMap, Value)> {
    let mut req = http.request(Method::from_bytes(method.as_bytes())?, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if matches!(method, "POST" | "PATCH" | "PUT") {
        req = req.json(&json!({}));
    }
    let res = req.send().await?;
    let status = res.status();
    let headers = res.headers().clone();
    Ok((status, headers, res.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_bad_tokens_and_customers_on_admin_routes() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { bank: true, ..Default::default() }).await?;
    let bad = bad_tokens(&sys);
    let customer = sys.token("carol");
    let mut table = Vec::new();
    for base in [&sys.product_url, &sys.orchestrator_url, &sys.payment_url, &sys.bank_url] {
        for (method, path, scheme) in documented_routes(&sys.http, base).await? {
            let url = format!("{base}{}", concrete(&path));
            let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
            if scheme == Some(false) {
                // Bank to bank: no user token opens it, not even an admin's; only a bank's signature.
                assert!(path.starts_with("/interbank/"), "{base} {method} {path}: only /interbank/* is signed by banks");
                for (what, token) in bad.iter().map(|(w, t)| (*w, t.clone())).chain([("a customer", Some(customer.clone())), ("an admin", Some(sys.admin_token("root")))]) {
                    let (status, _, body) = call(&sys.http, &method, &url, token.as_deref()).await?;
                    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unsigned")), "{method} {path} with {what}: {body}");
                }
                table.push(format!("{method:6} {path:28} banks (signed)"));
                continue;
            }
            assert_eq!(scheme == Some(true), !public, "{base} {method} {path}: the OpenAPI document says what the route requires");
            let admin = admin_only(&method, &path);
            for (what, token) in &bad {
                let (status, headers, body) = call(&sys.http, &method, &url, token.as_deref()).await?;
                if public {
                    assert!(status != StatusCode::UNAUTHORIZED && !status.is_server_error(), "{method} {path} is public; {what}: {status} {body}");
                    continue;
                }
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {what}: {body}");
                assert_eq!(body["code"], "unauthorized", "{method} {path} with {what}: problem+json: {body}");
                let challenge = headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("");
                assert!(challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""), "{method} {path}: {challenge:?}");
            }
            let (status, _, body) = call(&sys.http, &method, &url, Some(&customer)).await?;
            if admin {
                assert_eq!(status, StatusCode::FORBIDDEN, "a customer on {method} {path}: {body}");
            } else {
                // Not refused for a missing role (`forbidden`); a route may still refuse this customer
                // for a reason of its own (not the invitee of an invitation: `not_the_invitee`).
                let role_refused = status == StatusCode::FORBIDDEN && body["code"] == "forbidden";
                assert!(status != StatusCode::UNAUTHORIZED && !role_refused && !status.is_server_error(),
                    "a customer on {method} {path}: {status} {body}");
            }
            let (status, _, body) = call(&sys.http, &method, &url, Some(&sys.admin_token("root"))).await?;
            let role_refused = status == StatusCode::FORBIDDEN && body["code"] == "forbidden";
            assert!(status != StatusCode::UNAUTHORIZED && !role_refused && !status.is_server_error(), "an admin on {method} {path}: {status} {body}");
            table.push(format!("{method:6} {path:28} {}", if public { "public" } else if admin { "admin" } else { "customer" }));
        }
    }
    println!("route → who may call it ({} routes):\n{}", table.len(), table.join("\n"));
    assert!(table.len() >= 20, "every service's routes were tried: {table:?}");
    sys.stop().await;
    Ok(())
}

/// The routes each service's source mounts (`.route("…"` literals) are all in its OpenAPI
/// document, so the table above covers every route there is.
#[tokio::test]
async fn every_route_in_the_source_is_in_the_openapi_documents() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let documented = [
        ("product", serde_json::to_value(<product::ApiDoc as utoipa::OpenApi>::openapi())?),
        ("orchestrator", serde_json::to_value(<orchestrator::ApiDoc as utoipa::OpenApi>::openapi())?),
        ("payment", serde_json::to_value(<payment::ApiDoc as utoipa::OpenApi>::openapi())?),
        ("bank", serde_json::to_value(<bank::ApiDoc as utoipa::OpenApi>::openapi())?),
    ];
    let route = regex_lite_route();
    for (service, doc) in documented {
        let mut sources = Vec::new();
        collect_rs(&root.join(service).join("src"), &mut sources);
        for file in sources {
            let text = std::fs::read_to_string(&file)?;
            for path in route(&text) {
                if path == "/openapi.json" {
                    continue;
                }
                assert!(doc["paths"].get(&path).is_some(), "{service}: {} mounts {path} but its OpenAPI document does not list it", file.display());
            }
        }
    }
    Ok(())
}

/// Finds `.route("<path>"` in Rust source.
fn regex_lite_route() -> impl Fn(&str) -> Vec<String> {
    |text: &str| {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find(".route(\"") {
            rest = &rest[i + 8..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
        out
    }
}

fn collect_rs(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_cannot_see_or_touch_each_others_things() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let product = sys.create_product("10.00", 10).await?;
    let (a, b) = (sys.token("ana"), sys.token("bruno"));
    let (order_a, reservation_a) = sys.pay(product, "ana", VISA).await?;
    sys.wait_order(&order_a, Duration::from_secs(30), |o| o["status"] == "COMPLETED").await?;
    // A second product: paying the first again within two minutes would be a duplicate.
    let other = sys.create_product("7.00", 10).await?;
    let held = sys.reserve(other, "ana", 1).await?;
    let held_id = held["id"].as_str().unwrap();

    let get = |url: String, token: String| {
        let http = sys.http.clone();
        async move {
            let res = http.get(url).bearer_auth(token).send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Bruno sees nothing of Ana's: not found, as if it did not exist.
    for url in [
        format!("{}/orders/{order_a}", sys.orchestrator_url),
        format!("{}/reservations/{reservation_a}", sys.product_url),
        format!("{}/reservations/{held_id}", sys.product_url),
        format!("{}/charges/{order_a}", sys.payment_url),
        format!("{}/accounts/customer:ana", sys.payment_url),
    ] {
        let (status, body) = get(url.clone(), b.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "bruno GET {url}: {body}");
        let (status, body) = get(url.clone(), a.clone()).await;
        assert_eq!(status, StatusCode::OK, "ana GET {url}: {body}");
    }
    // Listing: his own (none), and naming Ana is refused.
    let (status, list) = get(format!("{}/orders", sys.orchestrator_url), b.clone()).await;
    assert_eq!((status, list), (StatusCode::OK, json!({"items": []})));
    let (status, body) = get(format!("{}/orders?user_id=ana", sys.orchestrator_url), b.clone()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("user_mismatch")));
    let (status, list) = get(format!("{}/orders", sys.orchestrator_url), a.clone()).await;
    assert_eq!((status, list["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{list}");

    // Reserving on Ana's behalf is refused; paying Ana's held reservation finds nothing.
    let res = sys.http.post(format!("{}/reserve", sys.product_url)).bearer_auth(&b)
        .json(&json!({"product_id": product, "user_id": "ana", "quantity": 1})).send().await?;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.json::<Value>().await?["code"], "user_mismatch");
    let (status, _, body) = sys.post_payment_as(&b, &payment_body(held_id, "ana", VISA), None).await?;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("user_mismatch")), "{body}");
    let mut without_user = payment_body(held_id, "ana", VISA);
    without_user.as_object_mut().unwrap().remove("user_id");
    let (status, _, body) = sys.post_payment_as(&b, &without_user, None).await?;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("reservation_not_found")), "{body}");

    // Ana's hold is untouched: still HELD, no order, stock still taken.
    let (_, still) = get(format!("{}/reservations/{held_id}", sys.product_url), a.clone()).await;
    assert_eq!((still["status"].as_str(), &still["order_id"]), (Some("HELD"), &Value::Null), "{still}");
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&sys.orchestrator_db).await?;
    assert_eq!(orders, 1, "only Ana's paid order exists");

    // Ana, omitting user_id, pays her own hold: the token says who she is.
    let (status, _, body) = sys.post_payment_as(&a, &without_user, None).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let o = sys.wait_order(body["order_id"].as_str().unwrap(), Duration::from_secs(30), |o| o["status"] == "COMPLETED").await?;
    assert_eq!(o["user_id"], "ana");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_rate_limit_answers_429_with_retry_after() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { user_rate: UserRate { per_sec: 0.5, burst: 3 }, ..Default::default() }).await?;
    let product = sys.create_product("1.00", 100).await?;
    let reserve = |user: &'static str| {
        let (http, url, token) = (sys.http.clone(), format!("{}/reserve", sys.product_url), sys.token(user));
        async move {
            let res = http.post(url).bearer_auth(token).json(&json!({"product_id": product, "quantity": 1})).send().await.unwrap();
            let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            (res.status(), retry_after, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for _ in 0..3 {
        assert_eq!(reserve("busy").await.0, StatusCode::CREATED);
    }
    let (status, retry_after, body) = reserve("busy").await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")), "{body}");
    assert!(matches!(retry_after, Some(1..=2)), "Retry-After: {retry_after:?}");
    assert_eq!(reserve("calm").await.0, StatusCode::CREATED, "another user has a bucket of their own");

    // The orchestrator's door is limited the same way.
    let r = sys.reserve(product, "payer", 1).await?;
    let body = payment_body(r["id"].as_str().unwrap(), "payer", "4000000000000002");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(sys.post_payment(&body, None).await?.0);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_audit_names_the_tokens_subject_not_a_header() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let res = sys
        .http
        .get(format!("{}/admin/dlq", sys.orchestrator_url))
        .bearer_auth(sys.admin_token("ops-olga"))
        .header("X-Operator", "someone-else")
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::OK);
    let res = sys
        .http
        .post(format!("{}/admin/dlq/purge", sys.orchestrator_url))
        .bearer_auth(sys.admin_token("ops-olga"))
        .header("X-Operator", "someone-else")
        .json(&json!({"all": true, "dry_run": true}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::OK);
    let operators: Vec<String> =
        sqlx::query_scalar("SELECT CAST(operator AS CHAR) FROM dlq_audit ORDER BY id").fetch_all(&sys.orchestrator_db).await?;
    assert_eq!(operators, ["ops-olga", "ops-olga"]);
    sys.stop().await;
    Ok(())
}

/// The verifier follows the issuer's key set: a key rotated in is fetched when a token names it,
/// and a key rotated out stops opening anything once the cache is older than its age limit.
#[tokio::test]
async fn the_verifier_follows_key_rotation_in_and_out() -> anyhow::Result<()> {
    use sagaway_common::auth::{AuthConfig, AuthError, Verifier};
    use std::sync::{Arc, Mutex};
    let (a, b) = (TestKey::generate(), TestKey::generate());
    let published = Arc::new(Mutex::new(json!({"keys": [a.jwk()]})));
    let jwks = published.clone();
    let app = axum::Router::new().route("/.well-known/jwks.json", axum::routing::get(move || {
        let body = jwks.lock().unwrap().clone();
        async move { axum::Json(body) }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut cfg = AuthConfig::local(&url, "https://issuer.test", "sagaway");
    cfg.refetch_interval = Duration::ZERO;
    cfg.max_age = Duration::from_millis(300);
    let verifier = Verifier::new(cfg);
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "https://issuer.test", "aud": "sagaway", "sub": "kim", "iat": now, "exp": now + 600, "roles": []});
    let (token_a, token_b) = (a.sign(&claims), b.sign(&claims));

    assert_eq!(verifier.verify(&token_a).await.unwrap().user_id, "kim");
    assert!(matches!(verifier.verify(&token_b).await, Err(AuthError::Invalid(_))), "b is not published yet");
    *published.lock().unwrap() = json!({"keys": [b.jwk(), a.jwk()]});
    assert!(verifier.verify(&token_b).await.is_ok(), "a token of a newly published key is accepted at once");
    assert!(verifier.verify(&token_a).await.is_ok(), "the old key still opens while it is published");
    *published.lock().unwrap() = json!({"keys": [b.jwk()]});
    assert!(verifier.verify(&token_a).await.is_ok(), "cached until the age limit");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(verifier.verify(&token_a).await, Err(AuthError::Invalid(_))), "a retired key stops opening anything");
    assert!(verifier.verify(&token_b).await.is_ok());
    Ok(())
}
