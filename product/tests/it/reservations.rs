//! Stock is never oversold, and comes back exactly once however its holds end.

use crate::common;

use std::{collections::HashMap, time::Duration};

use common::{Options, spawn_app};
use futures::future::join_all;
use sagaway_contract::messages::{ProductCommand, ProductReply};
use serde_json::{Value, json};

async fn create_product(app: &common::TestApp, stock: i64) -> anyhow::Result<u64> {
    let (status, body) = app.post_json("/products", &json!({"name": "Race Lamp", "price": "10.00", "stock": stock})).await?;
    assert_eq!(status, 201, "{body}");
    Ok(body["id"].as_u64().unwrap())
}

async fn stock_of(app: &common::TestApp, id: u64) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, i32>("SELECT stock FROM products WHERE id = ?").bind(id).fetch_one(&app.pool).await? as i64)
}

/// Acceptance 1: 500 concurrent `POST /reserve` of 1 on a product with stock 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_sell_exactly_the_stock() -> anyhow::Result<()> {
    let app = spawn_app(Options::default()).await?;
    let product_id = create_product(&app, 100).await?;

    let started = std::time::Instant::now();
    let requests = (0..500).map(|i| {
        let app = &app;
        async move {
            let body = json!({"product_id": product_id, "user_id": format!("user-{i}"), "quantity": 1});
            let res = app
                .http
                .post(app.url("/reserve"))
                .bearer_auth(app.token_for(Some(&body)))
                .json(&body)
                .send()
                .await
                .expect("request sent");
            let status = res.status().as_u16();
            let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_string());
            (status, content_type, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    let answers = join_all(requests).await;
    println!("500 concurrent reservations answered in {:?}", started.elapsed());

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (status, content_type, body) in &answers {
        *by_status.entry(*status).or_default() += 1;
        match status {
            201 => assert_eq!(body["status"], "HELD"),
            409 => {
                assert_eq!(body["code"], "insufficient_stock", "{body}");
                assert_eq!(content_type.as_deref(), Some("application/problem+json"));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(by_status.get(&201), Some(&100), "{by_status:?}");
    assert_eq!(by_status.get(&409), Some(&400), "{by_status:?}");
    assert_eq!(stock_of(&app, product_id).await?, 0);
    let held: Option<rust_decimal::Decimal> =
        sqlx::query_scalar("SELECT SUM(quantity) FROM reservations WHERE product_id = ? AND status = 'HELD'")
            .bind(product_id)
            .fetch_one(&app.pool)
            .await?;
    assert_eq!(held, Some(100.into()));
    app.cleanup().await;
    Ok(())
}

/// Acceptance 2: holds with a tiny TTL, released by saga commands while the expiry job (the app's
/// own, and extra sweeps from the test) expires them: the stock returns exactly once per hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_racing_release_returns_stock_exactly_once() -> anyhow::Result<()> {
    // Long enough that all 300 holds exist before the first lapses, on a loaded 2-core machine.
    const TTL: Duration = Duration::from_millis(3000);
    let app = spawn_app(Options {
        reservation_ttl: TTL,
        expiry_interval: Duration::from_millis(5),
        ..Options::default()
    })
    .await?;
    const STOCK: i64 = 5_000;
    let product_id = create_product(&app, STOCK).await?;

    // 300 holds of 1-3 units, taken concurrently so they lapse close together.
    let reserving = std::time::Instant::now();
    let answers = join_all((0..300).map(|i| {
        let app = &app;
        async move {
            app.post_json("/reserve", &json!({"product_id": product_id, "user_id": format!("u{i}"), "quantity": 1 + i % 3}))
                .await
                .expect("reserve")
        }
    }))
    .await;
    let mut reservations = Vec::new();
    for (status, body) in answers {
        assert_eq!(status, 201, "{body}");
        reservations.push((body["id"].as_str().unwrap().to_string(), body["quantity"].as_i64().unwrap()));
    }
    println!("300 holds taken in {:?}", reserving.elapsed());

    // Start racing just before the holds lapse: releases in 16 parallel streams against two extra
    // expiry sweepers (plus the app's own job every 5 ms).
    tokio::time::sleep(TTL.saturating_sub(reserving.elapsed() + Duration::from_millis(100))).await;
    let pool = app.pool.clone();
    let sweepers = (0..2).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut expired = 0;
            for _ in 0..200 {
                // A deadlock victim just retries, as the real job does on its next tick.
                expired += product::reservations::expire_lapsed(&pool, 50).await.unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            expired
        })
    });
    let chunks: Vec<Vec<String>> = reservations.chunks(19).map(|c| c.iter().map(|(id, _)| id.clone()).collect()).collect();
    let releasers = chunks.into_iter().map(|ids| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut replies = Vec::new();
            for id in ids {
                let command = ProductCommand::ReleaseReservation {
                    order_id: sagaway_contract::ids::OrderId::new(),
                    reservation_id: id.parse().unwrap(),
                    reason: "test".into(),
                };
                loop {
                    let mut tx = pool.begin().await.expect("tx");
                    match product::commands::apply(&mut tx, &command).await {
                        Ok(reply) => {
                            tx.commit().await.expect("commit");
                            replies.push(reply);
                            break;
                        }
                        Err(e) => {
                            // Deadlock or lock wait: the consumer loop retries the message the same way.
                            eprintln!("release of {id} retried: {e}");
                            let _ = tx.rollback().await;
                        }
                    }
                }
            }
            replies
        })
    });
    let (sweeps, releases) = tokio::join!(join_all(sweepers), join_all(releasers));
    let expired_by_test: u64 = sweeps.into_iter().map(|r| r.unwrap()).sum();
    let replies: Vec<ProductReply> = releases.into_iter().flat_map(|r| r.unwrap()).collect();
    let released_replies = replies
        .iter()
        .filter(|r| matches!(r, ProductReply::ReservationReleased { status, .. } if status == "RELEASED"))
        .count();

    let statuses: Vec<(String, i32)> = sqlx::query_as("SELECT status, quantity FROM reservations WHERE product_id = ?")
        .bind(product_id)
        .fetch_all(&app.pool)
        .await?;
    let count = |s: &str| statuses.iter().filter(|(st, _)| st == s).count();
    println!(
        "released {} / expired {} (test sweeps expired {expired_by_test})",
        count("RELEASED"),
        count("EXPIRED")
    );
    assert_eq!(statuses.len(), 300);
    assert!(statuses.iter().all(|(s, _)| s == "RELEASED" || s == "EXPIRED"), "{statuses:?}");
    // Each RELEASED row was released by exactly one command that said so.
    assert_eq!(released_replies, count("RELEASED"));
    assert_eq!(stock_of(&app, product_id).await?, STOCK, "stock must come back exactly once per hold");
    app.cleanup().await;
    Ok(())
}

