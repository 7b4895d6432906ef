//! Settings of the orchestrator. Every variable and default is listed in docs/configuration.md.

use std::time::Duration;

use crate::saga::risk::RiskPolicy;
use sagaway_common::{
    card::CardKey,
    config::{CommonConfig, env_or, env_string},
};

#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// Base URL of the product service, for reading reservations (`PRODUCT_URL`, default `http://127.0.0.1:3333`).
    pub product_url: String,
    /// The duplicate rule's window (`ORCHESTRATOR_DUPLICATE_WINDOW_SECS`, default 120).
    pub duplicate_window: Duration,
    /// How long Idempotency-Key records are kept (`ORCHESTRATOR_IDEMPOTENCY_TTL_HOURS`, default 24).
    pub idempotency_ttl: Duration,
    /// An in-flight Idempotency-Key older than this is considered abandoned (`ORCHESTRATOR_IDEMPOTENCY_LOCK_SECS`,
    /// default 15; a request normally answers in well under a second).
    pub idempotency_lock: Duration,
    /// Seals card data, keys fingerprints and `Idempotency-Key` body hashes (`CARD_KEYS=<id>:<64 hex>,...`,
    /// the first active, or the file `CARD_KEYS_FILE`, or one `CARD_KEY`; see `sagaway_common::card`).
    /// The built-in development key is refused unless `SAGAWAY_ENV=dev`.
    pub card_key: CardKey,
    /// Currency of every order (`ORCHESTRATOR_CURRENCY`, default USD).
    pub currency: String,
    /// The codes of the banks an order may be paid from (`ORCHESTRATOR_BANKS`, comma-separated
    /// 3-digit codes, default `001`; empty: no account payments). Another code is 422 `unknown_bank`.
    pub banks: Vec<String>,
    /// The optional risk-check step (`ORCHESTRATOR_RISK_CHECK`, default false) and its rules
    /// (`ORCHESTRATOR_RISK_MAX_AMOUNT`, default 1000.00; `ORCHESTRATOR_RISK_MAX_ORDERS_PER_MINUTE`, default 10).
    pub risk_check: bool,
    pub risk: RiskPolicy,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env("ORCHESTRATOR", 3334, "orchestrator")?,
            product_url: env_string("PRODUCT_URL", "http://127.0.0.1:3333"),
            duplicate_window: Duration::from_secs(env_or("ORCHESTRATOR_DUPLICATE_WINDOW_SECS", 120)?),
            idempotency_ttl: Duration::from_secs(3600 * env_or::<u64>("ORCHESTRATOR_IDEMPOTENCY_TTL_HOURS", 24)?),
            idempotency_lock: Duration::from_secs(env_or("ORCHESTRATOR_IDEMPOTENCY_LOCK_SECS", 15)?),
            card_key: CardKey::from_env()?,
            currency: env_string("ORCHESTRATOR_CURRENCY", "USD"),
            banks: parse_banks(&env_string("ORCHESTRATOR_BANKS", "001"))?,
            risk_check: env_or("ORCHESTRATOR_RISK_CHECK", false)?,
            risk: RiskPolicy {
                max_amount: env_or("ORCHESTRATOR_RISK_MAX_AMOUNT", RiskPolicy::default().max_amount)?,
                max_orders_per_minute: env_or("ORCHESTRATOR_RISK_MAX_ORDERS_PER_MINUTE", RiskPolicy::default().max_orders_per_minute)?,
            },
        })
    }
}

/// `ORCHESTRATOR_BANKS`: comma-separated 3-digit bank codes (blanks ignored).
pub fn parse_banks(list: &str) -> anyhow::Result<Vec<String>> {
    let mut banks = Vec::new();
    for code in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        anyhow::ensure!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()), "ORCHESTRATOR_BANKS: {code:?} is not a 3-digit bank code");
        if !banks.iter().any(|b| b == code) {
            banks.push(code.to_string());
        }
    }
    Ok(banks)
}

#[cfg(test)]
mod tests {
    use super::parse_banks;

    #[test]
    fn bank_codes_are_three_digits() {
        assert_eq!(parse_banks("001").unwrap(), ["001"]);
        assert_eq!(parse_banks(" 001, 237 ,001,").unwrap(), ["001", "237"]);
        assert!(parse_banks("").unwrap().is_empty());
        assert!(parse_banks("1").is_err());
        assert!(parse_banks("abc").is_err());
    }
}
