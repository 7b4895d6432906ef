//! Charges, declines, idempotency, refunds, poison messages and the HTTP API, against the real
//! MariaDB and broker.

use crate::common;

use common::{charge, new_id, new_order_id, refund, spawn_app};
use serde_json::{Value, json};

const APPROVED: &str = "4242424242424242";

fn ledger_ok(summary: &Value) {
    assert_eq!(summary["balanced"], true, "{summary}");
    assert_eq!(summary["total_debits"], summary["total_credits"], "{summary}");
    assert_eq!(summary["unbalanced_entries"], 0, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approved_card_is_charged_once_and_the_ledger_balances() {
    let app = spawn_app().await;
    let replies = app.replies();
    let (order, user) = (new_order_id(), new_id("user"));
    app.send(&user, &charge(&order, &user, "19.99", APPROVED, "123")).await;

    let reply = replies.reply_for(&order).await;
    assert_eq!(reply["type"], "charged", "{reply}");
    assert_eq!(reply["amount"], "19.99");
    let charge_id = reply["charge_id"].as_str().unwrap().to_string();
    let reply_record = &replies.for_order(&order)[0];
    assert_eq!(reply_record.key.as_deref(), Some(user.as_str()), "replies are keyed by user id");
    assert_eq!(reply_record.header("message_type"), Some("charged"));

    let view = app.get_json(&format!("/charges/{order}")).await;
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["charge_id"], charge_id.as_str());
    assert_eq!((view["brand"].as_str(), view["last4"].as_str()), (Some("visa"), Some("4242")));
    assert_eq!(view["attempts"].as_array().unwrap().len(), 1);

    let summary = app.get_json("/ledger/summary").await;
    ledger_ok(&summary);
    assert_eq!(summary["captured_total"], "19.99");
    assert_eq!(summary["refunded_total"], "0.00");
    assert_eq!(summary["journal_entries"], 1);
    let customer = app.get_json(&format!("/accounts/customer:{user}")).await;
    assert_eq!(customer["balances"][0]["balance"], "-19.99");
    assert!(!app.database_contains(APPROVED).await, "the PAN is stored in a table");
    let merchant = app.get_json("/accounts/merchant").await;
    assert_eq!(merchant["balances"][0]["balance"], "19.99");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn decline_cards_and_invalid_cards_are_declined_without_moving_money() {
    let app = spawn_app().await;
    let replies = app.replies();
    let cases = [
        ("4000000000000002", "123", "card_declined"),
        ("4000000000009995", "123", "insufficient_funds"),
        ("4000000000000069", "123", "expired_card"),
        ("4242424242424241", "123", "incorrect_number"), // fails Luhn
        (APPROVED, "12", "invalid_cvc"),
    ];
    let mut orders = Vec::new();
    for (number, cvc, _) in cases {
        let (order, user) = (new_order_id(), new_id("user"));
        app.send(&user, &charge(&order, &user, "10.00", number, cvc)).await;
        orders.push(order);
    }
    for (order, (_, _, expected)) in orders.iter().zip(cases) {
        let reply = replies.reply_for(order).await;
        assert_eq!(reply["type"], "declined", "{reply}");
        assert_eq!(reply["reason"], expected, "{reply}");
        let view = app.get_json(&format!("/charges/{order}")).await;
        assert_eq!(view["status"], "declined");
        assert_eq!(view["decline_code"], expected);
    }
    let summary = app.get_json("/ledger/summary").await;
    ledger_ok(&summary);
    assert_eq!(summary["journal_entries"], 0, "{summary}");
    assert_eq!(summary["captured_total"], "0.00");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_or_repeated_charge_charges_once_and_is_answered_each_time() {
    let app = spawn_app().await;
    let replies = app.replies();
    let (order, user) = (new_order_id(), new_id("user"));
    let command = charge(&order, &user, "42.50", APPROVED, "123");
    let message_id = app.send(&user, &command).await;
    app.send_with_id(&user, &command, &message_id).await; // redelivery: same message id
    app.send(&user, &command).await; // a new command for the same order

    let answers = replies.replies_for(&order, 2).await;
    for a in &answers {
        assert_eq!(a["type"], "charged", "{a}");
        assert_eq!(a["amount"], "42.50");
    }
    assert_eq!(answers[0]["charge_id"], answers[1]["charge_id"], "the same charge is re-answered");

    // A marker order on the same key (same partition) proves the redelivery has been consumed too.
    let marker = new_order_id();
    app.send(&user, &charge(&marker, &user, "1.00", APPROVED, "123")).await;
    replies.reply_for(&marker).await;
    assert_eq!(replies.for_order(&order).len(), 2, "the redelivered message id is not answered again");

    let summary = app.get_json("/ledger/summary").await;
    ledger_ok(&summary);
    assert_eq!(summary["captured_total"], "43.50", "{summary}");
    assert_eq!(summary["journal_entries"], 2);
    assert_eq!(app.get_json(&format!("/charges/{order}")).await["attempts"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_reverses_the_capture_once() {
    let app = spawn_app().await;
    let replies = app.replies();
    let (order, user) = (new_order_id(), new_id("user"));
    app.send(&user, &charge(&order, &user, "30.00", APPROVED, "123")).await;
    assert_eq!(replies.reply_for(&order).await["type"], "charged");

    app.send(&user, &refund(&order, &user)).await;
    app.send(&user, &refund(&order, &user)).await;
    let answers = replies.replies_for(&order, 3).await;
    assert_eq!(answers[1], json!({"type": "refunded", "order_id": order, "amount": "30.00"}));
    assert_eq!(answers[2], json!({"type": "refunded", "order_id": order, "amount": "0.00"}), "the second refund moves nothing");

    let summary = app.get_json("/ledger/summary").await;
    ledger_ok(&summary);
    assert_eq!(summary["captured_total"], "30.00");
    assert_eq!(summary["refunded_total"], "30.00");
    assert_eq!(summary["journal_entries"], 2, "one capture, one reversing entry");
    let customer = app.get_json(&format!("/accounts/customer:{user}")).await;
    assert_eq!(customer["balances"][0]["balance"], "0.00");
    assert_eq!(customer["postings"].as_array().unwrap().len(), 2);
    let view = app.get_json(&format!("/charges/{order}")).await;
    assert_eq!(view["status"], "refunded");
    assert_eq!(view["refunded_amount"], "30.00");

    // Refunding an order that was never charged answers 0.00, and blocks a late charge.
    let never = new_order_id();
    app.send(&user, &refund(&never, &user)).await;
    assert_eq!(replies.reply_for(&never).await["amount"], "0.00");
    app.send(&user, &charge(&never, &user, "5.00", APPROVED, "123")).await;
    let late = replies.replies_for(&never, 2).await;
    assert_eq!(late[1]["type"], "declined", "{}", late[1]);
    assert_eq!(app.get_json("/ledger/summary").await["journal_entries"], 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_message_is_dead_lettered_and_the_next_command_still_processed() {
    let app = spawn_app().await;
    let replies = app.replies();
    let dlq = app.dead_letters();
    let user = new_id("user");
    let poison_id = uuid::Uuid::new_v4().to_string();
    app.send_raw(&user, b"this is {not json", &poison_id).await;
    let (order, _) = (new_order_id(), ());
    app.send(&user, &charge(&order, &user, "7.00", APPROVED, "123")).await;

    assert_eq!(replies.reply_for(&order).await["type"], "charged");
    let dead = dlq.wait_for_n(1, |r| r.header("dlq.original.message_id") == Some(poison_id.as_str())).await;
    assert_eq!(dead[0].header("dlq.error.class"), Some("malformed"));
    assert_eq!(dead[0].header("dlq.original.topic"), Some(app.topic("payment.commands").as_str()));
    assert_eq!(dead[0].payload, b"this is {not json");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_http_input_gets_4xx_problem_json() {
    let app = spawn_app().await;
    let problem = |res: reqwest::Response, status: u16| async move {
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        res.json::<Value>().await.unwrap()
    };
    let p = problem(app.get("/charges/no-such-order").await, 404).await;
    assert_eq!(p["code"], "charge_not_found");
    problem(app.get("/charges/bad%20id%21").await, 422).await;
    let p = problem(app.get("/accounts/customer:nobody").await, 404).await;
    assert_eq!(p["code"], "account_not_found");

    let post = |body: &'static str, content_type: &'static str| {
        app.http.post(format!("{}/admin/outage", app.base_url)).header("content-type", content_type).body(body).send()
    };
    problem(post("{not json", "application/json").await.unwrap(), 400).await;
    problem(post(r#"{"enabled": "yes"}"#, "application/json").await.unwrap(), 422).await;
    problem(post(r#"{}"#, "application/json").await.unwrap(), 422).await;
    problem(post(r#"{"enabled": true}"#, "text/plain").await.unwrap(), 415).await;
    assert_eq!(app.get_json("/admin/outage").await["enabled"], false, "no bad request flipped the switch");

    let doc = app.get_json("/openapi.json").await;
    for path in ["/charges/{order_id}", "/ledger/summary", "/accounts/{id}", "/admin/outage"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    app.stop().await;
}

/// Defect 4 (second half): a message that fails "transiently" every time while the database is up
/// (here a trigger refuses its refund row) is retried in place a bounded number of times, then
/// dead-lettered as `transient_exhausted` — and the same customer's next command goes through.
/// Before the bound, it was retried in place forever and stalled everything keyed behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_that_always_fails_is_dead_lettered_after_bounded_retries_and_the_customer_goes_on() {
    let app = spawn_app().await;
    let replies = app.replies();
    let dlq = app.dead_letters();
    let pool = sqlx::MySqlPool::connect(&app.db_url).await.unwrap();
    let (stuck, user) = (new_order_id(), new_id("user"));
    sqlx::query(&format!(
        "CREATE TRIGGER refuse_one_refund BEFORE INSERT ON refunds FOR EACH ROW \
         IF NEW.order_id = '{stuck}' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let poison_id = app.send(&user, &refund(&stuck, &user)).await;
    let next = new_order_id();
    app.send(&user, &charge(&next, &user, "5.00", APPROVED, "123")).await;

    let dead = dlq.wait_for_n(1, |r| r.header("dlq.original.message_id") == Some(poison_id.as_str())).await;
    assert_eq!(dead[0].header("dlq.error.class"), Some("transient_exhausted"));
    assert_eq!(dead[0].header("dlq.attempts"), Some("8"));
    assert!(dead[0].header("dlq.error.message").unwrap_or_default().contains("refused by the test"));
    assert_eq!(replies.reply_for(&next).await["type"], "charged", "the customer's next command was not stalled");
    app.stop().await;
}
