//! Paying an order from a bank account (issue 12), end to end: product, orchestrator, payment
//! processor and a bank in-process (`SystemOptions { bank: true }`), real MariaDB and broker, fresh
//! databases and topics. The payment processor asks the bank over Kafka (hold → capture, or the
//! bank's decline; refund on compensation); the account is debited once and the bank's merchant
//! account credited, or nothing moves.

use std::time::Duration;

use e2e::{
    TopicWatcher,
    system::{System, SystemOptions, account_payment_body, statuses},
};
use rdkafka::producer::FutureRecord;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(45);

fn with_bank() -> SystemOptions {
    SystemOptions { bank: true, ..SystemOptions::default() }
}

/// (available, held) of a bank account.
async fn balances(sys: &System, account: &str) -> anyhow::Result<(String, String)> {
    let a = sys.bank_account(account).await?;
    Ok((a["available"].as_str().unwrap_or_default().to_string(), a["held"].as_str().unwrap_or_default().to_string()))
}

fn pair(available: &str, held: &str) -> (String, String) {
    (available.to_string(), held.to_string())
}

/// The statement entries of `account` for order `order_id`, as `(kind, bucket, amount)`, oldest first.
async fn entries_for(sys: &System, account: &str, order_id: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut out: Vec<(String, String, String)> = sys
        .bank_statement(account)
        .await?
        .iter()
        .filter(|e| e["reference"] == order_id)
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e["bucket"].as_str().unwrap().to_string(), e["amount"].as_str().unwrap().to_string()))
        .collect();
    out.reverse();
    Ok(out)
}

fn entry(kind: &str, bucket: &str, amount: &str) -> (String, String, String) {
    (kind.to_string(), bucket.to_string(), amount.to_string())
}

/// A funded account pays: COMPLETED, the account debited exactly once (a repeated charge command
/// is answered again without a second debit), the bank's merchant account credited, the payment
/// ledger balanced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_funded_account_pays_an_order_once_and_credits_the_merchant() -> anyhow::Result<()> {
    let sys = System::spawn(with_bank()).await?;
    let product = sys.create_product("19.99", 10).await?;
    let account = sys.open_account("ana", "USD").await?;
    sys.deposit("ana", &account, "100.00").await?;

    let r = sys.reserve(product, "ana", 2).await?;
    let rid = r["id"].as_str().unwrap().to_string();
    let order_id = sys.pay_from_account(&rid, "ana", &account).await?;
    let order = sys.wait_order(&order_id, WITHIN, |o| matches!(o["status"].as_str(), Some("COMPLETED" | "COMPENSATED" | "FAILED"))).await?;
    assert_eq!(order["status"], "COMPLETED", "{order}");
    assert_eq!(statuses(&order), ["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "PAID", "COMPLETED"]);
    assert_eq!(order["payment"], json!({"type": "account", "bank": "001", "account_id": account}), "{order}");
    assert_eq!(order["amount"], "39.98");

    assert_eq!(balances(&sys, &account).await?, pair("60.02", "0.00"), "debited by the order's amount");
    assert_eq!(sys.bank_account("merchant-USD").await?["available"], "39.98", "the merchant is credited");
    assert_eq!(
        entries_for(&sys, &account, &order_id).await?,
        [entry("payment_hold", "available", "-39.98"), entry("payment_hold", "held", "39.98"), entry("payment_capture", "held", "-39.98")],
        "held once, captured once"
    );
    let reservation = sys.get_json(format!("{}/reservations/{rid}", sys.product_url)).await?;
    assert_eq!(reservation["status"], "CONFIRMED");
    let charge = sys.get_json(format!("{}/charges/{order_id}", sys.payment_url)).await?;
    assert_eq!((charge["method"].as_str(), charge["status"].as_str()), (Some("account"), Some("succeeded")), "{charge}");
    assert_eq!(charge["account"], json!({"bank": "001", "account_id": account}));
    assert!(charge.get("last4").is_none(), "no card fields on an account charge: {charge}");
    let ledger = sys.get_json(format!("{}/ledger/summary", sys.payment_url)).await?;
    assert_eq!((ledger["captured_total"].as_str(), ledger["balanced"].as_bool()), (Some("39.98"), Some(true)), "{ledger}");

    // The same charge command again (a new message: not an inbox duplicate): answered `charged`
    // again, no second hold or debit.
    let brokers = e2e::StackAddr::from_env().brokers();
    let replies = TopicWatcher::from_end(&brokers, &format!("{}payment.replies", sys.prefix))?;
    let again = json!({"type": "charge", "order_id": order_id, "user_id": "ana", "amount": "39.98", "currency": "USD",
                       "account": {"bank": "001", "account_id": account}});
    let producer = sagaway_messaging::kafka::producer(&brokers)?;
    producer
        .send(FutureRecord::to(&format!("{}payment.commands", sys.prefix)).key("ana").payload(&again.to_string()), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))?;
    let oid = order_id.clone();
    let reanswer = tokio::task::spawn_blocking(move || {
        replies.wait_for(WITHIN, |r| r.value.as_ref().is_some_and(|v| v["order_id"] == oid.as_str() && v["type"] == "charged"))
    })
    .await??;
    assert_eq!(reanswer.value.unwrap()["amount"], "39.98");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(balances(&sys, &account).await?, pair("60.02", "0.00"), "a repeated charge debits nothing more");
    assert_eq!(entries_for(&sys, &account, &order_id).await?.len(), 3);
    assert_eq!(sys.bank_account("merchant-USD").await?["available"], "39.98");
    assert_eq!(sys.order(&order_id).await?["status"], "COMPLETED");
    sys.stop().await;
    Ok(())
}

