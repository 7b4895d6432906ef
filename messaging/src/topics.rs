//! Every topic Sagaway uses, in one place. Topics are always created explicitly (the local broker
//! does not auto-create them): each service creates the ones it produces or consumes at start-up
//! and in its `migrate` command, with [`crate::config::CommonConfig::topic_prefix`] prepended.

/// Accepted orders, keyed by user id (per-customer ordering).
pub const ORDER_QUEUE: &str = "order_queue";
/// Saga commands for the product service (lock / confirm / release a reservation), keyed by user id.
pub const PRODUCT_COMMANDS: &str = "product.commands";
/// The product service's replies to the orchestrator.
pub const PRODUCT_REPLIES: &str = "product.replies";
/// Saga commands for the payment processor (charge / refund), keyed by user id.
pub const PAYMENT_COMMANDS: &str = "payment.commands";
/// The payment processor's replies to the orchestrator.
pub const PAYMENT_REPLIES: &str = "payment.replies";
/// Non-blocking retries: messages carry a due time; the retry consumer waits for it.
pub const SAGA_RETRY: &str = "saga.retry";
/// Dead letters, with headers saying why. Never holds card data.
pub const PAYMENT_DLQ: &str = "payment_dlq";
/// Every order status change, for live views.
pub const ORDER_EVENTS: &str = "order.events";
/// The bank's per-account operation queue (deposits, withdrawals), keyed by account id.
pub const BANK_OPERATIONS: &str = "bank.operations";
/// Every status change of a bank operation, transfer or payment hold, keyed by user id.
pub const BANK_EVENTS: &str = "bank.events";
/// Commands to the bank for paying orders from an account (hold / capture / void / refund).
pub const BANK_COMMANDS: &str = "bank.commands";
/// The bank's replies to `bank.commands`.
pub const BANK_REPLIES: &str = "bank.replies";
/// The bank's dead letters (messages its consumers can never apply).
pub const BANK_DLQ: &str = "bank.dlq";
/// Debezium's change stream of `product.products` (topic prefix `shop`).
pub const CDC_PRODUCTS: &str = "shop.product.products";

/// Partitions of the service topics on a real Kafka cluster (compose sets `KAFKA_TOPIC_PARTITIONS=4`).
/// Keys (user ids) spread over them; one key always maps to one partition.
pub const CLUSTER_SERVICE_PARTITIONS: i32 = 4;

/// Every topic, and whether it is partitioned by key (`true`) or must keep one partition (`false`).
/// The CDC topic has one partition: Debezium's order for a table is then the topic's order; the
/// dead-letter topic is small and read in order by tooling.
pub fn all() -> Vec<(&'static str, bool)> {
    vec![
        (ORDER_QUEUE, true),
        (PRODUCT_COMMANDS, true),
        (PRODUCT_REPLIES, true),
        (PAYMENT_COMMANDS, true),
        (PAYMENT_REPLIES, true),
        (SAGA_RETRY, true),
        (PAYMENT_DLQ, false),
        (ORDER_EVENTS, true),
        (CDC_PRODUCTS, false),
        (BANK_OPERATIONS, true),
        (BANK_EVENTS, true),
        (BANK_COMMANDS, true),
        (BANK_REPLIES, true),
        (BANK_DLQ, false),
    ]
}

/// How long `payment.commands` keeps a record: 6 hours (Kafka's default is 7 days). An order's
/// first charge command carries the card's CVC (sealed: AES-256-GCM under the card keys, bound to
/// the order id); PCI DSS 3.2 allows no CVC once authorization has been attempted, and the payment
/// processor consumes a command within seconds. Six hours outlast any outage the processor is
/// expected to recover from; a command still unread then is deleted unread (docs/saga.md).
pub const PAYMENT_COMMANDS_RETENTION_MS: &str = "21600000";
/// The segment roll of `payment.commands`: 1 hour. Kafka deletes whole segments only, and the
/// active one never: without a short roll (the default is 7 days) a record would outlive
/// [`PAYMENT_COMMANDS_RETENTION_MS`] by up to a week. A record is gone at most 7 hours after it
/// was written.
pub const PAYMENT_COMMANDS_SEGMENT_MS: &str = "3600000";

/// The topic settings Sagaway gives topic `name` (a logical name) when it creates it, beyond
/// partitions and replicas. `cleanup.policy=delete` is Kafka's default but spelled out: the local
/// broker (tansu) applies `retention.ms` only to a topic that names it.
pub fn settings(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        PAYMENT_COMMANDS => &[
            ("cleanup.policy", "delete"),
            ("retention.ms", PAYMENT_COMMANDS_RETENTION_MS),
            ("segment.ms", PAYMENT_COMMANDS_SEGMENT_MS),
        ],
        _ => &[],
    }
}

/// The partition count of topic `name` when keyed topics get `keyed_partitions` (1 for unknown topics).
pub fn partitions(name: &str, keyed_partitions: i32) -> i32 {
    match all().into_iter().find(|(n, _)| *n == name) {
        Some((_, true)) => keyed_partitions.max(1),
        _ => 1,
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    #[test]
    fn payment_commands_keep_records_for_hours_and_roll_segments_within_them() {
        let get = |k: &str| settings(PAYMENT_COMMANDS).iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let retention: u64 = get("retention.ms").unwrap().parse().unwrap();
        let segment: u64 = get("segment.ms").unwrap().parse().unwrap();
        assert_eq!(get("cleanup.policy"), Some("delete"));
        assert!(retention <= 24 * 3600 * 1000 && retention >= 3600 * 1000, "hours, not days: {retention}");
        assert!(segment <= retention, "a segment rolls within the retention: {segment}");
        // Every other topic keeps the broker's defaults.
        for (t, _) in all() {
            if t != PAYMENT_COMMANDS {
                assert!(settings(t).is_empty(), "{t}");
            }
        }
    }
}
