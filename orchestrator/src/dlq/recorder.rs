//! Consumes every dead-letter topic — `payment_dlq` (the payment processor, the product service
//! and the orchestrator itself), `bank.dlq` (the bank), and those named in
//! `ORCHESTRATOR_DLQ_EXTRA_TOPICS` (full names: the dead-letter topics of banks that run under
//! another topic prefix, `b002.bank.dlq,b003.bank.dlq` on the local stack) — and records every
//! record in `dead_letters`, through the inbox (so a redelivered record is stored once) with its
//! position kept in the database like every consumer. It never rejects a record as malformed:
//! that would dead-letter it onto the topic it reads.

use sagaway_common::config::CommonConfig;
use sagaway_messaging::{inbox::{HandleError, Handler, Incoming}, kafka, outbox::Outgoing, topics};
use sqlx::MySqlConnection;

use super::store;

/// The setting naming further dead-letter topics to record (comma-separated full names).
pub const EXTRA_TOPICS: &str = "ORCHESTRATOR_DLQ_EXTRA_TOPICS";

/// The dead-letter topics this deployment records: its own `payment_dlq` and `bank.dlq`, then the
/// extra ones of [`EXTRA_TOPICS`] in `extra` (deduplicated, blanks dropped).
pub fn topic_names(common: &CommonConfig, extra: &str) -> Vec<String> {
    let mut names = vec![common.topic(topics::PAYMENT_DLQ), common.topic(topics::BANK_DLQ)];
    for name in extra.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// [`topic_names`] with the extra topics from the environment, each created if missing (a bank
/// that has not started yet must not stop the recorder from starting).
pub async fn topics(common: &CommonConfig) -> anyhow::Result<Vec<String>> {
    let names = topic_names(common, &sagaway_messaging::env::env_string(EXTRA_TOPICS, ""));
    let extra: Vec<(String, i32)> = names.iter().skip(2).map(|n| (n.clone(), 1)).collect();
    if !extra.is_empty() {
        kafka::ensure_topics(&common.kafka_brokers, &extra, common.topic_replicas).await?;
    }
    Ok(names)
}

pub struct DeadLetterRecorder;

impl Handler for DeadLetterRecorder {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        store::record(conn, msg).await?;
        metrics::counter!("dlq_recorded_total").increment(1);
        tracing::info!(
            topic = %msg.topic, offset = msg.offset,
            original_topic = msg.header("dlq.original.topic").unwrap_or(""),
            error_class = msg.header("dlq.error.class").unwrap_or(""),
            "dead letter recorded"
        );
        Ok(vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_services_dead_letter_topic_is_recorded_once() {
        let common = CommonConfig::local("orchestrator", "t1.");
        assert_eq!(topic_names(&common, ""), ["t1.payment_dlq", "t1.bank.dlq"]);
        assert_eq!(topic_names(&common, " b002.bank.dlq, ,t1.bank.dlq,b003.bank.dlq,b002.bank.dlq"), ["t1.payment_dlq", "t1.bank.dlq", "b002.bank.dlq", "b003.bank.dlq"]);
    }

    /// A bank command's letter names its order by the payment id (an account payment's id at the
    /// bank is its order's id); a payment id that is no order id names none.
    #[test]
    fn a_bank_letter_names_its_order_by_its_payment_id() {
        let letter = |payload: &str| Incoming {
            topic: "bank.dlq".into(),
            partition: 0,
            offset: 3,
            key: Some("acct-1".into()),
            payload: Some(payload.into()),
            headers: vec![("dlq.original.topic".into(), "bank.commands".into())],
            message_id: "m-3".into(),
        };
        let order_id = "01a2382d-f6fa-720d-8601-8104858757ab";
        let json = |p: &str| serde_json::from_str::<serde_json::Value>(p).ok();
        let refund = format!(r#"{{"type":"refund","payment_id":"{order_id}"}}"#);
        assert_eq!(store::letter_order_id(&letter(&refund), json(&refund).as_ref()).as_deref(), Some(order_id));
        let other = r#"{"type":"void","payment_id":"not-an-order"}"#;
        assert_eq!(store::letter_order_id(&letter(other), json(other).as_ref()), None);
        let deposit = r#"{"type":"deposit","operation_id":"op-1"}"#;
        assert_eq!(store::letter_order_id(&letter(deposit), json(deposit).as_ref()), None);
    }
}
