//! Card keys and card data at rest (issue 11), end to end:
//! - no CVC is kept once authorization has been attempted (PCI DSS 3.2): after a dead-lettered
//!   and abandoned order, a retried and a plain approved one, no table of the three services and
//!   no retry or dead letter holds a CVC — every sealed value found is opened with the test keys
//!   to check what it holds;
//! - a master-key rotation needs no drain: cards sealed before and after it are charged, and an
//!   idempotent retry of a request from before it replays instead of answering 422;
//! - the service binaries refuse the built-in development card key outside `SAGAWAY_ENV=dev`.
//! - `payment.commands`, the one topic that carries a sealed CVC (an order's first charge
//!   command), keeps records for hours, not the broker's default week, wherever it is created.
//!
//! Product, orchestrator and payment in-process (the last test: the binaries) against the real
//! MariaDB and broker, fresh databases and topics.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context;
use e2e::system::{System, SystemOptions, payment_body, settled};
use reqwest::StatusCode;
use sagaway_common::card::{self, CardKey};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(60);
const VISA: &str = "4242424242424242";
const ALWAYS_FAILS: &str = "4000000000000119";
const FAILS_TWICE: &str = "4000000000000341";
const K1: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const K2: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";

async fn dlq_post(sys: &System, op: &str, body: Value) -> anyhow::Result<Value> {
    let res = sys.http.post(format!("{}/admin/dlq/{op}", sys.orchestrator_url)).bearer_auth(sys.admin_token("e2e")).json(&body).send().await?;
    anyhow::ensure!(res.status() == StatusCode::OK, "{op}: {} {}", res.status(), res.text().await?);
    Ok(res.json().await?)
}

/// The id of the one dead letter of `order_id`, once it is recorded.
async fn dead_letter_of(sys: &System, order_id: &str) -> anyhow::Result<u64> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let page = sys.get_json(format!("{}/admin/dlq?order_id={order_id}", sys.orchestrator_url)).await?;
        if let Some(id) = page["items"][0]["id"].as_u64() {
            return Ok(id);
        }
        anyhow::ensure!(Instant::now() < deadline, "no dead letter for {order_id}: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_outage(sys: &System, enabled: bool) -> anyhow::Result<()> {
    let res = sys.http.post(format!("{}/admin/outage", sys.payment_url)).bearer_auth(sys.admin_token("e2e")).json(&json!({"enabled": enabled})).send().await?;
    anyhow::ensure!(res.status() == StatusCode::OK, "outage switch: {}", res.status());
    Ok(())
}

/// Every distinct sealed value in `text`: `v2.<key id>.<base64>` tokens, and the values of JSON
/// `sealed` / `sealed_cvc` members (which would also catch the unversioned form).
fn sealed_values(text: &str) -> BTreeSet<String> {
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=';
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("v2.") {
        let rest = &text[i + 3..];
        let Some(dot) = rest.find('.') else { continue };
        let (kid, tail) = (&rest[..dot], &rest[dot + 1..]);
        let body: String = tail.chars().take_while(|c| b64(*c)).collect();
        if !kid.is_empty() && kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') && body.len() > 16 {
            found.insert(format!("v2.{kid}.{body}"));
        }
    }
    for member in ["\"sealed\":\"", "\"sealed_cvc\":\""] {
        for (i, _) in text.match_indices(member) {
            let value: String = text[i + member.len()..].chars().take_while(|c| *c != '"').collect();
            found.insert(value);
        }
    }
    found
}

/// Checks `text` (a table's rows, a topic's records) holds no CVC: no `"cvc"` member, no
/// `sealed_cvc`, and no sealed value that opens (under `keys`, for any of `orders`) to one.
/// Returns how many distinct sealed values it opened (each to a card number alone).
fn assert_no_cvc(keys: &CardKey, orders: &[&str], what: &str, text: &str) -> usize {
    assert!(!text.contains("\"cvc\""), "{what}: a CVC in clear");
    assert!(!text.contains("sealed_cvc"), "{what}: a sealed CVC is kept");
    let mut opened = 0;
    for sealed in sealed_values(text) {
        let Some(plain) = orders.iter().find_map(|o| card::open_any(keys, o, &sealed)) else { continue };
        // `plain` holds a card number: never printed.
        assert!(!plain.contains("\"cvc\""), "{what}: a sealed value holds a CVC");
        assert!(plain.contains("\"number\""), "{what}: a sealed value holds something else");
        opened += 1;
    }
    opened
}

