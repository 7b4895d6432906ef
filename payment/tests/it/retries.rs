//! Transient acquirer errors: non-blocking retries with growing gaps, the dead-letter topic after
//! the budget, and the outage switch, against the real MariaDB and broker.

use crate::common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{Options, charge, new_id, new_order_id, spawn_app_with};

const APPROVED: &str = "4242424242424242";
const FLAKY_TWICE: &str = "4000000000000341";
const ALWAYS_FAILS: &str = "4000000000000119";

fn attempt_times(view: &serde_json::Value) -> Vec<DateTime<Utc>> {
    view["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_card_that_fails_twice_is_charged_on_the_third_attempt_with_growing_gaps() {
    let app = spawn_app_with(Options { retry_base_ms: 400, retry_max_ms: 5000, max_attempts: 5 }).await;
    let replies = app.replies();
    let (order, user) = (new_order_id(), new_id("user"));
    app.send(&user, &charge(&order, &user, "12.34", FLAKY_TWICE, "123")).await;

    let reply = replies.reply_for(&order).await;
    assert_eq!(reply["type"], "charged", "{reply}");
    let view = app.get_json(&format!("/charges/{order}")).await;
    let outcomes: Vec<&str> = view["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["transient", "transient", "approved"], "{view}");
    let at = attempt_times(&view);
    let (gap1, gap2) = (at[1] - at[0], at[2] - at[1]);
    // Equal jitter: the first retry waits within [200, 400] ms, the second within [400, 800] ms.
    // Only these lower bounds are facts; comparing the two observed gaps was flaky, as hop latency
    // under CPU load easily exceeds the jitter's spread (the policy's unit tests pin the growth).
    assert!(gap1.num_milliseconds() >= 200, "first retry waited its backoff: {gap1}");
    assert!(gap2.num_milliseconds() >= 400, "second retry waited its longer backoff: {gap2}");
    assert_eq!(replies.for_order(&order).len(), 1, "one reply for the whole chain");
    let summary = app.get_json("/ledger/summary").await;
    assert_eq!(summary["balanced"], true);
    assert_eq!(summary["captured_total"], "12.34");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_do_not_block_other_orders() {
    // A long backoff: the other customer's charge must be answered well before the retry is due.
    let app = spawn_app_with(Options { retry_base_ms: 4000, retry_max_ms: 8000, max_attempts: 2 }).await;
    let replies = app.replies();
    let (slow, slow_user) = (new_order_id(), new_id("user"));
    app.send(&slow_user, &charge(&slow, &slow_user, "1.00", ALWAYS_FAILS, "123")).await;
    common::eventually(|| {
        let app = &app;
        let slow = slow.clone();
        async move {
            let res = app.get(&format!("/charges/{slow}")).await;
            if res.status() == 200 { Ok(()) } else { Err(format!("no first attempt yet: {}", res.status())) }
        }
    })
    .await;
    let started = Instant::now();
    let (fast, fast_user) = (new_order_id(), new_id("user"));
    app.send(&fast_user, &charge(&fast, &fast_user, "2.00", APPROVED, "123")).await;
    assert_eq!(replies.reply_for(&fast).await["type"], "charged");
    assert!(started.elapsed() < Duration::from_millis(3500), "answered in {:?} while a retry waited", started.elapsed());
    assert_eq!(replies.reply_for(&slow).await["type"], "failed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_card_that_always_fails_is_dead_lettered_without_card_data_and_answered_failed() {
    let app = spawn_app_with(Options { retry_base_ms: 50, retry_max_ms: 1000, max_attempts: 3 }).await;
    let replies = app.replies();
    let dlq = app.dead_letters();
    let (order, user) = (new_order_id(), new_id("user"));
    let cvc = "987";
    let started = Utc::now();
    app.send(&user, &charge(&order, &user, "99.00", ALWAYS_FAILS, cvc)).await;

    let reply = replies.reply_for(&order).await;
    assert_eq!(reply["type"], "failed", "{reply}");
    assert_eq!(reply["error_class"], "processing_error");
    assert_eq!(reply["attempts"], 3);

    let dead = dlq.wait_for_n(1, |r| r.header("dlq.order_id") == Some(order.as_str())).await;
    let d = &dead[0];
    assert_eq!(d.key.as_deref(), Some(user.as_str()));
    assert_eq!(d.header("dlq.original.topic"), Some(app.topic("payment.commands").as_str()));
    assert!(d.header("dlq.original.partition").unwrap().parse::<i32>().is_ok());
    assert!(d.header("dlq.original.offset").unwrap().parse::<i64>().is_ok());
    assert_eq!(d.header("dlq.original.key"), Some(user.as_str()));
    assert_eq!(d.header("dlq.attempts"), Some("3"));
    assert_eq!(d.header("dlq.error.class"), Some("processing_error"));
    assert!(d.header("dlq.error.message").unwrap().contains("processing_error"));
    assert_eq!(d.header("dlq.service"), Some("payment"));
    let first = d.header("dlq.first_failure").unwrap().parse::<DateTime<Utc>>().unwrap();
    let last = d.header("dlq.last_failure").unwrap().parse::<DateTime<Utc>>().unwrap();
    assert!(started - chrono::Duration::seconds(1) <= first && first < last, "first {first}, last {last}");
    let raw = d.raw_bytes();
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(ALWAYS_FAILS.as_bytes()), "the PAN is in the dead letter");
    assert!(!contains(format!("\"{cvc}\"").as_bytes()) && !contains(b"cvc"), "the CVC is in the dead letter");

    // Exactly one dead letter, even after everything has settled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dlq.all().len(), 1, "{:?}", dlq.all());
    let view = app.get_json(&format!("/charges/{order}")).await;
    assert_eq!(view["status"], "failed");
    assert_eq!(view["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(app.get_json("/ledger/summary").await["journal_entries"], 0);
    assert!(!app.database_contains(ALWAYS_FAILS).await, "the PAN is stored");
    for record in replies.all() {
        let raw = record.raw_bytes();
        assert!(!raw.windows(16).any(|w| w == ALWAYS_FAILS.as_bytes()), "the PAN is in a reply");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn during_an_outage_charges_fail_and_after_it_they_are_approved() {
    let app = spawn_app_with(Options { retry_base_ms: 50, retry_max_ms: 500, max_attempts: 3 }).await;
    let replies = app.replies();
    let dlq = app.dead_letters();
    app.set_outage(true).await;
    assert_eq!(app.get_json("/admin/outage").await["enabled"], true);

    let (order, user) = (new_order_id(), new_id("user"));
    app.send(&user, &charge(&order, &user, "5.00", APPROVED, "123")).await;
    let reply = replies.reply_for(&order).await;
    assert_eq!(reply["type"], "failed", "{reply}");
    assert_eq!(reply["attempts"], 3);
    assert!(reply["reason"].as_str().unwrap().contains("acquirer_unavailable"), "{reply}");
    dlq.wait_for_n(1, |r| r.header("dlq.order_id") == Some(order.as_str())).await;
    let view = app.get_json(&format!("/charges/{order}")).await;
    assert!(view["attempts"].as_array().unwrap().iter().all(|a| a["error"] == "acquirer_unavailable"), "{view}");

    app.set_outage(false).await;
    let next = new_order_id();
    app.send(&user, &charge(&next, &user, "6.00", APPROVED, "123")).await;
    assert_eq!(replies.reply_for(&next).await["type"], "charged");

    // The operator replays the parked order: a new round of attempts, charged once.
    app.send(&user, &charge(&order, &user, "5.00", APPROVED, "123")).await;
    let answers = replies.replies_for(&order, 2).await;
    assert_eq!(answers[1]["type"], "charged", "{}", answers[1]);
    let summary = app.get_json("/ledger/summary").await;
    assert_eq!(summary["captured_total"], "11.00");
    assert_eq!(summary["balanced"], true);
    app.stop().await;
}
