//! Settings of the bank. Every variable and default is listed in bank/README.md.

use std::{sync::Arc, time::Duration};

use chrono_tz::Tz;
use rust_decimal::Decimal;
use sagaway_common::config::{CommonConfig, env_or, env_string};

use crate::{
    clock::{SharedClock, SystemClock},
    rules::calendar::{BusinessHours, NightLimit, parse_holidays, parse_time},
};

#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// This bank's 3-digit code (`BANK_CODE`, default `001`); `to.bank` of a transfer within the bank.
    pub code: String,
    /// The business-hours window (`BANK_TIME_ZONE` default America/Sao_Paulo, `BANK_OPEN` 08:00,
    /// `BANK_CLOSE` 15:00, `BANK_HOLIDAYS` comma-separated YYYY-MM-DD).
    pub hours: BusinessHours,
    /// The night limit of individual accounts (`BANK_NIGHT_LIMIT` 1000.00, `BANK_NIGHT_START` 20:00,
    /// `BANK_NIGHT_END` 06:00, in the same zone).
    pub night: NightLimit,
    /// The largest amount of one operation or transfer (`BANK_MAX_AMOUNT`, default 1000000000.00).
    pub max_amount: Decimal,
    /// How often the scheduler looks for due transfers (`BANK_SCHEDULER_INTERVAL_MS`, default 500).
    pub scheduler_interval: Duration,
    /// Idempotency-Key records are kept this long (`BANK_IDEMPOTENCY_TTL_HOURS`, default 24; at least 24).
    pub idempotency_ttl: Duration,
    /// An in-flight key older than this is abandoned (`BANK_IDEMPOTENCY_LOCK_SECS`, default 15).
    pub idempotency_lock: Duration,
    /// What "now" is (the system clock; tests inject a [`crate::clock::TestClock`]).
    pub clock: SharedClock,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("BANK", 3340, "bank")?;
        let code = env_string("BANK_CODE", "001");
        anyhow::ensure!(valid_code(&code), "BANK_CODE={code:?} is invalid; expected 3 digits");
        let tz: Tz = env_string("BANK_TIME_ZONE", "America/Sao_Paulo")
            .parse()
            .map_err(|e| anyhow::anyhow!("BANK_TIME_ZONE is not an IANA time zone: {e}"))?;
        let time = |key: &str, default: &str| parse_time(&env_string(key, default)).map_err(|e| anyhow::anyhow!("{key}: {e}"));
        let hours = BusinessHours {
            tz,
            open: time("BANK_OPEN", "08:00")?,
            close: time("BANK_CLOSE", "15:00")?,
            holidays: parse_holidays(&env_string("BANK_HOLIDAYS", "")).map_err(|e| anyhow::anyhow!("BANK_HOLIDAYS: {e}"))?,
        };
        anyhow::ensure!(hours.open < hours.close, "BANK_OPEN must be before BANK_CLOSE");
        let night = NightLimit {
            tz,
            start: time("BANK_NIGHT_START", "20:00")?,
            end: time("BANK_NIGHT_END", "06:00")?,
            limit: env_or("BANK_NIGHT_LIMIT", Decimal::new(100_000, 2))?,
        };
        anyhow::ensure!(night.limit > Decimal::ZERO, "BANK_NIGHT_LIMIT must be positive");
        Ok(Self {
            common,
            code,
            hours,
            night,
            max_amount: env_or("BANK_MAX_AMOUNT", Decimal::new(100_000_000_000, 2))?,
            scheduler_interval: Duration::from_millis(env_or("BANK_SCHEDULER_INTERVAL_MS", 500)?),
            idempotency_ttl: Duration::from_secs(3600 * env_or::<u64>("BANK_IDEMPOTENCY_TTL_HOURS", 24)?.max(24)),
            idempotency_lock: Duration::from_secs(env_or("BANK_IDEMPOTENCY_LOCK_SECS", 15)?),
            clock: Arc::new(SystemClock),
        })
    }
}

/// A bank code: exactly 3 ASCII digits.
pub fn valid_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())
}
