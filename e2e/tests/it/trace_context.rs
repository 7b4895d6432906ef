//! One order is one trace (issue 16): the W3C `traceparent` a client sends with `POST /payment`
//! is continued by every service the order passes through — the orchestrator's intake, the
//! product service, the payment processor and the bank — on every Kafka message the order causes,
//! each hop with a span id of its own.

use std::{collections::BTreeSet, time::Duration};

use e2e::{
    StackAddr, TopicWatcher,
    system::{System, SystemOptions, account_payment_body, statuses},
};
use serde_json::Value;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

/// Every record of `topic` so far (the test's own topics: nothing else writes them).
fn records(brokers: &str, topic: &str) -> anyhow::Result<Vec<e2e::Record>> {
    let watcher = TopicWatcher::from_start(brokers, topic)?;
    let mut out = Vec::new();
    while let Ok(r) = watcher.wait_for(Duration::from_millis(1500), |_| true) {
        out.push(r);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_clients_traceparent_follows_the_order_through_every_service_and_message() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { bank: true, ..SystemOptions::default() }).await?;
    let product = sys.create_product("7.00", 5).await?;
    let account = sys.open_account("tia", "USD").await?;
    sys.deposit("tia", &account, "20.00").await?;
    let r = sys.reserve(product, "tia", 1).await?;
    let body = account_payment_body(r["id"].as_str().unwrap(), "tia", "001", &account);
    let res = sys
        .http
        .post(format!("{}/payment", sys.orchestrator_url))
        .bearer_auth(sys.token("tia"))
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(res.status(), 202);
    let order_id = res.json::<Value>().await?["order_id"].as_str().unwrap().to_string();
    let order = sys.wait_order(&order_id, Duration::from_secs(45), |o| o["status"] == "COMPLETED" || o["status"] == "COMPENSATED").await?;
    assert_eq!(statuses(&order), ["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "PAID", "COMPLETED"], "{order}");

    let brokers = StackAddr::from_env().brokers();
    let prefix = sys.prefix.clone();
    let oid = order_id.clone();
    // (topic, message type, traceparent) of every message about this order.
    let seen = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, String, Option<String>)>> {
        let mut seen = Vec::new();
        for topic in ["order_queue", "product.commands", "product.replies", "payment.commands", "payment.replies", "bank.commands", "bank.replies", "order.events"] {
            for r in records(&brokers, &format!("{prefix}{topic}"))? {
                if r.value.as_ref().is_some_and(|v| v.to_string().contains(&oid)) {
                    seen.push((topic.to_string(), r.header("message_type").unwrap_or("?").to_string(), r.header("traceparent").map(String::from)));
                }
            }
        }
        Ok(seen)
    })
    .await??;

    let topics: BTreeSet<&str> = seen.iter().map(|(t, _, _)| t.as_str()).collect();
    for hop in ["order_queue", "product.commands", "product.replies", "payment.commands", "payment.replies", "bank.commands", "bank.replies", "order.events"] {
        assert!(topics.contains(hop), "the order passed through {hop}: {seen:#?}");
    }
    let mut spans = BTreeSet::new();
    for (topic, kind, tp) in &seen {
        let tp = tp.as_deref().unwrap_or_else(|| panic!("{topic} {kind} carries no traceparent: {seen:#?}"));
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(parts[1], TRACE_ID, "{topic} {kind} continues the client's trace: {seen:#?}");
        assert_ne!(parts[2], CLIENT_SPAN, "{topic} {kind}: a span of the service's own");
        spans.insert(parts[2].to_string());
    }
    // The intake, the product service, the payment processor, the bank and the orchestrator's
    // consumer each answer from spans of their own.
    assert!(spans.len() >= 5, "one span per hop, not one id copied along: {seen:#?}");
    sys.stop().await;
    Ok(())
}