/// Every row of every table of `db` (all columns as text), one string per table.
async fn tables(pool: &sqlx::MySqlPool, db: &str) -> anyhow::Result<Vec<(String, String)>> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = ?").bind(db).fetch_all(pool).await?;
    let mut out = Vec::new();
    for t in names {
        let cols: Vec<String> =
            sqlx::query_scalar("SELECT CAST(column_name AS CHAR) FROM information_schema.columns WHERE table_schema = ? AND table_name = ?")
                .bind(db)
                .bind(&t)
                .fetch_all(pool)
                .await?;
        let expr = cols.iter().map(|c| format!("IFNULL(CAST(`{c}` AS CHAR), '')")).collect::<Vec<_>>().join(", '|', ");
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT CONCAT({expr}) FROM `{t}`")).fetch_all(pool).await?;
        out.push((format!("{db}.{t}"), rows.join("\n")));
    }
    Ok(out)
}

/// [`assert_no_cvc`] over every table of the three databases; returns the sealed values opened.
async fn assert_no_cvc_stored(sys: &System, keys: &CardKey, orders: &[&str]) -> anyhow::Result<usize> {
    let mut opened = 0;
    for (db, pool) in sys.databases.iter().zip([&sys.product_db, &sys.orchestrator_db, &sys.payment_db]) {
        for (table, text) in tables(pool, db).await? {
            for pan in [VISA, ALWAYS_FAILS, FAILS_TWICE] {
                assert!(!text.contains(pan), "{table}: a card number in clear");
            }
            opened += assert_no_cvc(keys, orders, &table, &text);
        }
    }
    Ok(opened)
}

fn topic(sys: &System, logical: &str) -> anyhow::Result<String> {
    e2e::dump_topic(&e2e::StackAddr::from_env().brokers(), &format!("{}{logical}", sys.prefix))
}

/// PCI DSS 3.2 (issue 11): the CVC travels sealed in an order's first charge command only. After
/// a 0119 order is dead-lettered (parked) and then abandoned, a 0341 order is retried twice and
/// approved, and a 4242 order completes, no table — orders, dead letters and their audit, charges,
/// outbox/inbox — and no retry or dead letter on the topics keeps a CVC, in clear or sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_cvc_is_kept_once_authorization_has_been_attempted() -> anyhow::Result<()> {
    let list = format!("scan:{K1}");
    let keys = CardKey::from_list(&list)?;
    let sys = System::spawn(SystemOptions { max_attempts: 3, card_keys: Some(list), ..Default::default() }).await?;
    let product = sys.create_product("3.00", 20).await?;

    let (approved, _) = sys.pay(product, "cvc-approved", VISA).await?;
    let (retried, _) = sys.pay(product, "cvc-retried", FAILS_TWICE).await?;
    let (parked, _) = sys.pay(product, "cvc-parked", ALWAYS_FAILS).await?;
    let orders = [approved.as_str(), retried.as_str(), parked.as_str()];
    for (order, status) in [(&approved, "COMPLETED"), (&retried, "COMPLETED"), (&parked, "FAILED")] {
        let o = sys.wait_order(order, WITHIN, settled).await?;
        assert_eq!(o["status"], status, "{o}");
    }
    let retried_view = sys.get_json(format!("{}/charges/{retried}", sys.payment_url)).await?;
    assert_eq!(retried_view["attempts"].as_array().unwrap().len(), 3, "two transient failures, then approved without the CVC: {retried_view}");
    let dead_letter = dead_letter_of(&sys, &parked).await?;

    // The parked order still holds its card, for a replay: the number alone.
    let (sealed, sealed_cvc): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT card_sealed, card_cvc_sealed FROM orders WHERE id = ?").bind(&parked).fetch_one(&sys.orchestrator_db).await?;
    assert!(sealed.as_deref().is_some_and(|s| card::sealed_key_id(s) == Some("scan")), "the parked order keeps its number, sealed under key `scan`");
    assert_eq!(sealed_cvc, None, "the CVC went with the first charge command");
    let opened = assert_no_cvc_stored(&sys, &keys, &orders).await?;
    assert!(opened >= 2, "the scan opened the parked order's card and its dead letter's ({opened})");

    // Abandoned: compensated, and still nothing.
    let abandoned = dlq_post(&sys, "abandon", json!({"ids": [dead_letter]})).await?;
    assert_eq!(abandoned["outcomes"][0]["outcome"], "abandoned", "{abandoned}");
    sys.wait_order(&parked, WITHIN, |o| o["status"] == "COMPENSATED").await?;
    assert_no_cvc_stored(&sys, &keys, &orders).await?;

    // The topics: the first charge of each order carried the CVC (sealed), on payment.commands, the
    // one topic that keeps a record for hours only; no retry, no dead letter carries it.
    let commands = topic(&sys, "payment.commands")?;
    assert_eq!(commands.matches("sealed_cvc").count(), 3, "each order's first charge command carries its CVC");
    assert_kept_for_hours(&topic_settings(&format!("{}payment.commands", sys.prefix)).await?, "the test's payment.commands");
    for other in ["saga.retry", "payment_dlq", "payment.replies", "order.events"] {
        assert!(!topic(&sys, other)?.contains("sealed_cvc"), "{other} carries a sealed CVC");
    }
    let retries = topic(&sys, "saga.retry")?;
    assert_eq!(retries.lines().count(), 4, "0341: 2 retries; 0119: 2 retries before the dead letter\n{retries}");
    // One sealed number per retried order: resealed without the CVC after the first attempt, then passed on as it is.
    assert_eq!(assert_no_cvc(&keys, &orders, "saga.retry", &retries), 2, "the retries carry the number alone");
    let dead_letters = topic(&sys, "payment_dlq")?;
    assert_eq!(assert_no_cvc(&keys, &orders, "payment_dlq", &dead_letters), 1, "the dead letter carries the number alone");
    sys.stop().await;
    Ok(())
}

