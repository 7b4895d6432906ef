//! Transfers: instant (settled at once, insufficient funds, night limit, unknown bank/account) and
//! business hours (PROCESSING → SETTLED in the window; SCHEDULED for the next opening outside it,
//! holidays skipped, cancelable, durable across a restart). The bank's clock is a TestClock.

use crate::common;

use common::{Options, TestApp, local, spawn, spawn_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// alice's funded account and bob's account: (alice id, bob id, bob number).
async fn two_accounts(app: &TestApp, fund: &str) -> (String, String, String) {
    let a = app.open("alice").await["id"].as_str().unwrap().to_string();
    let b = app.open("bob").await;
    app.fund("alice", &a, fund).await;
    (a, b["id"].as_str().unwrap().into(), b["number"].as_str().unwrap().into())
}

fn body(kind: &str, from: &str, to_number: &str, amount: &str) -> Value {
    json!({"kind": kind, "from_account": from, "to": {"bank": "001", "account_number": to_number}, "amount": amount, "description": "rent"})
}

#[tokio::test]
async fn instant_transfers_settle_at_once_or_are_refused() {
    let app = spawn().await;
    let (a, b, bn) = two_accounts(&app, "100.00").await;
    let (s, t) = app.transfer("alice", &body("instant", &a, &bn, "40.00")).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["status"], "SETTLED");
    assert_eq!(app.account("alice", &a).await["available"], "60.00");
    assert_eq!(app.account("bob", &b).await["available"], "40.00");
    // the recipient sees it; a stranger does not
    assert_eq!(app.get("bob", &format!("/transfers/{}", t["id"].as_str().unwrap())).await.0, StatusCode::OK);
    assert_eq!(app.get("mallory", &format!("/transfers/{}", t["id"].as_str().unwrap())).await.0, StatusCode::NOT_FOUND);

    let (s, e) = app.transfer("alice", &body("instant", &a, &bn, "60.01")).await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("insufficient_funds")));
    let (s, e) = app.transfer("alice", &json!({"kind": "instant", "from_account": a, "to": {"bank": "237", "account_number": bn}, "amount": "1.00"})).await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_bank")));
    let (s, e) = app.transfer("alice", &body("instant", &a, "12345678-9", "1.00")).await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_account")));
    let (s, e) = app.transfer("alice", &body("instant", &a, "12345678-0", "1.00")).await;
    assert_eq!((s, e["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("to.account_number")));
    let (s, e) = app.transfer("alice", &body("wire", &a, &bn, "1.00")).await;
    assert_eq!((s, e["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("kind")));
    let (s, _) = app.transfer("mallory", &body("instant", &a, &bn, "1.00")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "someone else's account");
    // Any printable text is a description (4-byte UTF-8 too: it was a 500); ids are ASCII.
    let mut req = body("instant", &a, &bn, "1.00");
    req["description"] = json!("aluguel 🏠 março");
    assert_eq!(app.transfer("alice", &req).await.0, StatusCode::CREATED);
    let (s, e) = app.transfer("alice", &body("instant", "cônta", &bn, "1.00")).await;
    assert_eq!((s, e["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("from_account")), "{e}");
    let sources = json!({"kind": "instant", "sources": [{"bank": "002", "account_id": "\u{89}x", "amount": "1.00"}], "to": {"bank": "001", "account_number": bn}});
    let (s, e) = app.transfer("alice", &sources).await;
    assert_eq!((s, e["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("sources")), "{e}");

    // Idempotency: the same key replays, another body is refused.
    let req = body("instant", &a, &bn, "5.00");
    let (s1, first, _) = app.call("alice", Method::POST, "/transfers", Some(&req), Some("t-1")).await;
    let (s2, again, h) = app.call("alice", Method::POST, "/transfers", Some(&req), Some("t-1")).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, again);
    assert_eq!(h.get("idempotent-replayed").unwrap(), "true");
    let (s3, e, _) = app.call("alice", Method::POST, "/transfers", Some(&body("instant", &a, &bn, "6.00")), Some("t-1")).await;
    assert_eq!((s3, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")));
    assert_eq!(app.account("alice", &a).await["available"], "54.00", "one transfer for one key");
    app.stop().await;
}

#[tokio::test]
async fn individual_accounts_have_a_night_limit() {
    let app = spawn_with(Options { now: local("2026-12-02 22:00:00"), ..Options::default() }).await;
    let (a, _, bn) = two_accounts(&app, "5000.00").await;
    let (s, e) = app.transfer("alice", &body("instant", &a, &bn, "1000.01")).await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("limit_exceeded")), "{e}");
    let (s, _) = app.transfer("alice", &body("instant", &a, &bn, "1000.00")).await;
    assert_eq!(s, StatusCode::CREATED);
    // a business account has no night limit
    let biz = app.open_with("alice", json!({"type": "business", "currency": "BRL", "document": "11.222.333/0001-81"})).await;
    let biz = biz["id"].as_str().unwrap();
    app.fund("alice", biz, "5000.00").await;
    assert_eq!(app.transfer("alice", &body("instant", biz, &bn, "3000.00")).await.0, StatusCode::CREATED);
    // in the morning the limit is gone
    app.clock.set(local("2026-12-03 06:00:00"));
    assert_eq!(app.transfer("alice", &body("instant", &a, &bn, "2000.00")).await.0, StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn business_hours_transfers_settle_in_the_window_and_wait_for_the_next_opening_outside_it() {
    let app = spawn().await; // Wednesday noon
    let (a, b, bn) = two_accounts(&app, "300.00").await;
    let (s, t) = app.transfer("alice", &body("business_hours", &a, &bn, "10.00")).await;
    assert_eq!((s, t["status"].as_str()), (StatusCode::ACCEPTED, Some("PROCESSING")), "{t}");
    let id = t["id"].as_str().unwrap();
    let settled = common::poll(|| async {
        let (_, t) = app.get("alice", &format!("/transfers/{id}")).await;
        (t["status"] == "SETTLED").then_some(t)
    })
    .await;
    let statuses: Vec<&str> = settled["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["PROCESSING", "SETTLED"]);
    assert_eq!(app.account("bob", &b).await["available"], "10.00");

    // Saturday 10:00 → Monday 08:00, held at once
    app.clock.set(local("2026-12-05 10:00:00"));
    let (s, t) = app.transfer("alice", &body("business_hours", &a, &bn, "20.00")).await;
    assert_eq!((s, t["status"].as_str()), (StatusCode::ACCEPTED, Some("SCHEDULED")));
    assert_eq!(t["execute_at"], "2026-12-07T11:00:00Z", "Monday 08:00 in São Paulo");
    let acct = app.account("alice", &a).await;
    assert_eq!((acct["available"].as_str(), acct["held"].as_str(), acct["ledger"].as_str()), (Some("270.00"), Some("20.00"), Some("290.00")));

    // Friday 15:00:00 is already closed → Monday 08:00
    app.clock.set(local("2026-12-04 15:00:00"));
    let (_, t) = app.transfer("alice", &body("business_hours", &a, &bn, "1.00")).await;
    assert_eq!((t["status"].as_str(), t["execute_at"].as_str()), (Some("SCHEDULED"), Some("2026-12-07T11:00:00Z")));

    // cancel while SCHEDULED releases the hold; cancel again → 409
    let cid = t["id"].as_str().unwrap();
    let (s, c, _) = app.call("alice", Method::DELETE, &format!("/transfers/{cid}"), None, None).await;
    assert_eq!((s, c["status"].as_str()), (StatusCode::OK, Some("CANCELED")), "{c}");
    assert_eq!(app.account("alice", &a).await["held"], "20.00");
    let (s, c, _) = app.call("alice", Method::DELETE, &format!("/transfers/{cid}"), None, None).await;
    assert_eq!((s, c["code"].as_str()), (StatusCode::CONFLICT, Some("not_cancelable")));
    let (s, _, _) = app.call("mallory", Method::DELETE, &format!("/transfers/{cid}"), None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // a settled transfer cannot be canceled
    let (s, c, _) = app.call("alice", Method::DELETE, &format!("/transfers/{id}"), None, None).await;
    assert_eq!((s, c["code"].as_str()), (StatusCode::CONFLICT, Some("not_cancelable")));
    app.stop().await;
}

#[tokio::test]
async fn holidays_are_skipped() {
    let app = spawn_with(Options { now: local("2026-12-05 10:00:00"), holidays: "2026-12-07,2026-12-08".into(), ..Options::default() }).await;
    let (a, _, bn) = two_accounts(&app, "50.00").await;
    let (_, t) = app.transfer("alice", &body("business_hours", &a, &bn, "5.00")).await;
    assert_eq!((t["status"].as_str(), t["execute_at"].as_str()), (Some("SCHEDULED"), Some("2026-12-09T11:00:00Z")), "{t}");
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_transfer_survives_a_restart_and_settles_once_when_due() {
    let mut app = spawn_with(Options { now: local("2026-12-05 10:00:00"), ..Options::default() }).await;
    let (a, b, bn) = two_accounts(&app, "100.00").await;
    let (_, t) = app.transfer("alice", &body("business_hours", &a, &bn, "25.00")).await;
    assert_eq!(t["status"], "SCHEDULED");
    let id = t["id"].as_str().unwrap().to_string();

    app.restart().await;
    // Sunday: still not due.
    app.clock.set(local("2026-12-06 23:59:59"));
    let (_, still) = app.get("alice", &format!("/transfers/{id}")).await;
    assert_eq!(still["status"], "SCHEDULED");
    // Monday 08:00:01: the new instance's scheduler settles it.
    app.clock.set(local("2026-12-07 08:00:01"));
    let settled = common::poll(|| async {
        let (_, t) = app.get("bob", &format!("/transfers/{id}")).await;
        (t["status"] == "SETTLED").then_some(t)
    })
    .await;
    let statuses: Vec<&str> = settled["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["SCHEDULED", "PROCESSING", "SETTLED"]);
    let alice = app.account("alice", &a).await;
    assert_eq!((alice["available"].as_str(), alice["held"].as_str()), (Some("75.00"), Some("0.00")));
    assert_eq!(app.account("bob", &b).await["available"], "25.00");
    // once: one settlement posting on bob's account, even after more scheduler ticks
    app.clock.set(local("2026-12-08 09:00:00"));
    let more = common::poll(|| async {
        let s = app.statement("bob", &b).await;
        Some(s)
    })
    .await;
    assert_eq!(more.iter().filter(|e| e["reference"] == id.as_str()).count(), 1);
    let (s, c, _) = app.call("alice", Method::DELETE, &format!("/transfers/{id}"), None, None).await;
    assert_eq!((s, c["code"].as_str()), (StatusCode::CONFLICT, Some("not_cancelable")));
    app.stop().await;
}
