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

/// The partition count of topic `name` when keyed topics get `keyed_partitions` (1 for unknown topics).
pub fn partitions(name: &str, keyed_partitions: i32) -> i32 {
    match all().into_iter().find(|(n, _)| *n == name) {
        Some((_, true)) => keyed_partitions.max(1),
        _ => 1,
    }
}