/// The settings the broker reports for `topic` (DescribeConfigs).
async fn topic_settings(topic: &str) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", e2e::StackAddr::from_env().brokers()).create()?;
    let described = admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()).await?;
    let resource = described.into_iter().next().context("no answer")?.map_err(|e| anyhow::anyhow!("DescribeConfigs {topic}: {e}"))?;
    Ok(resource.entries.into_iter().filter_map(|e| e.value.map(|v| (e.name, v))).collect())
}

/// `settings` delete records after hours, not days: `retention.ms` at most a day (and the value
/// Sagaway sets), segments rolled within it (Kafka deletes whole segments only), `cleanup.policy`
/// naming `delete` (the local broker applies `retention.ms` only then).
fn assert_kept_for_hours(settings: &std::collections::BTreeMap<String, String>, what: &str) {
    let ms = |k: &str| settings.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{what}: no {k}: {settings:?}"));
    let (retention, segment) = (ms("retention.ms"), ms("segment.ms"));
    assert!(retention <= 24 * 3600 * 1000, "{what}: retention.ms {retention} is more than a day");
    assert_eq!(retention.to_string(), sagaway_messaging::topics::PAYMENT_COMMANDS_RETENTION_MS, "{what}");
    assert!(segment <= retention, "{what}: segment.ms {segment} outlasts the retention");
    assert!(settings.get("cleanup.policy").is_some_and(|p| p.contains("delete")), "{what}: {settings:?}");
}

