//! `POST /reserve` honours `Idempotency-Key` with the semantics of `POST /payment` (Stripe's): a
//! client retrying after a timeout gets the first answer replayed, never a second hold.

use crate::common;

use common::{Options, TestApp, spawn_app};
use futures::future::join_all;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

struct Answer {
    status: u16,
    replayed: bool,
    content_type: String,
    body: Value,
}

async fn reserve(app: &TestApp, key: Option<&str>, body: &Value) -> Answer {
    let mut req = app.http.post(app.url("/reserve")).bearer_auth(app.token_for(Some(body))).json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let replayed = header("idempotent-replayed") == "true";
    let content_type = header("content-type");
    Answer { status, replayed, content_type, body: res.json().await.unwrap_or(Value::Null) }
}

async fn product(app: &TestApp, stock: i64) -> anyhow::Result<u64> {
    let (status, body) = app.post_json("/products", &json!({"name": "Retry Lamp", "price": "10.00", "stock": stock})).await?;
    assert_eq!(status, 201, "{body}");
    Ok(body["id"].as_u64().unwrap())
}

async fn stock_of(app: &TestApp, id: u64) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, i32>("SELECT stock FROM products WHERE id = ?").bind(id).fetch_one(&app.pool).await? as i64)
}

async fn holds_of(app: &TestApp, id: u64) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM reservations WHERE product_id = ?").bind(id).fetch_one(&app.pool).await?)
}

