//! The metrics the dashboards and alert rules are built on (issue 16): `deploy/prometheus/metrics.txt`
//! lists every name they may use, and it is exactly the set the code emits (with the `sagaway_`
//! prefix the recorder adds); a paid order makes the running services export the gauges and
//! histograms the alerts read, and the consumer lag is the broker's high watermark minus the
//! position the service stored.

use std::{collections::BTreeSet, path::Path, time::Duration};

use e2e::system::{System, SystemOptions};

const WITHIN: Duration = Duration::from_secs(45);

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every name passed to `metrics::counter!/gauge!/histogram!` in the services' sources.
fn names_in_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack: Vec<_> = ["common", "messaging", "product", "orchestrator", "payment", "bank", "gateway", "identity"].iter().map(|d| repo().join(d).join("src")).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_call in ["metrics::counter!(\"", "metrics::gauge!(\"", "metrics::histogram!(\""] {
                for (at, _) in text.match_indices(macro_call) {
                    let rest = &text[at + macro_call.len()..];
                    names.insert(format!("{}_{}", sagaway_common::http::METRIC_PREFIX, &rest[..rest.find('"').unwrap()]));
                }
            }
        }
    }
    names
}

fn listed() -> BTreeSet<String> {
    std::fs::read_to_string(repo().join("deploy/prometheus/metrics.txt"))
        .expect("deploy/prometheus/metrics.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn the_metric_list_the_monitoring_uses_is_what_the_code_emits() {
    let (code, list) = (names_in_code(), listed());
    assert!(code.len() > 30, "the scan found the metrics: {code:?}");
    let unlisted: Vec<_> = code.difference(&list).collect();
    let gone: Vec<_> = list.difference(&code).collect();
    assert!(unlisted.is_empty(), "emitted but missing from deploy/prometheus/metrics.txt: {unlisted:?}");
    assert!(gone.is_empty(), "listed in deploy/prometheus/metrics.txt but emitted nowhere: {gone:?}");
}

/// The value of the first sample line of `name` whose labels contain every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn scrape(sys: &System) -> anyhow::Result<String> {
    Ok(sys.http.get(format!("{}/metrics", sys.orchestrator_url)).send().await?.text().await?)
}

/// Polls the (process-wide) metrics until `ready` holds, or fails with the last scrape.
async fn wait_metrics(sys: &System, within: Duration, what: &str, ready: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let text = scrape(sys).await?;
        if ready(&text) {
            return Ok(text);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{what} not seen within {within:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_order_exports_prefixed_saga_outbox_lag_dlq_and_bank_metrics() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { bank: true, ..SystemOptions::default() }).await?;
    let product = sys.create_product("5.00", 10).await?;
    let account = sys.open_account("mia", "USD").await?;
    sys.deposit("mia", &account, "50.00").await?;
    let r = sys.reserve(product, "mia", 1).await?;
    let order_id = sys.pay_from_account(r["id"].as_str().unwrap(), "mia", &account).await?;
    let order = sys.wait_order(&order_id, WITHIN, |o| o["status"] == "COMPLETED" || o["status"] == "COMPENSATED").await?;
    assert_eq!(order["status"], "COMPLETED", "{order}");

    // Sampled gauges appear within one sampling period; the histograms with the order's steps.
    let replies = format!("topic=\"{}payment.replies\"", sys.prefix);
    let text = wait_metrics(&sys, Duration::from_secs(25), "the sampled gauges", |t| {
        sample(t, "sagaway_consumer_lag", &["service=\"orchestrator\"", &replies]).is_some()
            && ["sagaway_outbox_pending", "sagaway_outbox_oldest_age_seconds", "sagaway_dlq_pending", "sagaway_bank_interbank_in_doubt", "sagaway_bank_interbank_undecided_oldest_age_seconds"]
                .iter()
                .all(|g| sample(t, g, &[]).is_some())
    })
    .await?;
    assert!(sample(&text, "sagaway_saga_step_seconds_count", &["from=\"PAID\"", "to=\"COMPLETED\""]).is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "sagaway_saga_order_seconds_count", &["outcome=\"COMPLETED\""]).is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "sagaway_bank_operations_total", &["kind=\"deposit\"", "status=\"APPLIED\""]).is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "sagaway_http_requests_total", &["route=\"/payment\""]).is_some(), "{text}");
    let unprefixed: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty() && !l.starts_with("sagaway_")).collect();
    assert!(unprefixed.is_empty(), "every exported metric carries the application prefix: {unprefixed:?}");

    // The lag is the broker's high watermark minus the stored position: nothing is behind once the
    // order is done; with the stored position moved back to 0 (what a consumer that stopped at the
    // start would show) the next sample reports every message of the partition.
    let settled = wait_metrics(&sys, Duration::from_secs(25), "a zero lag", |t| sample(t, "sagaway_consumer_lag", &["service=\"orchestrator\"", &replies]) == Some(0.0)).await?;
    assert_eq!(sample(&settled, "sagaway_consumer_lag", &["service=\"orchestrator\"", &replies]), Some(0.0));
    let topic = format!("{}payment.replies", sys.prefix);
    let (stored,): (i64,) = sqlx::query_as("SELECT next_offset FROM consumer_offsets WHERE topic = ? AND part = 0").bind(&topic).fetch_one(&sys.orchestrator_db).await?;
    assert!(stored >= 1, "the order's reply was consumed");
    sqlx::query("UPDATE consumer_offsets SET next_offset = 0 WHERE topic = ?").bind(&topic).execute(&sys.orchestrator_db).await?;
    let behind = wait_metrics(&sys, Duration::from_secs(25), "the lag of a rewound position", |t| {
        sample(t, "sagaway_consumer_lag", &["service=\"orchestrator\"", &replies]).is_some_and(|lag| lag > 0.0)
    })
    .await?;
    assert_eq!(sample(&behind, "sagaway_consumer_lag", &["service=\"orchestrator\"", &replies]), Some(stored as f64), "high watermark − 0");
    sys.stop().await;
    Ok(())
}
