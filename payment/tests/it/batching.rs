//! Batched consumption: a burst of commands is applied several messages per transaction, and a
//! poison message or a redelivery inside a batch changes nothing for its neighbours. Alone in its
//! test binary, so the process-wide metrics it reads are this test's own.

use crate::common;

use common::{charge, new_id, new_order_id, spawn_app};
use futures::future::join_all;
use rust_decimal::Decimal;

const APPROVED: &str = "4242424242424242";

/// The value of an unlabelled-or-labelled Prometheus sample line starting with `name`.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_is_applied_in_batches_and_a_poison_message_or_redelivery_inside_one_harms_no_neighbour() {
    let app = spawn_app().await;
    let replies = app.replies();
    let dlq = app.dead_letters();
    let users: Vec<String> = (0..8).map(|_| new_id("user")).collect();
    let orders: Vec<(String, String)> = (0..120).map(|i| (new_order_id(), users[i % users.len()].clone())).collect();
    let commands: Vec<_> = orders.iter().map(|(o, u)| charge(o, u, "1.25", APPROVED, "123")).collect();
    let ids: Vec<String> = (0..orders.len()).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let poison_id = uuid::Uuid::new_v4().to_string();

    // One pipelined burst (sends are enqueued in this order), so the consumer finds many ready at once:
    // every command, a poison message in the middle, and a redelivery of command 10 after it.
    let mut burst: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> = Vec::new();
    for (i, ((_, user), command)) in orders.iter().zip(&commands).enumerate() {
        burst.push(Box::pin(app.send_with_id(user, command, &ids[i])));
        if i == 60 {
            burst.push(Box::pin(app.send_raw(user, b"{\"type\":\"charge\",\"order_id\":", &poison_id)));
            burst.push(Box::pin(app.send_with_id(&orders[10].1, &commands[10], &ids[10])));
        }
    }
    join_all(burst).await;

    for (order, _) in &orders {
        assert_eq!(replies.reply_for(order).await["type"], "charged", "order {order}");
    }
    let dead = dlq.wait_for_n(1, |r| r.header("dlq.original.message_id") == Some(poison_id.as_str())).await;
    assert_eq!(dead[0].header("dlq.error.class"), Some("malformed"));
    // A marker on command 10's key (same partition, after the redelivery) proves the redelivery was read.
    let marker = new_order_id();
    app.send(&orders[10].1, &charge(&marker, &orders[10].1, "1.00", APPROVED, "123")).await;
    replies.reply_for(&marker).await;
    assert_eq!(replies.for_order(&orders[10].0).len(), 1, "the redelivered command is not answered twice");

    let summary = app.get_json("/ledger/summary").await;
    assert_eq!(summary["balanced"], true, "{summary}");
    let expected = Decimal::new(125, 2) * Decimal::from(orders.len()) + Decimal::ONE;
    assert_eq!(summary["captured_total"], expected.to_string(), "every order charged exactly once: {summary}");
    assert_eq!(summary["journal_entries"], orders.len() + 1, "{summary}");

    // The burst was really applied in batches: fewer committed batches than messages in them.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let (batches, batched) = (sample(&metrics, "sagaway_consumer_batch_size_count"), sample(&metrics, "sagaway_consumer_batch_size_sum"));
    assert!(batches >= 1.0 && batched > batches, "messages were committed several per transaction: {batched} in {batches} batches\n{metrics}");
    app.stop().await;
}
