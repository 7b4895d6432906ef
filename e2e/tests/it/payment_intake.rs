//! `POST /payment` at the front door: the two-minute duplicate rule under concurrency,
//! Idempotency-Key semantics, and bad input. Real product and orchestrator services, fresh databases.

use std::time::Duration;

use e2e::system::{System, SystemOptions, payment_body};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

const VISA: &str = "4242424242424242";

async fn orders_in_db(sys: &System) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&sys.orchestrator_db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_identical_payments_accept_exactly_one_and_the_window_reopens() -> anyhow::Result<()> {
    let window = Duration::from_secs(3);
    let sys = System::spawn(SystemOptions { duplicate_window: window, ..Default::default() }).await?;
    let product = sys.create_product("25.00", 10).await?;
    let reservation = sys.reserve(product, "dup-user", 1).await?;
    let body = payment_body(reservation["id"].as_str().unwrap(), "dup-user", VISA);

    let results = join_all((0..200).map(|_| sys.post_payment(&body, None))).await;
    let mut accepted = Vec::new();
    let mut originals = Vec::new();
    for r in results {
        let (status, _, b) = r?;
        match status {
            StatusCode::ACCEPTED => accepted.push(b["order_id"].as_str().unwrap().to_string()),
            StatusCode::CONFLICT => {
                assert_eq!(b["code"], "duplicate_payment", "{b}");
                originals.push(b["original_order_id"].as_str().unwrap().to_string());
            }
            other => panic!("unexpected {other}: {b}"),
        }
    }
    assert_eq!(accepted.len(), 1, "exactly one payment is accepted");
    assert_eq!(originals.len(), 199);
    assert!(originals.iter().all(|o| *o == accepted[0]), "every 409 names the accepted order");
    assert_eq!(orders_in_db(&sys).await, 1);

    // After the window a new payment by the same user for the same product is accepted.
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    let second = sys.reserve(product, "dup-user", 1).await?;
    let (status, _, b) = sys.post_payment(&payment_body(second["id"].as_str().unwrap(), "dup-user", VISA), None).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    assert_ne!(b["order_id"].as_str().unwrap(), accepted[0]);
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_key_replays_rejects_other_bodies_and_serialises_concurrent_use() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let product = sys.create_product("10.00", 10).await?;
    let r1 = sys.reserve(product, "idem-user", 1).await?;
    let body = payment_body(r1["id"].as_str().unwrap(), "idem-user", VISA);

    let (s1, h1, b1) = sys.post_payment(&body, Some("key-1")).await?;
    assert_eq!(s1, StatusCode::ACCEPTED);
    assert!(h1.get("idempotent-replayed").is_none());
    let (s2, h2, b2) = sys.post_payment(&body, Some("key-1")).await?;
    assert_eq!((s2, &b2), (s1, &b1), "a replay returns the identical status and body");
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");

    let mut other = body.clone();
    other["payment_method"]["card"]["exp_month"] = json!(11);
    let (s3, _, b3) = sys.post_payment(&other, Some("key-1")).await?;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b3["code"], "idempotency_key_reused");

    // A 409 duplicate answer is stored and replayed like any other answer.
    let (s4, _, b4) = sys.post_payment(&body, Some("key-2")).await?;
    assert_eq!(s4, StatusCode::CONFLICT);
    let (s5, h5, b5) = sys.post_payment(&body, Some("key-2")).await?;
    assert_eq!((s5, b5), (s4, b4));
    assert_eq!(h5.get("idempotent-replayed").unwrap(), "true");

    // Concurrent requests with one fresh key: one executes; the others see it in flight or replay it.
    let other_product = sys.create_product("10.00", 10).await?;
    let r2 = sys.reserve(other_product, "idem-user", 1).await?;
    let body2 = payment_body(r2["id"].as_str().unwrap(), "idem-user", VISA);
    let results = join_all((0..20).map(|_| sys.post_payment(&body2, Some("key-3")))).await;
    let mut executed = Vec::new();
    for r in results {
        let (status, headers, b) = r?;
        match (status, headers.get("idempotent-replayed").is_some()) {
            (StatusCode::ACCEPTED, false) => executed.push(b),
            (StatusCode::ACCEPTED, true) => {}
            (StatusCode::CONFLICT, false) => assert_eq!(b["code"], "idempotency_key_in_flight", "{b}"),
            other => panic!("unexpected {other:?}: {b}"),
        }
    }
    assert_eq!(executed.len(), 1, "exactly one request with the key executed");
    assert_eq!(orders_in_db(&sys).await, 2);
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_payments_get_a_4xx_problem_and_create_nothing() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { reservation_ttl: Duration::from_secs(1), ..Default::default() }).await?;
    let product = sys.create_product("10.00", 10).await?;
    let r = sys.reserve(product, "bad-user", 1).await?;
    let rid = r["id"].as_str().unwrap().to_string();
    let good = payment_body(&rid, "bad-user", VISA);
    let with = |path: &[&str], v: Value| {
        let mut b = good.clone();
        let mut cur = &mut b;
        for p in &path[..path.len() - 1] {
            cur = cur.get_mut(*p).unwrap();
        }
        cur[path[path.len() - 1]] = v;
        b
    };
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        // No user_id: the token's subject (here a default user who does not hold this reservation) pays.
        ("missing user, another token", json!({"reservation_id": rid, "payment_method": good["payment_method"]}), StatusCode::NOT_FOUND, "reservation_not_found"),
        ("quantity of wrong type", with(&["user_id"], json!(42)), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("number as a JSON number", with(&["payment_method", "card", "number"], json!(4242424242424242u64)), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("unknown field", with(&["surprise"], json!(1)), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("bad luhn", with(&["payment_method", "card", "number"], json!("4242424242424241")), StatusCode::UNPROCESSABLE_ENTITY, "incorrect_number"),
        ("bad cvc", with(&["payment_method", "card", "cvc"], json!("12a")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_cvc"),
        ("past expiry", with(&["payment_method", "card", "exp_year"], json!(2020)), StatusCode::UNPROCESSABLE_ENTITY, "expired_card"),
        ("bad month", with(&["payment_method", "card", "exp_month"], json!(13)), StatusCode::UNPROCESSABLE_ENTITY, "invalid_expiry"),
        ("not a card", with(&["payment_method", "type"], json!("cash")), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("bad reservation id", with(&["reservation_id"], json!("nope")), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("unknown reservation", with(&["reservation_id"], json!(uuid::Uuid::now_v7().to_string())), StatusCode::NOT_FOUND, "reservation_not_found"),
        // Mallory (her own token) cannot even see the reservation: the product service hides it.
        ("someone else's reservation", with(&["user_id"], json!("mallory")), StatusCode::NOT_FOUND, "reservation_not_found"),
    ];
    for (name, body, status, code) in cases {
        let (s, h, b) = sys.post_payment(&body, None).await?;
        assert_eq!(s, status, "{name}: {b}");
        assert_eq!(b["code"], code, "{name}: {b}");
        assert_eq!(h.get("content-type").unwrap(), "application/problem+json", "{name}");
        assert!(!b.to_string().contains("4242424242424242"), "{name}: the card number is echoed back: {b}");
    }
    // Malformed JSON and a wrong content type.
    let res = sys.http.post(format!("{}/payment", sys.orchestrator_url)).bearer_auth(sys.token("e2e-user")).header("content-type", "application/json").body("{not json").send().await?;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = sys.http.post(format!("{}/payment", sys.orchestrator_url)).bearer_auth(sys.token("e2e-user")).body(good.to_string()).send().await?;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // An expired reservation cannot be paid.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, _, b) = sys.post_payment(&good, None).await?;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["code"], "reservation_expired");

    assert_eq!(orders_in_db(&sys).await, 0, "no bad request created an order");
    // Orders that do not exist are 404 problems.
    let res = sys.http.get(format!("{}/orders/{}", sys.orchestrator_url, uuid::Uuid::now_v7())).bearer_auth(sys.token("e2e-user")).send().await?;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    sys.stop().await;
    Ok(())
}

/// An Idempotency-Key is its caller's. Users who send the same key — one after the other, or all at
/// once, each paying their own reservation — each get their own order (202, not a replay of
/// another's, not 422 `idempotency_key_reused`, not 409 `idempotency_key_in_flight`), and each
/// replay returns its own user's answer; a key claimed first by someone else changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_key_from_different_users_is_a_payment_of_each() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let users: Vec<String> = (1..=4).map(|n| format!("key-sharer-{n}")).collect();
    // A product per round: a user paying one product twice within the window is a duplicate.
    let products = [sys.create_product("7.00", 100).await?, sys.create_product("8.00", 100).await?, sys.create_product("9.00", 100).await?];
    let mut bodies = Vec::new();
    for (round, user) in (0..2).flat_map(|r| users.iter().map(move |u| (r, u))) {
        let reservation = sys.reserve(products[round as usize], user, 1 + round).await?;
        let mut body = payment_body(reservation["id"].as_str().unwrap(), user, VISA);
        body["payment_method"]["card"]["exp_month"] = json!(1 + users.iter().position(|u| u == user).unwrap());
        bodies.push((round, user.clone(), body));
    }
    let mut answers = Vec::new();
    // Round 0 one after the other under "shared-1"; round 1 all at once under "shared-2".
    for (round, user, body) in bodies.iter().filter(|(r, ..)| *r == 0) {
        let (status, headers, b) = sys.post_payment(body, Some("shared-1")).await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{user}: {b}");
        assert!(headers.get("idempotent-replayed").is_none(), "{user} got another user's answer: {b}");
        answers.push((*round, user.clone(), body.clone(), "shared-1", b));
    }
    let at_once: Vec<_> = bodies.iter().filter(|(r, ..)| *r == 1).collect();
    let results = join_all(at_once.iter().map(|(_, _, body)| sys.post_payment(body, Some("shared-2")))).await;
    for ((round, user, body), r) in at_once.into_iter().zip(results) {
        let (status, headers, b) = r?;
        assert_eq!(status, StatusCode::ACCEPTED, "{user}: {b}");
        assert!(headers.get("idempotent-replayed").is_none(), "{user} got another user's answer: {b}");
        answers.push((*round, user.clone(), body.clone(), "shared-2", b));
    }
    let orders: std::collections::BTreeSet<&str> = answers.iter().map(|a| a.4["order_id"].as_str().unwrap()).collect();
    assert_eq!(orders.len(), 8, "one order per user and round");
    assert_eq!(orders_in_db(&sys).await, 8);
    // Each replay is its own user's answer; their own key with another body is still a reuse.
    for (_, user, body, key, first) in &answers {
        let (status, headers, b) = sys.post_payment(body, Some(*key)).await?;
        assert_eq!((status, &b), (StatusCode::ACCEPTED, first), "{user} replays their own answer");
        assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
        let owner: String = sqlx::query_scalar("SELECT CAST(user_id AS CHAR) FROM orders WHERE id = ?").bind(b["order_id"].as_str()).fetch_one(&sys.orchestrator_db).await?;
        assert_eq!(&owner, user);
        let mut other = body.clone();
        other["payment_method"]["card"]["exp_month"] = json!(12);
        let (status, _, b) = sys.post_payment(&other, Some(*key)).await?;
        assert_eq!((status, b["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")), "{user}: {b}");
    }
    // A claim still in flight under another caller's name holds nobody else's key.
    let (ttl, lock) = (Duration::from_secs(3600), Duration::from_secs(60));
    let orchestrator::idempotency::Claim::Fresh(_) =
        orchestrator::idempotency::claim(&sys.orchestrator_db, "mallory", "shared-3", "h", ttl, lock).await.unwrap()
    else {
        panic!("fresh")
    };
    let reservation = sys.reserve(products[2], &users[0], 1).await?;
    let (status, _, b) = sys.post_payment(&payment_body(reservation["id"].as_str().unwrap(), &users[0], VISA), Some("shared-3")).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    sys.stop().await;
    Ok(())
}

/// Defect 3: a claim taken over after the lock timeout belongs to its new owner. The stalled first
/// request can neither overwrite the new owner's stored answer nor delete its claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_request_cannot_touch_a_claim_taken_over_from_it() -> anyhow::Result<()> {
    use orchestrator::idempotency::{self, Claim};
    let sys = System::spawn(SystemOptions::default()).await?;
    let (ttl, no_lock) = (Duration::from_secs(3600), Duration::ZERO);
    let pool = &sys.orchestrator_db;
    let Claim::Fresh(first) = idempotency::claim(pool, "staller", "k-stall", "h", ttl, Duration::from_secs(60)).await.unwrap() else { panic!("fresh") };
    tokio::time::sleep(Duration::from_millis(1100)).await; // older than a zero lock timeout
    let Claim::Fresh(second) = idempotency::claim(pool, "staller", "k-stall", "h", ttl, no_lock).await.unwrap() else { panic!("taken over") };
    assert_ne!(first.owner, second.owner);

    // The stalled first request wakes up: its release and its completion change nothing.
    assert!(!idempotency::release(pool, &first).await?, "the first request no longer owns the claim");
    assert!(!idempotency::complete(pool, &first, StatusCode::UNPROCESSABLE_ENTITY, "{\"stale\":true}").await?);
    let state: String = sqlx::query_scalar("SELECT state FROM idempotency_keys WHERE idempotency_key = 'k-stall'").fetch_one(pool).await?;
    assert_eq!(state, "in_flight", "the second request's claim survives");

    assert!(idempotency::complete(pool, &second, StatusCode::ACCEPTED, "{\"order_id\":\"x\"}").await?);
    assert!(!idempotency::complete(pool, &first, StatusCode::UNPROCESSABLE_ENTITY, "{\"stale\":true}").await?);
    match idempotency::claim(pool, "staller", "k-stall", "h", ttl, no_lock).await.unwrap() {
        Claim::Replay { status, body } => assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, "{\"order_id\":\"x\"}")),
        Claim::Fresh(_) => panic!("a completed key replays"),
    }
    sys.stop().await;
    Ok(())
}
