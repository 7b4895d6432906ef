//! Kafka clients tuned for the local tansu broker (docs/stack.md): idempotent producer, manual commits,
//! topics created explicitly (tansu does not auto-create them), no transactions.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::StreamConsumer,
    producer::{FutureProducer, Producer},
    types::RDKafkaErrorCode,
};

/// How clients authenticate to the broker: plaintext on the local stack; SASL (SCRAM) with one
/// principal per service where the broker demands it (compose: docs/kafka-security.md).
/// `KAFKA_SECURITY_PROTOCOL` (default `plaintext`), `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`,
/// and the password in `KAFKA_SASL_PASSWORD_FILE` (a secret file; trailing newline trimmed) or
/// `KAFKA_SASL_PASSWORD`.
#[derive(Clone, Default)]
pub struct Security {
    protocol: Option<String>,
    mechanism: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Security {
    pub fn from_env() -> anyhow::Result<Self> {
        use crate::env::env_string;
        let set = |v: String| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        let password = match set(env_string("KAFKA_SASL_PASSWORD_FILE", "")) {
            Some(path) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("KAFKA_SASL_PASSWORD_FILE={path}: cannot read it"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            None => set(env_string("KAFKA_SASL_PASSWORD", "")),
        };
        let s = Self {
            protocol: set(env_string("KAFKA_SECURITY_PROTOCOL", "")),
            mechanism: set(env_string("KAFKA_SASL_MECHANISM", "")),
            username: set(env_string("KAFKA_SASL_USERNAME", "")),
            password,
        };
        let sasl = s.protocol.as_deref().is_some_and(|p| p.to_ascii_uppercase().starts_with("SASL"));
        if sasl {
            anyhow::ensure!(
                s.mechanism.is_some() && s.username.is_some() && s.password.is_some(),
                "KAFKA_SECURITY_PROTOCOL={} needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE (or KAFKA_SASL_PASSWORD)",
                s.protocol.as_deref().unwrap_or_default()
            );
        }
        Ok(s)
    }

    /// The process's settings, read once from the environment.
    pub fn global() -> &'static Security {
        static SECURITY: OnceLock<Security> = OnceLock::new();
        read_once(&SECURITY, Security::from_env)
    }

    fn apply(&self, cfg: &mut ClientConfig) {
        for (key, value) in [
            ("security.protocol", &self.protocol),
            ("sasl.mechanism", &self.mechanism),
            ("sasl.username", &self.username),
            ("sasl.password", &self.password),
        ] {
            if let Some(v) = value {
                cfg.set(key, v);
            }
        }
    }
}

/// Client settings read once per process. A bad value stops the service: a misconfigured broker
/// login or membership must never fall back silently (to plaintext, to dynamic membership).
fn read_once<T>(cell: &'static OnceLock<T>, read: fn() -> anyhow::Result<T>) -> &'static T {
    cell.get_or_init(|| {
        read().unwrap_or_else(|e| {
            eprintln!("error: {e:#}");
            std::process::exit(2)
        })
    })
}

/// A client configuration for `brokers` with the process's broker login ([`Security`]): every
/// Kafka client of the services starts from this.
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    Security::global().apply(&mut cfg);
    cfg
}

/// The idempotent producer (acks=all, retries without duplicates or reordering).
pub fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    client_config(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .create()
        .context("creating the Kafka producer")
}

/// How this process's consumers are members of their groups (group mode): dynamically (a new
/// member at every start), or statically under a stable instance id (`KAFKA_GROUP_INSTANCE_ID`).
///
/// Static membership (KIP-345) lets a replica that restarts take back its own partitions without a
/// rebalance, as long as it is back within the session timeout (`KAFKA_SESSION_TIMEOUT_MS`). On the
/// local tansu 0.6.0 broker it is what makes group mode survive `kill -9`: its coordinator does not
/// complete the rebalance that follows a dynamic member's death (docs/stack.md), but matches a
/// static member's rejoin to the member it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// `group.instance.id`: unique per replica, the same across its restarts (a StatefulSet pod's
    /// name, a replica number). `None`: dynamic membership.
    pub instance_id: Option<String>,
    /// `session.timeout.ms`: how long the coordinator waits for a silent member before giving its
    /// partitions away.
    pub session_timeout_ms: u32,
}

impl Membership {
    pub fn from_env() -> anyhow::Result<Self> {
        let instance_id = Some(crate::env::env_string("KAFKA_GROUP_INSTANCE_ID", "").trim().to_string()).filter(|s| !s.is_empty());
        if let Some(id) = &instance_id {
            anyhow::ensure!(
                id.len() <= 249 && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
                "KAFKA_GROUP_INSTANCE_ID must be 1-249 characters of letters, digits, '.', '_' or '-'"
            );
        }
        let session_timeout_ms: u32 = crate::env::env_or("KAFKA_SESSION_TIMEOUT_MS", 10_000)?;
        anyhow::ensure!((6_000..=300_000).contains(&session_timeout_ms), "KAFKA_SESSION_TIMEOUT_MS must be between 6000 and 300000");
        Ok(Self { instance_id, session_timeout_ms })
    }

