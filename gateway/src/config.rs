//! Settings of the gateway, from the environment (every variable and default in gateway/README.md).

use std::{collections::BTreeMap, time::Duration};

use sagaway_common::{auth::AuthConfig, config::{env_or, env_string}};
use sagaway_messaging::topics;

#[derive(Clone, Debug)]
pub struct Config {
    /// `GATEWAY_HOST` (127.0.0.1) and `GATEWAY_PORT` (8080; 0 picks a free port).
    pub host: String,
    pub port: u16,
    pub auth: AuthConfig,
    pub upstreams: Upstreams,
    /// `KAFKA_BROKERS`.
    pub kafka_brokers: String,
    /// The topics whose events are pushed, full names: `order.events` and each bank's `bank.events`
    /// (`GATEWAY_EVENT_TOPICS`, comma-separated; by default derived from `TOPIC_PREFIX` and the banks:
    /// bank 001 on `bank.events`, the others on `b<code>.bank.events`, as `scripts/stack` runs them).
    pub event_topics: Vec<String>,
    /// One proxied request (`GATEWAY_REQUEST_TIMEOUT_MS`, 30000).
    pub request_timeout: Duration,
    /// Open event streams per user; one more answers 429 (`GATEWAY_MAX_STREAMS_PER_USER`, 5).
    pub max_streams_per_user: usize,
    /// Events queued for one stream; a client that falls further behind gets `resync` and is
    /// disconnected (`GATEWAY_STREAM_BUFFER`, 256).
    pub stream_buffer: usize,
    /// A comment line on idle streams this often, so proxies keep them open (`GATEWAY_HEARTBEAT_SECS`, 15).
    pub heartbeat: Duration,
    /// The bearer token a Prometheus presents to scrape the gateway's own `/metrics`
    /// (`GATEWAY_METRICS_TOKEN_FILE`, a mounted secret, or `GATEWAY_METRICS_TOKEN`); an admin's
    /// access token is accepted too. Unset: admins only.
    pub metrics_token: Option<String>,
    /// What one user may take of the push edge.
    pub limits: Limits,
    /// The currency of the catalogue's prices, for the web app (`PRODUCT_CURRENCY`, as the product
    /// service reads it; USD).
    pub catalogue_currency: String,
}

/// Per-user bounds of the push edge (every variable in gateway/README.md).
#[derive(Clone, Debug)]
pub struct Limits {
    /// WebSocket tickets one user may hold unredeemed at once (`GATEWAY_MAX_TICKETS_PER_USER`, 5).
    pub tickets_per_user: usize,
    /// Tickets one user may be issued per minute, on average (`GATEWAY_TICKETS_PER_MINUTE`, 30; bursts of `tickets_per_user`).
    pub tickets_per_minute: u32,
    /// Tickets waiting at once, all users together (`GATEWAY_MAX_TICKETS`, 100000).
    pub tickets_total: usize,
    /// Resumes with `Last-Event-ID` one user may start per minute (`GATEWAY_REPLAYS_PER_MINUTE`, 20; bursts of 5).
    pub replays_per_minute: u32,
    /// The most events one resume may read back from Kafka; further behind gets `resync`
    /// (`GATEWAY_REPLAY_MAX_EVENTS`, 10000).
    pub replay_max_events: i64,
    /// Resumes reading Kafka at once, all users together (`GATEWAY_REPLAY_CONCURRENCY`, 4).
    pub replay_concurrency: usize,
    /// The largest frame or message a WebSocket client may send, in bytes (`GATEWAY_WS_MAX_MESSAGE_BYTES`, 4096).
    pub ws_max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tickets_per_user: 5,
            tickets_per_minute: 30,
            tickets_total: 100_000,
            replays_per_minute: 20,
            replay_max_events: 10_000,
            replay_concurrency: 4,
            ws_max_message: 4096,
        }
    }
}

impl Limits {
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::default();
        Ok(Self {
            tickets_per_user: env_or::<usize>("GATEWAY_MAX_TICKETS_PER_USER", d.tickets_per_user)?.max(1),
            tickets_per_minute: env_or::<u32>("GATEWAY_TICKETS_PER_MINUTE", d.tickets_per_minute)?.max(1),
            tickets_total: env_or::<usize>("GATEWAY_MAX_TICKETS", d.tickets_total)?.max(1),
            replays_per_minute: env_or::<u32>("GATEWAY_REPLAYS_PER_MINUTE", d.replays_per_minute)?.max(1),
            replay_max_events: env_or::<i64>("GATEWAY_REPLAY_MAX_EVENTS", d.replay_max_events)?.max(1),
            replay_concurrency: env_or::<usize>("GATEWAY_REPLAY_CONCURRENCY", d.replay_concurrency)?.max(1),
            ws_max_message: env_or::<usize>("GATEWAY_WS_MAX_MESSAGE_BYTES", d.ws_max_message)?.max(128),
        })
    }
}