/// Not enough money: DECLINED `insufficient_funds`, then COMPENSATED — the stock is back and
/// nothing is debited or held. Someone else's account: DECLINED `not_holder`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_without_funds_declines_and_compensates_moving_no_money() -> anyhow::Result<()> {
    let sys = System::spawn(with_bank()).await?;
    let product = sys.create_product("19.99", 10).await?;
    let account = sys.open_account("bea", "USD").await?;
    sys.deposit("bea", &account, "10.00").await?;

    let r = sys.reserve(product, "bea", 2).await?;
    let rid = r["id"].as_str().unwrap().to_string();
    let order_id = sys.pay_from_account(&rid, "bea", &account).await?;
    let order = sys.wait_order(&order_id, WITHIN, |o| matches!(o["status"].as_str(), Some("COMPLETED" | "COMPENSATED" | "FAILED"))).await?;
    assert_eq!(order["status"], "COMPENSATED", "{order}");
    assert_eq!(order["reason"], "insufficient_funds", "{order}");
    assert_eq!(statuses(&order), ["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "DECLINED", "COMPENSATED"]);
    assert_eq!(order["history"][3]["reason"], "insufficient_funds");
    let reservation = sys.get_json(format!("{}/reservations/{rid}", sys.product_url)).await?;
    assert_eq!(reservation["status"], "RELEASED", "the reservation is released");
    assert_eq!(sys.stock(product).await?, 10, "the stock is back");
    assert_eq!(balances(&sys, &account).await?, pair("10.00", "0.00"), "nothing debited, nothing held");
    assert!(entries_for(&sys, &account, &order_id).await?.is_empty(), "no posting for the order");
    assert_eq!(sys.bank_account("merchant-USD").await?["available"], "0.00");
    let charge = sys.get_json(format!("{}/charges/{order_id}", sys.payment_url)).await?;
    assert_eq!((charge["status"].as_str(), charge["decline_code"].as_str()), (Some("declined"), Some("insufficient_funds")), "{charge}");
    let ledger = sys.get_json(format!("{}/ledger/summary", sys.payment_url)).await?;
    assert_eq!(ledger["captured_total"], "0.00", "{ledger}");

    // Another user's account: the bank declines the hold (the orchestrator cannot know).
    let r = sys.reserve(product, "carl", 1).await?;
    let order_id = sys.pay_from_account(r["id"].as_str().unwrap(), "carl", &account).await?;
    let order = sys.wait_order(&order_id, WITHIN, |o| o["status"] == "COMPENSATED").await?;
    assert_eq!(order["reason"], "not_holder", "{order}");
    assert_eq!(balances(&sys, &account).await?, pair("10.00", "0.00"));
    sys.stop().await;
    Ok(())
}

/// Captured, then compensated: the bank is held up until the order is PAYMENT_PENDING, the
/// reservation is released behind the saga's back (as an operator would), so after the capture
/// (PAID) the confirmation fails: the saga refunds, the bank gives the money back — once — and the
/// order ends COMPENSATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_captured_account_payment_is_refunded_once_when_the_order_is_compensated() -> anyhow::Result<()> {
    let mut sys = System::spawn(with_bank()).await?;
    let product = sys.create_product("19.99", 10).await?;
    let account = sys.open_account("dan", "USD").await?;
    sys.deposit("dan", &account, "100.00").await?;

    sys.stop_bank().await?;
    let r = sys.reserve(product, "dan", 2).await?;
    let rid = r["id"].as_str().unwrap().to_string();
    let order_id = sys.pay_from_account(&rid, "dan", &account).await?;
    sys.wait_order(&order_id, WITHIN, |o| o["status"] == "PAYMENT_PENDING").await?;
    let released = sqlx::query("UPDATE reservations SET status = 'RELEASED' WHERE id = ? AND status = 'HELD'")
        .bind(&rid)
        .execute(&sys.product_db)
        .await?;
    assert_eq!(released.rows_affected(), 1);
    sys.start_bank().await?;

    let order = sys.wait_order(&order_id, WITHIN, |o| matches!(o["status"].as_str(), Some("COMPLETED" | "COMPENSATED" | "FAILED"))).await?;
    assert_eq!(order["status"], "COMPENSATED", "{order}");
    assert_eq!(statuses(&order), ["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "PAID", "COMPENSATED"]);
    assert_eq!(order["reason"], "reservation_released", "{order}");

    assert_eq!(balances(&sys, &account).await?, pair("100.00", "0.00"), "the money is back");
    assert_eq!(sys.bank_account("merchant-USD").await?["available"], "0.00", "the merchant gave it back");
    let expected = [
        entry("payment_hold", "available", "-39.98"),
        entry("payment_hold", "held", "39.98"),
        entry("payment_capture", "held", "-39.98"),
        entry("payment_refund", "available", "39.98"),
    ];
    assert_eq!(entries_for(&sys, &account, &order_id).await?, expected, "captured once, refunded once");
    let charge = sys.get_json(format!("{}/charges/{order_id}", sys.payment_url)).await?;
    assert_eq!((charge["status"].as_str(), charge["refunded_amount"].as_str()), (Some("refunded"), Some("39.98")), "{charge}");
    let ledger = sys.get_json(format!("{}/ledger/summary", sys.payment_url)).await?;
    assert_eq!((ledger["captured_total"].as_str(), ledger["refunded_total"].as_str()), (Some("39.98"), Some("39.98")), "{ledger}");
    assert_eq!(ledger["balanced"], true);

    // Nothing moves afterwards.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(entries_for(&sys, &account, &order_id).await?, expected);
    assert_eq!(sys.order(&order_id).await?["status"], "COMPENSATED");
    sys.stop().await;
    Ok(())
}

/// The hold lapses while the bank is away (PAYMENT_PENDING): the order is COMPENSATED at once; the
/// capture that lands when the bank is back is a late capture, refunded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capture_landing_after_the_order_was_compensated_is_refunded_once() -> anyhow::Result<()> {
    let mut sys = System::spawn(SystemOptions { reservation_ttl: Duration::from_secs(3), ..with_bank() }).await?;
    let product = sys.create_product("7.00", 5).await?;
    let account = sys.open_account("eve", "USD").await?;
    sys.deposit("eve", &account, "50.00").await?;

    sys.stop_bank().await?;
    let r = sys.reserve(product, "eve", 2).await?;
    let order_id = sys.pay_from_account(r["id"].as_str().unwrap(), "eve", &account).await?;
    // The charge is out (the hold waits for the bank) before the reservation lapses.
    sys.wait_order(&order_id, WITHIN, |o| statuses(o).iter().any(|s| s == "PAYMENT_PENDING")).await?;
    let order = sys.wait_order(&order_id, WITHIN, |o| o["status"] == "COMPENSATED").await?;
    assert_eq!(order["reason"], "reservation_expired", "{order}");
    sys.start_bank().await?;

    let deadline = std::time::Instant::now() + WITHIN;
    let ledger = loop {
        let ledger = sys.get_json(format!("{}/ledger/summary", sys.payment_url)).await?;
        if ledger["refunded_total"] == "14.00" || std::time::Instant::now() > deadline {
            break ledger;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((ledger["captured_total"].as_str(), ledger["refunded_total"].as_str()), (Some("14.00"), Some("14.00")), "{ledger}");
    assert_eq!(balances(&sys, &account).await?, pair("50.00", "0.00"), "the late capture is given back");
    assert_eq!(sys.bank_account("merchant-USD").await?["available"], "0.00");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kinds: Vec<String> = entries_for(&sys, &account, &order_id).await?.into_iter().map(|e| e.0).collect();
    assert_eq!(kinds, ["payment_hold", "payment_hold", "payment_capture", "payment_refund"], "captured once, refunded once");
    let order = sys.order(&order_id).await?;
    assert_eq!(statuses(&order).iter().filter(|s| *s == "COMPENSATED").count(), 1, "{order}");
    assert_eq!(sys.stock(product).await?, 5);
    sys.stop().await;
    Ok(())
}

/// `POST /payment` checks an account payment method before anything is recorded: a bank this
/// orchestrator does not know is 422 `unknown_bank`; malformed fields are 422 naming the field.
/// (No bank runs: nothing reaches it.)
#[tokio::test(flavor = "multi_thread")]
async fn account_payment_methods_are_validated_at_intake() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let product = sys.create_product("5.00", 10).await?;
    let r = sys.reserve(product, "fay", 1).await?;
    let rid = r["id"].as_str().unwrap().to_string();
    let account = uuid::Uuid::now_v7().to_string();
    let card = json!({"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"});
    let method = |m: Value| json!({"reservation_id": rid, "user_id": "fay", "payment_method": m});
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("unknown bank", account_payment_body(&rid, "fay", "999", &account), "unknown_bank", "payment_method.bank"),
        ("bank not 3 digits", account_payment_body(&rid, "fay", "1", &account), "validation_failed", "payment_method.bank"),
        ("account id not a UUID", account_payment_body(&rid, "fay", "001", "12345678-9"), "validation_failed", "payment_method.account_id"),
        ("no account id", method(json!({"type": "account", "bank": "001"})), "validation_failed", "payment_method.account_id"),
        ("no bank", method(json!({"type": "account", "account_id": account})), "validation_failed", "payment_method.bank"),
        ("account with a card", method(json!({"type": "account", "bank": "001", "account_id": account, "card": card})), "validation_failed", "payment_method.card"),
        ("card with a bank", method(json!({"type": "card", "card": card, "bank": "001"})), "validation_failed", "payment_method.bank"),
        ("card without a card", method(json!({"type": "card"})), "validation_failed", "payment_method.card"),
    ];
    for (name, body, code, field) in cases {
        let (s, _, b) = sys.post_payment(&body, None).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {b}");
        assert_eq!((b["code"].as_str(), b["field"].as_str()), (Some(code), Some(field)), "{name}: {b}");
    }
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&sys.orchestrator_db).await?;
    assert_eq!(orders, 0, "nothing was recorded");
    sys.stop().await;
    Ok(())
}
