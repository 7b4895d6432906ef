//! The `cdc-lag` scenario: change a product through the API (`PATCH /products/{id}` with a new,
//! unique word in its name) and poll `/findAll?q=<word>` until the index returns it. The lag is
//! measured from the moment the PATCH was sent (so it includes the PATCH itself: an upper bound of
//! commit → searchable) to the first poll that sees the change; its resolution is the poll interval.
//!
//! The path measured: MariaDB commit → binlog → Debezium (Kafka Connect, `poll.interval.ms`) →
//! broker → the product service's indexer (consumer `fetch.wait.max.ms`) → tantivy commit + reload.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use serde::Serialize;
use serde_json::json;

use crate::{
    api::{self, Api},
    driver::{self, Driven, Model, Window},
    stats::{self, Latency, Stats},
};

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub model: Model,
    pub products: usize,
    pub poll_interval_ms: u64,
    pub visibility_timeout_s: u64,
    pub driven: Driven,
    /// patch: PATCH /products/{id} answered; visible: PATCH sent → first /findAll that returns the change.
    pub latency: BTreeMap<String, Latency>,
    pub errors: BTreeMap<String, u64>,
}

pub async fn run(api: Api, model: Model, window: Window, products: usize, poll: Duration, timeout: Duration) -> anyhow::Result<Report> {
    api.check_ready(&["product"]).await?;
    if let Model::Open { rate } = model {
        // A product is patched again only after products / rate seconds; an earlier probe of it must be done by then.
        anyhow::ensure!(
            products as f64 / rate > timeout.as_secs_f64(),
            "--products {products} at --rate {rate}/s reuses a product every {:.1} s, sooner than --timeout {} s",
            products as f64 / rate,
            timeout.as_secs()
        );
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    eprintln!("[cdc-lag] run {run_id}: creating {products} products");
    let ids: Vec<u64> = stream::iter(0..products)
        .map(|k| {
            let api = api.clone();
            let name = format!("cdcprobe {run_id} {k}");
            async move { api.create_product(&name, "cdc lag probe", "loadgencdc", "1.00", 1).await }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    let stats = Stats::new();
    let progress = stats::progress(stats.clone(), "cdc-lag".into(), "visible");
    let driven = {
        let (api, stats, ids) = (api.clone(), stats.clone(), std::sync::Arc::new(ids));
        driver::run(model, window, stats.clone(), move |op| {
            let (api, stats, ids, run_id) = (api.clone(), stats.clone(), ids.clone(), run_id.clone());
            async move {
                let id = ids[(op.seq as usize) % ids.len()];
                let word = format!("cdc{run_id}v{}", op.seq);
                let sent = Instant::now();
                let r = api
                    .http
                    .patch(format!("{}/products/{id}", api.product))
                    .json(&json!({"name": format!("cdcprobe {word}")}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        stats.error(format!("patch {}", r.status().as_u16()));
                        return false;
                    }
                    Err(e) => {
                        stats.error(api::error_key("patch", &e));
                        return false;
                    }
                }
                if op.measured {
                    stats.record("patch", sent.elapsed());
                }
                let deadline = sent + timeout;
                loop {
                    match api.find_all(&format!("q={word}&per_page=5")).await {
                        Ok((200, v)) => {
                            let seen = v["items"].as_array().is_some_and(|items| items.iter().any(|i| i["id"].as_u64() == Some(id)));
                            if seen {
                                if op.measured {
                                    stats.record("visible", sent.elapsed());
                                }
                                return true;
                            }
                        }
                        Ok((status, _)) => stats.error(format!("findAll {status}")),
                        Err(e) => stats.error(api::error_key("findAll", &e)),
                    }
                    if Instant::now() >= deadline {
                        stats.error("not visible before the timeout");
                        return false;
                    }
                    tokio::time::sleep(poll).await;
                }
            }
        })
        .await
    };
    progress.abort();
    Ok(Report {
        scenario: "cdc-lag",
        model,
        products,
        poll_interval_ms: poll.as_millis() as u64,
        visibility_timeout_s: timeout.as_secs(),
        driven,
        latency: stats.latencies(),
        errors: stats.errors(),
    })
}
