//! Settings of the payment service, read from the environment. Each field names its variable and
//! default; the defaults work against the local stack (`scripts/stack up`).

use std::{sync::Arc, time::Duration};

use sagaway_common::{
    card::CardKey,
    config::{CommonConfig, env_or, env_string},
};

use crate::retry_policy::{RandomJitter, RetryPolicy};

#[derive(Clone, Debug)]
pub struct Config {
    /// `PAYMENT_HOST` (127.0.0.1), `PAYMENT_PORT` (3335), `PAYMENT_DATABASE_URL`
    /// (`mysql://sagaway:sagaway@127.0.0.1:3307/payment`), `PAYMENT_DB_MAX_CONNECTIONS` (16),
    /// `KAFKA_BROKERS` (127.0.0.1:9092), `TOPIC_PREFIX` (empty), `KAFKA_FETCH_WAIT_MAX_MS` (20).
    pub common: CommonConfig,
    /// The card keys (`CARD_KEYS=<id>:<64 hex>,...`, or the file `CARD_KEYS_FILE`, or one
    /// `CARD_KEY`; see `sagaway_common::card`): open sealed cards, key fingerprints, reseal a card
    /// without its CVC for retries. Must include every key the orchestrator seals with. The built-in
    /// development key is refused unless `SAGAWAY_ENV=dev`.
    pub card_key: CardKey,
    /// Retries of transient acquirer errors: `PAYMENT_RETRY_BASE_MS` (200), `PAYMENT_RETRY_MAX_MS`
    /// (5000), `PAYMENT_MAX_ATTEMPTS` (5). See [`crate::retry_policy`].
    pub retry: RetryPolicy,
    /// Consumer group reading `payment.commands` (`PAYMENT_COMMANDS_GROUP`, default
    /// `<TOPIC_PREFIX>payment-commands`).
    pub commands_group: String,
    /// Consumer group of the retry forwarder on `saga.retry` (`PAYMENT_RETRY_GROUP`, default
    /// `<TOPIC_PREFIX>payment-retry`). Its own group: waiting for a due time never stalls commands.
    pub retry_group: String,
    /// Consumer group reading `bank.replies`, the bank's answers for account charges
    /// (`PAYMENT_BANK_REPLIES_GROUP`, default `<TOPIC_PREFIX>payment-bank-replies`).
    pub bank_replies_group: String,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("PAYMENT", 3335, "payment")?;
        let max_attempts: u32 = env_or("PAYMENT_MAX_ATTEMPTS", 5)?;
        anyhow::ensure!(max_attempts >= 1, "PAYMENT_MAX_ATTEMPTS must be at least 1");
        let retry = RetryPolicy {
            base: Duration::from_millis(env_or("PAYMENT_RETRY_BASE_MS", 200)?),
            cap: Duration::from_millis(env_or("PAYMENT_RETRY_MAX_MS", 5000)?),
            max_attempts,
            jitter: Arc::new(RandomJitter),
        };
        Ok(Self {
            card_key: CardKey::from_env()?,
            retry,
            commands_group: env_string("PAYMENT_COMMANDS_GROUP", &format!("{}payment-commands", common.topic_prefix)),
            retry_group: env_string("PAYMENT_RETRY_GROUP", &format!("{}payment-retry", common.topic_prefix)),
            bank_replies_group: env_string("PAYMENT_BANK_REPLIES_GROUP", &format!("{}payment-bank-replies", common.topic_prefix)),
            common,
        })
    }
}
