//! The `search` scenario: a mix of `/findAll` queries (text, category and price filters, stock
//! filter, every sort, several pages) against the CDC-fed index. Optionally grows the catalogue
//! first (`--catalogue N` products through `POST /products`) and waits until the index shows them.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use serde::Serialize;

use crate::{
    api::{self, Api},
    driver::{self, Driven, Model, Window},
    stats::{self, Latency, Stats},
};

const WORDS: &[&str] = &[
    "wireless", "speaker", "keyboard", "lamp", "knife", "tent", "rust", "kafka", "mat", "bottle", "monitor", "candle",
    "coffee", "steel", "portable", "cotton", "carbon", "ceramic", "led", "walnut",
];
const CATEGORIES: &[&str] = &["audio", "computers", "home", "kitchen", "outdoors", "books", "toys", "fitness"];
const SORTS: &[&str] = &["relevance", "price_asc", "price_desc", "newest"];

/// The query string of operation `seq` (deterministic, evenly mixed).
pub fn query(seq: u64) -> String {
    let i = seq as usize;
    let w = WORDS[(i * 7) % WORDS.len()];
    let c = CATEGORIES[(i * 3) % CATEGORIES.len()];
    let s = SORTS[(i / 5) % SORTS.len()];
    let page = 1 + (i / 3) % 5;
    match i % 5 {
        0 => format!("q={w}&sort={s}"),
        1 => format!("category={c}&sort={s}&page={page}&per_page=10"),
        2 => format!("min_price=10&max_price={}&in_stock=true&sort={s}", 50 + (i % 10) * 40),
        3 => format!("q={w}&category={c}&min_price=5&sort=price_asc&per_page=20"),
        _ => format!("sort=newest&page={page}&per_page=50"),
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub model: Model,
    pub catalogue_added: usize,
    pub driven: Driven,
    pub queries_per_s: f64,
    pub latency: BTreeMap<String, Latency>,
    pub errors: BTreeMap<String, u64>,
}

pub async fn run(api: Api, model: Model, window: Window, catalogue: usize) -> anyhow::Result<Report> {
    api.check_ready(&["product"]).await?;
    let seeded = api.http.post(format!("{}/", api.product)).send().await?.status();
    anyhow::ensure!(seeded.is_success(), "POST / (seed) answered {seeded}");
    if catalogue > 0 {
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        eprintln!("[search] adding {catalogue} products and waiting for the index to show them");
        let (_, before) = api.find_all("category=loadgensearch&per_page=1").await?;
        let before = before["total"].as_u64().unwrap_or(0);
        let made: Vec<anyhow::Result<u64>> = stream::iter(0..catalogue)
            .map(|k| {
                let api = api.clone();
                let name = format!("{} {} {}", WORDS[k % WORDS.len()], WORDS[(k / 3 + 5) % WORDS.len()], run_id);
                let description = format!("{} with {} finish, model {k}", WORDS[(k * 11) % WORDS.len()], WORDS[(k * 13 + 1) % WORDS.len()]);
                let price = format!("{}.{:02}", 3 + (k * 7919) % 497, k % 100);
                let category = if k % 2 == 0 { "loadgensearch" } else { CATEGORIES[k % CATEGORIES.len()] };
                async move { api.create_product(&name, &description, category, &price, (k % 50) as i64).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for m in made {
            m?;
        }
        let want = before + catalogue.div_ceil(2) as u64;
        // CDC indexes a large catalogue at some thousands of changes a second: give it time to.
        let allowed = Duration::from_secs(120) + Duration::from_millis(2 * catalogue as u64);
        let deadline = Instant::now() + allowed;
        loop {
            let (_, v) = api.find_all("category=loadgensearch&per_page=1").await?;
            if v["total"].as_u64().unwrap_or(0) >= want {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the index did not show the new products within {allowed:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let stats = Stats::new();
    let progress = stats::progress(stats.clone(), "search".into(), "search");
    let driven = {
        let (api, stats) = (api.clone(), stats.clone());
        driver::run(model, window, stats.clone(), move |op| {
            let (api, stats) = (api.clone(), stats.clone());
            async move {
                match api.find_all(&query(op.seq)).await {
                    Ok((200, _)) => {
                        if op.measured {
                            stats.record("search", op.scheduled.elapsed());
                        }
                        true
                    }
                    Ok((status, _)) => {
                        stats.error(format!("findAll {status}"));
                        false
                    }
                    Err(e) => {
                        stats.error(api::error_key("findAll", &e));
                        false
                    }
                }
            }
        })
        .await
    };
    progress.abort();
    let latency = stats.latencies();
    let queries_per_s = latency.get("search").map_or(0, |l| l.count) as f64 / driven.measured_secs.max(1e-9);
    Ok(Report { scenario: "search", model, catalogue_added: catalogue, driven, queries_per_s, latency, errors: stats.errors() })
}