    /// The process's settings, read once from the environment.
    pub fn global() -> &'static Membership {
        static MEMBERSHIP: OnceLock<Membership> = OnceLock::new();
        read_once(&MEMBERSHIP, Membership::from_env)
    }

    fn apply(&self, cfg: &mut ClientConfig) {
        cfg.set("session.timeout.ms", self.session_timeout_ms.to_string());
        if let Some(id) = &self.instance_id {
            cfg.set("group.instance.id", id);
        }
    }
}

/// A group consumer that never auto-commits: offsets are committed after the DB transaction.
pub fn consumer(brokers: &str, group: &str, fetch_wait_max_ms: u32) -> anyhow::Result<StreamConsumer> {
    let mut cfg = client_config(brokers);
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", fetch_wait_max_ms.to_string())
        .set("heartbeat.interval.ms", "1000");
    Membership::global().apply(&mut cfg);
    cfg.create().context("creating the Kafka consumer")
}

/// Creates the topics that do not exist yet, each with `replicas` replicas (at most the brokers, at
/// least the cluster's `min.insync.replicas`, or acks=all writes fail); existing topics are left as they are.
pub async fn ensure_topics(brokers: &str, topics: &[(String, i32)], replicas: i32) -> anyhow::Result<()> {
    let plain: Vec<(String, i32, &[(&str, &str)])> = topics.iter().map(|(name, partitions)| (name.clone(), *partitions, &[][..])).collect();
    ensure_topics_with(brokers, &plain, replicas).await
}

/// [`ensure_topics`] with topic settings (`retention.ms`, …) for the topics it creates
/// ([`crate::topics::settings`]). An existing topic keeps the settings it has: changing those is
/// the deployment's job (deploy/kafka/init.sh, the KafkaTopic resources).
pub async fn ensure_topics_with(brokers: &str, topics: &[(String, i32, &[(&str, &str)])], replicas: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions, settings)| {
            settings.iter().fold(NewTopic::new(name, *partitions, TopicReplication::Fixed(replicas)), |t, (k, v)| t.set(k, v))
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &opts).await.context("CreateTopics")? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// A one-partition topic every service creates and the readiness probe asks about. (Asking for the
/// metadata of ALL topics is slow on a broker holding thousands of test topics.)
pub const PROBE_TOPIC: &str = "sagaway.health";

/// Asks the broker for the probe topic's metadata: the readiness probe for Kafka.
pub async fn ping(producer: Arc<FutureProducer>) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(PROBE_TOPIC), Duration::from_secs(2))
            .map(|_| ())
            .context("broker metadata")
    })
    .await
    .context("metadata task")?
}

#[cfg(test)]
mod membership_tests {
    use super::Membership;

    #[test]
    fn a_static_member_sends_its_instance_id_and_a_dynamic_one_none() {
        let config = |m: &Membership| {
            let mut cfg = rdkafka::ClientConfig::new();
            m.apply(&mut cfg);
            (cfg.get("group.instance.id").map(str::to_string), cfg.get("session.timeout.ms").map(str::to_string))
        };
        let dynamic = Membership { instance_id: None, session_timeout_ms: 10_000 };
        assert_eq!(config(&dynamic), (None, Some("10000".into())));
        let fixed = Membership { instance_id: Some("payment-0".into()), session_timeout_ms: 60_000 };
        assert_eq!(config(&fixed), (Some("payment-0".into()), Some("60000".into())));
    }
}

#[cfg(test)]
mod security_tests {
    use super::Security;

    #[test]
    fn sasl_settings_reach_the_client_and_the_password_never_prints() {
        let s = Security {
            protocol: Some("SASL_PLAINTEXT".into()),
            mechanism: Some("SCRAM-SHA-512".into()),
            username: Some("payment".into()),
            password: Some("s3cret".into()),
        };
        let mut cfg = rdkafka::ClientConfig::new();
        s.apply(&mut cfg);
        assert_eq!(cfg.get("security.protocol"), Some("SASL_PLAINTEXT"));
        assert_eq!(cfg.get("sasl.username"), Some("payment"));
        assert_eq!(cfg.get("sasl.password"), Some("s3cret"));
        assert!(!format!("{s:?}").contains("s3cret"));
        let mut plain = rdkafka::ClientConfig::new();
        Security::default().apply(&mut plain);
        assert_eq!(plain.get("security.protocol"), None, "plaintext by default (the local stack)");
    }
}