/// payment.commands carries each order's sealed CVC (its first charge command), so it keeps a
/// record for hours, not the broker's default week — everywhere it is created: by the services
/// (the local stack's topics, compose's: asked of the running broker), by compose's kafka-init for
/// a topic made before (deploy/kafka/init.sh), and by the Kubernetes KafkaTopic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_commands_keep_the_sealed_cvc_for_hours_only_everywhere() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    // The services create it so (the topics of a fresh system, on the running broker).
    let sys = System::spawn(SystemOptions::default()).await?;
    let created = topic_settings(&format!("{}payment.commands", sys.prefix)).await?;
    assert_kept_for_hours(&created, "payment.commands as the services create it");
    sys.stop().await;

    // Kubernetes: the KafkaTopic's config.
    let yaml = std::fs::read_to_string(root.join("deploy/k8s/base/kafka-topics.yaml"))?;
    let topic = yaml
        .split("\n---")
        .map(|d| serde_yaml::from_str::<serde_yaml::Value>(d).unwrap())
        .find(|d| d["spec"]["topicName"].as_str() == Some("payment.commands"))
        .context("a KafkaTopic payment.commands")?;
    let k8s: std::collections::BTreeMap<String, String> = topic["spec"]["config"]
        .as_mapping()
        .context("its config")?
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().map(str::to_string).unwrap_or_else(|| v.as_u64().unwrap().to_string())))
        .collect();
    assert_kept_for_hours(&k8s, "the KafkaTopic payment.commands");

    // Compose: kafka-init switches an existing payment.commands over, with the same settings.
    let init = std::fs::read_to_string(root.join("deploy/kafka/init.sh"))?;
    let line = init.lines().find(|l| l.starts_with("payment_commands_settings=")).context("init.sh names the settings")?;
    let compose: std::collections::BTreeMap<String, String> = line
        .trim_start_matches("payment_commands_settings=")
        .trim_matches('"')
        .split(',')
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).expect("k=v"))
        .collect();
    assert_kept_for_hours(&compose, "deploy/kafka/init.sh");
    assert!(init.contains("--entity-name \"$payment_commands\"") && init.contains("--add-config \"$payment_commands_settings\""), "init.sh applies them");
    Ok(())
}

/// A master-key rotation without a drain: an order sealed under `k1` is parked (outage), the
/// services are redeployed with `CARD_KEYS=k2,k1`; the old order's replay is charged (its card
/// opens with `k1`), a new order is sealed under `k2` and completes, and the pre-rotation request
/// retried with its Idempotency-Key replays the original answer (its body hash was recorded under
/// `k1`'s subkey) instead of answering 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cards_sealed_before_and_after_a_key_rotation_are_charged_and_an_old_retry_replays() -> anyhow::Result<()> {
    let before = format!("k1:{K1}");
    let after = format!("k2:{K2},k1:{K1}");
    let options = |card_keys: &str| SystemOptions { max_attempts: 2, card_keys: Some(card_keys.to_string()), ..Default::default() };
    let mut sys = System::spawn(options(&before)).await?;
    let product = sys.create_product("4.00", 20).await?;

    // Before: an order sealed under k1, parked by an outage.
    set_outage(&sys, true).await?;
    let reservation = sys.reserve(product, "rotating", 2).await?;
    let body = payment_body(reservation["id"].as_str().unwrap(), "rotating", VISA);
    let (status, _, first) = sys.post_payment(&body, Some("rotation-1")).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let old_order = first["order_id"].as_str().unwrap().to_string();
    assert_eq!(sys.wait_order(&old_order, WITHIN, settled).await?["status"], "FAILED");
    let dead_letter = dead_letter_of(&sys, &old_order).await?;
    let (sealed, fingerprint): (Option<String>, String) =
        sqlx::query_as("SELECT card_sealed, card_fingerprint FROM orders WHERE id = ?").bind(&old_order).fetch_one(&sys.orchestrator_db).await?;
    assert_eq!(sealed.as_deref().and_then(card::sealed_key_id), Some("k1"));

    // The rotation: both services redeployed with k2 active, k1 still configured.
    sys.restart(options(&after)).await?;
    set_outage(&sys, false).await?;
    let rotated = CardKey::from_list(&after)?;
    assert!(card::fingerprint_matches(&rotated, &fingerprint, VISA), "the k1 fingerprint still matches the card");
    assert_ne!(fingerprint, card::fingerprint(&rotated, VISA), "new fingerprints are keyed by k2");

    // The pre-rotation request again, same key and body: the original answer, replayed.
    let (status, headers, replayed) = sys.post_payment(&body, Some("rotation-1")).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "a retry after the rotation replays, not 422: {replayed}");
    assert_eq!(headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(replayed["order_id"], old_order.as_str());
    let mut other_body = body.clone();
    other_body["payment_method"]["card"]["exp_month"] = json!(11);
    let (status, _, reused) = sys.post_payment(&other_body, Some("rotation-1")).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "another body is still a reuse: {reused}");

    // After: a new order is sealed under k2 and completes; the old one's replay opens with k1.
    let (new_order, _) = sys.pay(product, "rotated", VISA).await?;
    assert_eq!(sys.wait_order(&new_order, WITHIN, settled).await?["status"], "COMPLETED");
    let commands = topic(&sys, "payment.commands")?;
    assert!(commands.contains("\"sealed\":\"v2.k2."), "the new order's card travels sealed under k2");
    assert!(commands.contains("\"sealed\":\"v2.k1."), "the old order's card was sealed under k1");
    let replay = dlq_post(&sys, "replay", json!({"ids": [dead_letter]})).await?;
    assert_eq!(replay["outcomes"][0]["outcome"], "replayed", "{replay}");
    sys.wait_order(&old_order, WITHIN, |o| o["status"] == "COMPLETED").await?;
    let charge = sys.get_json(format!("{}/charges/{old_order}", sys.payment_url)).await?;
    assert_eq!(charge["status"], "succeeded", "{charge}");
    let ledger = sys.get_json(format!("{}/ledger/summary", sys.payment_url)).await?;
    assert_eq!((ledger["captured_total"].as_str(), ledger["balanced"].as_bool()), (Some("16.00"), Some(true)), "{ledger}");
    sys.stop().await;
    Ok(())
}

