//! Paying orders from an account over Kafka: hold / capture / void / refund on `bank.commands`,
//! answered on `bank.replies`, each idempotent per payment id.

use crate::common;

use common::spawn;
use serde_json::{Value, json};
use uuid::Uuid;

fn hold(payment: &str, account: &str, amount: &str, user: &str) -> Value {
    json!({"type": "hold", "payment_id": payment, "account_id": account, "amount": amount, "currency": "BRL", "user_id": user})
}

#[tokio::test]
async fn holds_capture_void_and_refund_once_per_payment() {
    let app = spawn().await;
    let replies = app.watch(sagaway_messaging::topics::BANK_REPLIES);
    let a = app.open("alice").await["id"].as_str().unwrap().to_string();
    app.fund("alice", &a, "100.00").await;
    let reply = |payment: String, n: usize| {
        let replies = &replies;
        async move { replies.wait_for(n, |v| v["payment_id"] == payment.as_str()).await }
    };

    // hold twice → held twice, money held once
    let p1 = Uuid::now_v7().to_string();
    app.command("alice", &hold(&p1, &a, "30.00", "alice")).await;
    app.command("alice", &hold(&p1, &a, "30.00", "alice")).await;
    let r = reply(p1.clone(), 2).await;
    assert!(r.iter().all(|r| r["type"] == "held"), "{r:?}");
    let acct = app.account("alice", &a).await;
    assert_eq!((acct["available"].as_str(), acct["held"].as_str()), (Some("70.00"), Some("30.00")));

    // capture twice → captured twice; merchant credited once
    app.command("alice", &json!({"type": "capture", "payment_id": p1})).await;
    app.command("alice", &json!({"type": "capture", "payment_id": p1})).await;
    let r = reply(p1.clone(), 4).await;
    assert_eq!(r.iter().filter(|r| r["type"] == "captured").count(), 2, "{r:?}");
    let acct = app.account("alice", &a).await;
    assert_eq!((acct["available"].as_str(), acct["held"].as_str()), (Some("70.00"), Some("0.00")));
    assert_eq!(app.account("admin", "merchant-BRL").await["available"], "30.00");
    // void after capture is refused
    app.command("alice", &json!({"type": "void", "payment_id": p1})).await;
    let r = reply(p1.clone(), 5).await;
    assert_eq!(r[4], json!({"type": "rejected", "payment_id": p1, "reason": "already_captured"}));

    // refund twice → refunded twice; money back once
    app.command("alice", &json!({"type": "refund", "payment_id": p1})).await;
    app.command("alice", &json!({"type": "refund", "payment_id": p1})).await;
    let r = reply(p1.clone(), 7).await;
    assert_eq!(r.iter().filter(|r| r["type"] == "refunded").count(), 2, "{r:?}");
    assert_eq!(app.account("alice", &a).await["available"], "100.00");
    assert_eq!(app.account("admin", "merchant-BRL").await["available"], "0.00");

    // hold + void twice → released once
    let p2 = Uuid::now_v7().to_string();
    app.command("alice", &hold(&p2, &a, "40.00", "alice")).await;
    app.command("alice", &json!({"type": "void", "payment_id": p2})).await;
    app.command("alice", &json!({"type": "void", "payment_id": p2})).await;
    let r = reply(p2.clone(), 3).await;
    assert_eq!(r.iter().map(|r| r["type"].as_str().unwrap()).collect::<Vec<_>>(), ["held", "voided", "voided"]);
    let acct = app.account("alice", &a).await;
    assert_eq!((acct["available"].as_str(), acct["held"].as_str()), (Some("100.00"), Some("0.00")));

    // declines, each answered the same when repeated
    let p3 = Uuid::now_v7().to_string();
    app.command("alice", &hold(&p3, &a, "100.01", "alice")).await;
    app.command("alice", &hold(&p3, &a, "1.00", "alice")).await;
    let r = reply(p3.clone(), 2).await;
    assert!(r.iter().all(|r| r == &json!({"type": "declined", "payment_id": p3, "reason": "insufficient_funds"})), "{r:?}");
    let p4 = Uuid::now_v7().to_string();
    app.command("mallory", &hold(&p4, &a, "1.00", "mallory")).await;
    assert_eq!(reply(p4.clone(), 1).await[0]["reason"], "not_holder");
    let p5 = Uuid::now_v7().to_string();
    app.command("alice", &hold(&p5, "no-such-account", "1.00", "alice")).await;
    assert_eq!(reply(p5.clone(), 1).await[0]["reason"], "unknown_account");
    let p6 = Uuid::now_v7().to_string();
    app.command("alice", &json!({"type": "capture", "payment_id": p6})).await;
    assert_eq!(reply(p6.clone(), 1).await[0], json!({"type": "rejected", "payment_id": p6, "reason": "unknown_payment"}));
    assert_eq!(app.account("alice", &a).await["available"], "100.00");

    // a hold the bank cannot process is dead-lettered and declined `bank_error` at once (the
    // payment does not wait for its reservation to expire); nothing is held
    let p7 = Uuid::now_v7().to_string();
    app.command("alice", &hold(&p7, &a, "1.001", "alice")).await;
    assert_eq!(reply(p7.clone(), 1).await[0], json!({"type": "declined", "payment_id": p7, "reason": "bank_error"}));
    let acct = app.account("alice", &a).await;
    assert_eq!((acct["available"].as_str(), acct["held"].as_str()), (Some("100.00"), Some("0.00")));
    app.stop().await;
}
