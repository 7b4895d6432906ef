//! Settings of the bank. Every variable and default is listed in bank/README.md.

use std::{sync::Arc, time::Duration};

use chrono_tz::Tz;
use rust_decimal::Decimal;
use sagaway_common::config::{CommonConfig, env_or, env_string};

use crate::{
    clock::{SharedClock, SystemClock},
    rules::{
        calendar::{BusinessHours, NightLimit, parse_holidays, parse_time},
        interbank_auth::{BankKeyPair, Directory, SkewWindow},
    },
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
    /// Transfers with other banks.
    pub interbank: InterbankConfig,
}

/// Settings of the inter-bank protocol (docs/banks.md).
#[derive(Clone, Debug)]
pub struct InterbankConfig {
    /// This bank's signing key: `BANK_SIGNING_KEY` (base64 of a 32-byte seed) or
    /// `BANK_SIGNING_KEY_FILE` (a file holding it). Without either, a fresh key each start: fine for
    /// one bank alone, but no peer can verify it.
    pub key: BankKeyPair,
    /// The other banks: `BANK_DIRECTORY_FILE`, one `<code> <url> <public key>` a line.
    pub directory: Directory,
    /// A transfer whose legs have not all answered READY by then aborts (`BANK_INTERBANK_PREPARE_TIMEOUT_MS`, 5000).
    pub prepare_timeout: Duration,
    /// How often unfinished transfers are driven again (`BANK_INTERBANK_RETRY_MS`, 1000).
    pub retry_interval: Duration,
    /// A leg prepared here asks its coordinator for the decision after this (`BANK_INTERBANK_INQUIRY_MS`, 3000).
    pub inquiry_after: Duration,
    /// One request to another bank, and the wait for peers in `GET /me/balances` (`BANK_PEER_TIMEOUT_MS`, 2000).
    pub peer_timeout: Duration,
    /// How far a signed request's timestamp may be from this bank's clock (`BANK_INTERBANK_SKEW_SECS`, 30).
    pub skew: SkewWindow,
}

impl InterbankConfig {
    fn from_env(code: &str) -> anyhow::Result<Self> {
        let seed = match (std::env::var("BANK_SIGNING_KEY").ok(), std::env::var("BANK_SIGNING_KEY_FILE").ok()) {
            (Some(k), _) if !k.trim().is_empty() => Some(k),
            (_, Some(path)) if !path.trim().is_empty() => {
                Some(std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("BANK_SIGNING_KEY_FILE {path}: {e}"))?)
            }
            _ => None,
        };
        let key = match seed {
            Some(text) => parse_seed(code, &text).map_err(|e| anyhow::anyhow!("BANK_SIGNING_KEY: {e}"))?,
            None => BankKeyPair::generate(code),
        };
        let directory = match std::env::var("BANK_DIRECTORY_FILE").ok().filter(|p| !p.trim().is_empty()) {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("BANK_DIRECTORY_FILE {path}: {e}"))?;
                Directory::parse(&text).map_err(|e| anyhow::anyhow!("BANK_DIRECTORY_FILE {path}: {e}"))?
            }
            None => Directory::default(),
        };
        if let Some(me) = directory.get(code) {
            anyhow::ensure!(me.public_key == key.public_key(), "BANK_DIRECTORY_FILE lists another public key for bank {code} than its signing key's");
        }
        let ms = |key: &str, default: u64| -> anyhow::Result<Duration> { Ok(Duration::from_millis(env_or(key, default)?.max(1))) };
        Ok(Self {
            key,
            directory,
            prepare_timeout: ms("BANK_INTERBANK_PREPARE_TIMEOUT_MS", 5000)?,
            retry_interval: ms("BANK_INTERBANK_RETRY_MS", 1000)?,
            inquiry_after: ms("BANK_INTERBANK_INQUIRY_MS", 3000)?,
            peer_timeout: ms("BANK_PEER_TIMEOUT_MS", 2000)?,
            skew: SkewWindow { seconds: env_or("BANK_INTERBANK_SKEW_SECS", 30)? },
        })
    }

    /// Defaults for a bank with no peers and a fresh key (tests start from this).
    pub fn standalone(code: &str) -> Self {
        Self {
            key: BankKeyPair::generate(code),
            directory: Directory::default(),
            prepare_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_secs(1),
            inquiry_after: Duration::from_secs(3),
            peer_timeout: Duration::from_secs(2),
            skew: SkewWindow::default(),
        }
    }
}

/// A signing key's seed: base64 of 32 bytes (surrounding whitespace ignored).
pub fn parse_seed(code: &str, text: &str) -> Result<BankKeyPair, String> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let bytes = STANDARD.decode(text.trim()).map_err(|_| "not base64".to_string())?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| "a seed is 32 bytes".to_string())?;
    Ok(BankKeyPair::from_seed(code, seed))
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("BANK", 3340, "bank")?;
        let code = env_string("BANK_CODE", "001");
        anyhow::ensure!(valid_code(&code), "BANK_CODE={code:?} is invalid; expected 3 digits");
        let tz: Tz = env_string("BANK_TIME_ZONE", "America/Sao_Paulo").parse().map_err(|e| anyhow::anyhow!("BANK_TIME_ZONE is not an IANA time zone: {e}"))?;
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
            hours,
            night,
            max_amount: env_or("BANK_MAX_AMOUNT", Decimal::new(100_000_000_000, 2))?,
            scheduler_interval: Duration::from_millis(env_or("BANK_SCHEDULER_INTERVAL_MS", 500)?),
            idempotency_ttl: Duration::from_secs(3600 * env_or::<u64>("BANK_IDEMPOTENCY_TTL_HOURS", 24)?.max(24)),
            idempotency_lock: Duration::from_secs(env_or("BANK_IDEMPOTENCY_LOCK_SECS", 15)?),
            clock: Arc::new(SystemClock),
            interbank: InterbankConfig::from_env(&code)?,
            code,
        })
    }
}

/// A bank code: exactly 3 ASCII digits.
pub fn valid_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())
}