fn target_dir() -> PathBuf {
    // .../target/debug/deps/card_data-xxxx → .../target/debug
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

/// `<service> migrate` with `env` on top of a card-key-free environment: (success, stdout + stderr).
fn migrate(service: &str, env: &[(&str, String)]) -> (bool, String) {
    let out = Command::new(target_dir().join(service))
        .arg("migrate")
        .env_remove("CARD_KEY")
        .env_remove("CARD_KEYS")
        .env_remove("CARD_KEYS_FILE")
        .env_remove("SAGAWAY_ENV")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("running {service}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The binaries (their `Config::from_env`) refuse the built-in development key — unset or set
/// explicitly — unless `SAGAWAY_ENV=dev`, naming the variables; under `SAGAWAY_ENV=dev` they warn;
/// with a real key they run and log only key ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_refuse_the_development_card_key_outside_dev() -> anyhow::Result<()> {
    e2e::build_service_binaries()?;
    let stack = e2e::StackAddr::from_env();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    for service in ["orchestrator", "payment"] {
        let db = format!("{service}_t_keys_{id}");
        let upper = service.to_uppercase();
        let base = [
            (format!("{upper}_DATABASE_URL"), stack.mysql_url(&db)),
            ("KAFKA_BROKERS".to_string(), stack.brokers()),
            ("TOPIC_PREFIX".to_string(), format!("t{id}.")),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        let with = |extra: &[(&'static str, &str)]| -> Vec<(&str, String)> {
            base.iter().map(|(k, v)| (k.as_str(), v.clone())).chain(extra.iter().map(|(k, v)| (*k, v.to_string()))).collect()
        };
        for (why, env) in [
            ("no key", with(&[])),
            ("the development key given explicitly", with(&[("CARD_KEY", card::DEV_CARD_KEY)])),
            ("the development key as an old key", with(&[("CARD_KEYS", &format!("k2:{K2},old:{}", card::DEV_CARD_KEY)), ("SAGAWAY_ENV", "production")])),
        ] {
            let (ok, log) = migrate(service, &env);
            assert!(!ok, "{service} started with {why}: {log}");
            assert!(log.contains("CARD_KEY") && log.contains("SAGAWAY_ENV=dev"), "{service}, {why}: the refusal names the variables: {log}");
        }
        let (ok, log) = migrate(service, &with(&[("SAGAWAY_ENV", "dev")]));
        assert!(ok, "{service} under SAGAWAY_ENV=dev: {log}");
        assert!(log.contains("development card key is in use"), "{service} warns about the development key: {log}");
        let (ok, log) = migrate(service, &with(&[("CARD_KEYS", &format!("k2:{K2},k1:{K1}"))]));
        assert!(ok, "{service} with real keys: {log}");
        assert!(!log.contains("development card key"), "{log}");
        assert!(log.contains("card keys loaded") && log.contains("k2"), "the key ids are logged: {log}");
        assert!(!log.contains(&K2[..16]) && !log.contains(&K1[..16]), "no key material in the log");
        if let Ok(admin) = sqlx::MySqlPool::connect(&stack.mysql_url("mysql")).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{db}`")).execute(&admin).await;
        }
    }
    Ok(())
}
