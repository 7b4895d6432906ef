//! Ids compare byte for byte (issue 11): `alice` and `Alice` are two users, `K-1` and `k-1` two
//! Idempotency-Keys — in the duplicate guard, the order listing, reservations, the ledger and the
//! idempotency records. Before the `*_binary_ids.sql` migrations these columns folded case, and
//! every assertion below failed. Product, orchestrator and payment in-process against the real
//! MariaDB and broker, fresh databases and topics.

use std::time::Duration;

use e2e::system::{System, SystemOptions, payment_body};
use reqwest::StatusCode;
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(30);
const VISA: &str = "4242424242424242";

/// Reserves `quantity` of `product` for `user` and pays for it with `key`; returns (status, body, reservation id).
async fn reserve_and_pay(sys: &System, product: u64, user: &str, quantity: i64, key: Option<&str>) -> anyhow::Result<(StatusCode, Value, String)> {
    let r = sys.reserve(product, user, quantity).await?;
    let rid = r["id"].as_str().unwrap().to_string();
    let (status, _, body) = sys.post_payment(&payment_body(&rid, user, VISA), key).await?;
    Ok((status, body, rid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_and_idempotency_keys_that_differ_only_in_case_are_different() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let product = sys.create_product("5.00", 20).await?;

    // The duplicate guard: the same product and card within the window, two users — both accepted.
    let (status, lower, _) = reserve_and_pay(&sys, product, "alice", 1, None).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{lower}");
    let (status, upper, upper_rid) = reserve_and_pay(&sys, product, "Alice", 3, None).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "`Alice` is not `alice`: her payment is no duplicate of alice's: {upper}");
    let (alice_order, big_alice_order) = (lower["order_id"].as_str().unwrap().to_string(), upper["order_id"].as_str().unwrap().to_string());
    // ...while the same user again is still a duplicate.
    let (status, again, _) = reserve_and_pay(&sys, product, "alice", 1, None).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["original_order_id"], alice_order.as_str());
    for order in [&alice_order, &big_alice_order] {
        sys.wait_order(order, WITHIN, |o| o["status"] == "COMPLETED").await?;
    }

    // The listing: each user sees their own order only — with their own token, and as an admin asks.
    for (user, order) in [("alice", &alice_order), ("Alice", &big_alice_order)] {
        let own: Value = sys.http.get(format!("{}/orders", sys.orchestrator_url)).bearer_auth(sys.token(user)).send().await?.json().await?;
        let by_admin = sys.get_json(format!("{}/orders?user_id={user}", sys.orchestrator_url)).await?;
        for listed in [own, by_admin] {
            let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
            assert_eq!(ids, [order.as_str()], "GET /orders as {user}: {listed}");
        }
    }

    // The ledger: one customer account each, each with its own capture (1 × 5.00 and 3 × 5.00).
    for (user, order, amount) in [("alice", &alice_order, "-5.00"), ("Alice", &big_alice_order, "-15.00")] {
        let account = sys.get_json(format!("{}/accounts/customer:{user}", sys.payment_url)).await?;
        assert_eq!(account["id"], format!("customer:{user}"), "{account}");
        let postings: Vec<(&str, &str)> =
            account["postings"].as_array().unwrap().iter().map(|p| (p["order_id"].as_str().unwrap(), p["amount"].as_str().unwrap())).collect();
        assert_eq!(postings, [(order.as_str(), amount)], "customer:{user}: {account}");
    }

    // A reservation is its user's: `alice` cannot pay for (and so lock) `Alice`'s.
    let other = sys.reserve(product, "Alice", 1).await?;
    let (status, _, body) = sys.post_payment(&payment_body(other["id"].as_str().unwrap(), "alice", VISA), None).await?;
    // (Another user's reservation is not found for her: 404, or 403 where the API says whose it is.)
    assert!(matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), "{status} {body}");
    let held: String = sqlx::query_scalar("SELECT status FROM reservations WHERE id = ?").bind(other["id"].as_str()).fetch_one(&sys.product_db).await?;
    assert_eq!(held, "HELD", "still Alice's to pay");
    let paid_by: String = sqlx::query_scalar("SELECT CAST(user_id AS CHAR) FROM reservations WHERE id = ?").bind(&upper_rid).fetch_one(&sys.product_db).await?;
    assert_eq!(paid_by, "Alice");
    let alices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations WHERE user_id = 'alice'").fetch_one(&sys.product_db).await?;
    assert_eq!(alices, 2, "alice's two reservations, none of Alice's");

    // Idempotency-Keys: `K-1` and `k-1` are two keys, so another body under the other is a new
    // request (202), not a reuse (422); the same key replays.
    let product2 = sys.create_product("2.00", 20).await?;
    let (status, first, _) = reserve_and_pay(&sys, product2, "bob", 1, Some("K-1")).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    // (Keys are per caller: one user's two keys. Another product, or the duplicate rule answers.)
    let product3 = sys.create_product("3.00", 20).await?;
    let (status, second, _) = reserve_and_pay(&sys, product3, "bob", 1, Some("k-1")).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "`k-1` is not `K-1`: {second}");
    assert_ne!(first["order_id"], second["order_id"]);
    let (status, mixed, _) = reserve_and_pay(&sys, product2, "bob", 1, Some("K-1")).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "the same key with another body is still a reuse: {mixed}");
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys").fetch_one(&sys.orchestrator_db).await?;
    assert_eq!(keys, 2);
    sys.stop().await;
    Ok(())
}