/// A saga command that meets a hold lapsed by the database clock, before the expiry job swept it
/// (the lapse is read with the row lock, in one statement): lock and confirm are refused `expired`
/// and the stock comes back once; a live hold locks, then confirms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_a_lapsed_unswept_hold_are_refused_expired() -> anyhow::Result<()> {
    const TTL: Duration = Duration::from_millis(1500);
    // The job never runs during the test: only the commands can see the lapse.
    let app = spawn_app(Options { reservation_ttl: TTL, expiry_interval: Duration::from_secs(3600), ..Options::default() }).await?;
    let product_id = create_product(&app, 10).await?;
    let reserve = |user: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app.post_json("/reserve", &json!({"product_id": product_id, "user_id": user, "quantity": 2})).await.expect("reserve");
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap().to_string()
        }
    };
    let (to_lock, to_confirm) = (reserve("lapse-a").await, reserve("lapse-b").await);
    let apply = |command: ProductCommand| {
        let pool = app.pool.clone();
        async move {
            let mut tx = pool.begin().await.expect("tx");
            let reply = product::commands::apply(&mut tx, &command).await.expect("apply");
            tx.commit().await.expect("commit");
            reply
        }
    };
    let (order_a, order_b) = (sagaway_contract::ids::OrderId::new(), sagaway_contract::ids::OrderId::new());
    // The second hold is locked while live, so its confirm meets the lapse.
    let locked = apply(ProductCommand::LockReservation { order_id: order_b.clone(), reservation_id: to_confirm.parse().unwrap(), user_id: "lapse-b".parse().unwrap() }).await;
    assert!(matches!(locked, ProductReply::ReservationLocked { .. }), "{locked:?}");
    assert_eq!(stock_of(&app, product_id).await?, 6);

    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    let lock = apply(ProductCommand::LockReservation { order_id: order_a, reservation_id: to_lock.parse().unwrap(), user_id: "lapse-a".parse().unwrap() }).await;
    assert!(matches!(&lock, ProductReply::ReservationRejected { reason, .. } if reason == "expired"), "{lock:?}");
    let confirm = apply(ProductCommand::ConfirmReservation { order_id: order_b, reservation_id: to_confirm.parse().unwrap() }).await;
    assert!(matches!(&confirm, ProductReply::ReservationConfirmFailed { reason, .. } if reason == "expired"), "{confirm:?}");

    let status = |id: String| {
        let pool = app.pool.clone();
        async move { sqlx::query_scalar::<_, String>("SELECT status FROM reservations WHERE id = ?").bind(id).fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(status(to_lock).await, "EXPIRED");
    assert_eq!(status(to_confirm).await, "EXPIRED");
    assert_eq!(stock_of(&app, product_id).await?, 10, "both holds' stock back, once");
    app.cleanup().await;
    Ok(())
}
