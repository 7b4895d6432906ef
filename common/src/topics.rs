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
/// Debezium's change stream of `product.products` (topic prefix `shop`).
pub const CDC_PRODUCTS: &str = "shop.product.products";

/// Partitions of the service topics. Keys (user ids) spread over them; one key always maps to one partition.
pub const SERVICE_PARTITIONS: i32 = 4;

/// Every topic with its partition count. The CDC topic has one partition: Debezium's order for a
/// table is then the topic's order.
pub fn all() -> Vec<(&'static str, i32)> {
    vec![
        (ORDER_QUEUE, SERVICE_PARTITIONS),
        (PRODUCT_COMMANDS, SERVICE_PARTITIONS),
        (PRODUCT_REPLIES, SERVICE_PARTITIONS),
        (PAYMENT_COMMANDS, SERVICE_PARTITIONS),
        (PAYMENT_REPLIES, SERVICE_PARTITIONS),
        (SAGA_RETRY, SERVICE_PARTITIONS),
        (PAYMENT_DLQ, 1),
        (ORDER_EVENTS, SERVICE_PARTITIONS),
        (CDC_PRODUCTS, 1),
    ]
}

/// Looks up a topic's partition count in [`all`] (1 for unknown topics).
pub fn partitions(name: &str) -> i32 {
    all().into_iter().find(|(n, _)| *n == name).map(|(_, p)| p).unwrap_or(1)
}