/// `GATEWAY_METRICS_TOKEN_FILE` (its content, trimmed) or `GATEWAY_METRICS_TOKEN`; empty is none.
fn metrics_token() -> anyhow::Result<Option<String>> {
    let file = env_string("GATEWAY_METRICS_TOKEN_FILE", "");
    let token = if file.trim().is_empty() {
        env_string("GATEWAY_METRICS_TOKEN", "")
    } else {
        anyhow::ensure!(env_string("GATEWAY_METRICS_TOKEN", "").is_empty(), "set GATEWAY_METRICS_TOKEN or GATEWAY_METRICS_TOKEN_FILE, not both");
        std::fs::read_to_string(file.trim()).map_err(|e| anyhow::anyhow!("GATEWAY_METRICS_TOKEN_FILE={}: {e}", file.trim()))?
    };
    let token = token.trim().to_string();
    anyhow::ensure!(token.is_empty() || token.len() >= 16, "the metrics scrape token must be at least 16 characters");
    Ok((!token.is_empty()).then_some(token))
}

/// Where the services are.
#[derive(Clone, Debug)]
pub struct Upstreams {
    /// `IDENTITY_URL` (http://127.0.0.1:3336), `PRODUCT_URL` (:3333), `ORCHESTRATOR_URL` (:3334), `PAYMENT_URL` (:3335).
    pub identity: String,
    pub product: String,
    pub orchestrator: String,
    pub payment: String,
    /// `GATEWAY_BANKS`: `code=url` pairs, comma-separated (001=:3340, 002=:3341, 003=:3342).
    pub banks: BTreeMap<String, String>,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let url = |key: &str, default: &str| env_string(key, default).trim_end_matches('/').to_string();
        let banks = parse_banks(&env_string("GATEWAY_BANKS", "001=http://127.0.0.1:3340,002=http://127.0.0.1:3341,003=http://127.0.0.1:3342"))?;
        let prefix = env_string("TOPIC_PREFIX", "");
        let event_topics = match std::env::var("GATEWAY_EVENT_TOPICS").ok().filter(|v| !v.trim().is_empty()) {
            Some(list) => list.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect(),
            None => default_event_topics(&prefix, banks.keys()),
        };
        Ok(Self {
            host: env_string("GATEWAY_HOST", "127.0.0.1"),
            port: env_or("GATEWAY_PORT", 8080)?,
            auth: AuthConfig::for_service("GATEWAY")?,
            upstreams: Upstreams {
                identity: url("IDENTITY_URL", "http://127.0.0.1:3336"),
                product: url("PRODUCT_URL", "http://127.0.0.1:3333"),
                orchestrator: url("ORCHESTRATOR_URL", "http://127.0.0.1:3334"),
                payment: url("PAYMENT_URL", "http://127.0.0.1:3335"),
                banks,
            },
            kafka_brokers: env_string("KAFKA_BROKERS", "127.0.0.1:9092"),
            event_topics,
            request_timeout: Duration::from_millis(env_or("GATEWAY_REQUEST_TIMEOUT_MS", 30_000)?),
            max_streams_per_user: env_or("GATEWAY_MAX_STREAMS_PER_USER", 5)?,
            stream_buffer: env_or::<usize>("GATEWAY_STREAM_BUFFER", 256)?.max(1),
            heartbeat: Duration::from_secs(env_or::<u64>("GATEWAY_HEARTBEAT_SECS", 15)?.max(1)),
            metrics_token: metrics_token()?,
            limits: Limits::from_env()?,
            catalogue_currency: env_string("PRODUCT_CURRENCY", "USD"),
        })
    }
}

/// `order.events` and the banks' `bank.events` topics with `prefix`.
pub fn default_event_topics<'a>(prefix: &str, banks: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut topics = vec![format!("{prefix}{}", topics::ORDER_EVENTS)];
    for code in banks {
        let bank_prefix = if code == "001" { String::new() } else { format!("b{code}.") };
        topics.push(format!("{prefix}{bank_prefix}{}", topics::BANK_EVENTS));
    }
    topics
}

/// `001=http://…,002=http://…` → code → URL (codes of 3 digits, URLs http(s)).
pub fn parse_banks(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (code, url) = pair.split_once('=').ok_or_else(|| anyhow::anyhow!("GATEWAY_BANKS: {pair:?} is not code=url"))?;
        anyhow::ensure!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()), "GATEWAY_BANKS: {code:?} is not a 3-digit bank code");
        anyhow::ensure!(url.starts_with("http://") || url.starts_with("https://"), "GATEWAY_BANKS: {url:?} is not an http(s) URL");
        out.insert(code.to_string(), url.trim_end_matches('/').to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_and_their_event_topics() {
        let banks = parse_banks("001=http://a:1/, 002=http://b:2").unwrap();
        assert_eq!(banks["001"], "http://a:1");
        assert_eq!(default_event_topics("t1.", banks.keys()), ["t1.order.events", "t1.bank.events", "t1.b002.bank.events"]);
        assert!(parse_banks("1=http://a").is_err());
        assert!(parse_banks("001=ftp://a").is_err());
        assert!(parse_banks("001").is_err());
    }
}