fn key() -> String {
    format!("key-{}", common::unique_id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_key_replays_the_first_hold() -> anyhow::Result<()> {
    let app = spawn_app(Options::default()).await?;
    let id = product(&app, 10).await?;
    let body = json!({"product_id": id, "user_id": "retrier", "quantity": 3});
    let k = key();

    let first = reserve(&app, Some(&k), &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!first.replayed);
    // The client timed out and retries; so does a client that reorders its fields.
    let again = reserve(&app, Some(&k), &body).await;
    let reordered = reserve(&app, Some(&k), &json!({"quantity": 3, "user_id": "retrier", "product_id": id})).await;
    for retry in [&again, &reordered] {
        assert_eq!(retry.status, 201, "{}", retry.body);
        assert!(retry.replayed, "the replay says so (Idempotent-Replayed: true)");
        assert_eq!(retry.content_type, "application/json");
        assert_eq!(retry.body, first.body, "the stored answer, byte for byte the same reservation");
    }
    assert_eq!(stock_of(&app, id).await?, 7, "one hold of 3, not three");
    assert_eq!(holds_of(&app, id).await?, 1);

    // Same key, another request: 422, nothing held.
    let other = reserve(&app, Some(&k), &json!({"product_id": id, "user_id": "retrier", "quantity": 4})).await;
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(other.body["code"], json!("idempotency_key_reused"));
    assert_eq!(other.content_type, "application/problem+json");
    assert_eq!(stock_of(&app, id).await?, 7);

    // Without a key nothing changes: each request is a new hold.
    for _ in 0..2 {
        assert_eq!(reserve(&app, None, &json!({"product_id": id, "user_id": "plain", "quantity": 1})).await.status, 201);
    }
    assert_eq!(stock_of(&app, id).await?, 5);

    // A key that is not 1-255 visible ASCII characters: 422 naming the header.
    let bad = reserve(&app, Some(&"k".repeat(256)), &body).await;
    assert_eq!((bad.status, bad.body["field"].clone()), (422, json!("Idempotency-Key")), "{}", bad.body);
    app.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_make_one_hold() -> anyhow::Result<()> {
    let app = spawn_app(Options::default()).await?;
    let id = product(&app, 100).await?;
    let body = json!({"product_id": id, "user_id": "racer", "quantity": 2});
    let k = key();
    let answers = join_all((0..20).map(|_| reserve(&app, Some(&k), &body))).await;
    let created: Vec<&Answer> = answers.iter().filter(|a| a.status == 201).collect();
    assert!(answers.iter().all(|a| a.status == 201 || (a.status == 409 && a.body["code"] == json!("idempotency_key_in_flight"))),
        "{:?}", answers.iter().map(|a| (a.status, a.body.clone())).collect::<Vec<_>>());
    assert_eq!(created.iter().filter(|a| !a.replayed).count(), 1, "exactly one request made the hold");
    assert!(created.iter().all(|a| a.body == created[0].body));
    assert_eq!(stock_of(&app, id).await?, 98);
    assert_eq!(holds_of(&app, id).await?, 1);
    app.cleanup().await;
    Ok(())
}

/// The stored hash of a request, as the service computes it (SHA-256 of its canonical JSON).
fn hash(product_id: u64, user_id: &str, quantity: i64) -> String {
    let canonical = json!({"product_id": product_id, "user_id": user_id, "quantity": quantity}).to_string();
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_abandoned_expired_failed_and_invalid_requests() -> anyhow::Result<()> {
    let app = spawn_app(Options::default()).await?;
    let id = product(&app, 5).await?;
    let claim = |k: &str, age_secs: i64, state: &str| {
        sqlx::query(
            "INSERT INTO idempotency_keys (caller, idempotency_key, request_hash, state, owner, response_status, response_body, created_at) \
             VALUES ('u', ?, ?, ?, UUID(), IF(? = 'done', 201, NULL), IF(? = 'done', '{\"stale\":true}', NULL), NOW(6) - INTERVAL ? SECOND)",
        )
        .bind(k.to_string())
        .bind(hash(id, "u", 1))
        .bind(state.to_string())
        .bind(state.to_string())
        .bind(state.to_string())
        .bind(age_secs)
        .execute(&app.pool)
    };
    let body = json!({"product_id": id, "user_id": "u", "quantity": 1});

    // Another request holds the key right now: 409, nothing held.
    let k = key();
    claim(&k, 0, "in_flight").await?;
    let a = reserve(&app, Some(&k), &body).await;
    assert_eq!((a.status, a.body["code"].clone()), (409, json!("idempotency_key_in_flight")), "{}", a.body);
    assert_eq!(stock_of(&app, id).await?, 5);

    // A claim whose request died long ago (past the lock timeout) is taken over.
    let k = key();
    claim(&k, 60, "in_flight").await?;
    let a = reserve(&app, Some(&k), &body).await;
    assert_eq!((a.status, a.replayed), (201, false), "{}", a.body);
    assert_eq!(stock_of(&app, id).await?, 4);

    // Records are kept 24 h: a day-old answer is replayed, an older one no longer counts.
    let k = key();
    claim(&k, 23 * 3600, "done").await?;
    let a = reserve(&app, Some(&k), &body).await;
    assert_eq!((a.status, a.replayed, a.body.clone()), (201, true, json!({"stale": true})));
    let k = key();
    claim(&k, 25 * 3600, "done").await?;
    let a = reserve(&app, Some(&k), &body).await;
    assert_eq!((a.status, a.replayed), (201, false), "{}", a.body);
    assert_eq!(stock_of(&app, id).await?, 3);

    // An invalid request is not stored under its key: the corrected request may use it.
    let k = key();
    let a = reserve(&app, Some(&k), &json!({"product_id": id, "user_id": "u", "quantity": 0})).await;
    assert_eq!(a.status, 422, "{}", a.body);
    let a = reserve(&app, Some(&k), &body).await;
    assert_eq!((a.status, a.replayed), (201, false), "{}", a.body);
    assert_eq!(stock_of(&app, id).await?, 2);

    // A refusal once the request ran (insufficient stock) is the answer for that key, as on Stripe.
    let k = key();
    let too_many = json!({"product_id": id, "user_id": "u", "quantity": 3});
    let first = reserve(&app, Some(&k), &too_many).await;
    assert_eq!((first.status, first.body["code"].clone()), (409, json!("insufficient_stock")), "{}", first.body);
    let (status, _) = app.http_patch(&format!("/products/{id}"), &json!({"stock": 50})).await?;
    assert_eq!(status, 200);
    let again = reserve(&app, Some(&k), &too_many).await;
    assert_eq!((again.status, again.replayed, &again.body), (409, true, &first.body));
    assert_eq!(again.content_type, "application/problem+json");
    assert_eq!(stock_of(&app, id).await?, 50);
    app.cleanup().await;
    Ok(())
}

/// A key is its caller's: users who happen to send the same Idempotency-Key — one after the other,
/// or all at once, each with a body of their own — each get their own hold, and each replay answers
/// its own user's reservation. Nobody can pre-claim (in flight) or pre-answer another user's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_key_from_different_users_is_a_request_of_each() -> anyhow::Result<()> {
    let app = spawn_app(Options::default()).await?;
    let id = product(&app, 1000).await?;
    let users: Vec<String> = (1..=6).map(|n| format!("keyholder-{n}")).collect();
    let body = |user: &str, quantity: usize| json!({"product_id": id, "user_id": user, "quantity": quantity});

    // One after the other: each user's first request with the key holds; the next user's request
    // with the same key is neither a replay of the first nor a reuse (422).
    let k = key();
    let mut firsts = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let a = reserve(&app, Some(&k), &body(user, i + 1)).await;
        assert_eq!((a.status, a.replayed), (201, false), "{user}: {}", a.body);
        assert_eq!(a.body["user_id"], json!(user), "{}", a.body);
        firsts.push(a.body);
    }
    // A second key, used by all at once.
    let k2 = key();
    let concurrent = join_all(users.iter().enumerate().map(|(i, user)| {
        let b = body(user, 10 + i);
        let k2 = k2.clone();
        let app = &app;
        async move { reserve(app, Some(&k2), &b).await }
    }))
    .await;
    for (user, a) in users.iter().zip(&concurrent) {
        assert_eq!((a.status, a.replayed), (201, false), "{user}: {}", a.body);
        assert_eq!(a.body["user_id"], json!(user));
    }
    // Each replay is its own user's answer.
    for (i, user) in users.iter().enumerate() {
        for (key, quantity, first) in [(&k, i + 1, &firsts[i]), (&k2, 10 + i, &concurrent[i].body)] {
            let again = reserve(&app, Some(key), &body(user, quantity)).await;
            assert_eq!((again.status, again.replayed), (201, true), "{user}: {}", again.body);
            assert_eq!(&again.body, first, "{user}'s replay is their own reservation");
            // Their own key with another body is still a reuse.
            let other = reserve(&app, Some(key), &body(user, quantity + 100)).await;
            assert_eq!((other.status, other.body["code"].clone()), (422, json!("idempotency_key_reused")), "{user}: {}", other.body);
        }
    }
    let held: usize = (1..=6).sum::<usize>() + (10..16).sum::<usize>();
    assert_eq!(holds_of(&app, id).await?, 12);
    assert_eq!(stock_of(&app, id).await?, 1000 - held as i64);

    // A claim in flight under another user's name does not hold this user's key.
    let k3 = key();
    sqlx::query("INSERT INTO idempotency_keys (caller, idempotency_key, request_hash, state, owner) VALUES ('mallory', ?, 'x', 'in_flight', UUID())")
        .bind(&k3)
        .execute(&app.pool)
        .await?;
    let a = reserve(&app, Some(&k3), &body(&users[0], 1)).await;
    assert_eq!((a.status, a.replayed), (201, false), "{}", a.body);
    app.cleanup().await;
    Ok(())
}
