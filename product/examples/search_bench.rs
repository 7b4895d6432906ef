//! `/findAll` latency at scale (a benchmark, not a test): loads N generated products through the
//! real pipeline (SQL → Debezium → indexer), then times a mix of searches over HTTP, one at a time.
//!
//! ```sh
//! CARGO_TARGET_DIR=~/.cache/sagaway/target cargo run --release -p product --example search_bench -- 100000 2000
//! ```
//! Arguments: products (default 100000), queries (default 2000), and `direct` to load the index
//! straight from generated documents instead of through SQL + Debezium (the local broker makes CDC
//! bulk loads slow: ~100–400 rows/s under shared load), then optionally parameters added to every
//! query of the mix (`facets=true`). Needs the stack (`scripts/stack up --infra`).
//! Results go into docs/benchmarks.md ("Search").

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Options, scenarios, spawn_app};

const MIX: &[&str] = &[
    "q=crimson",
    "q=golden+kettle&sort=price_asc",
    "category=garden&in_stock=true&sort=newest",
    "min_price=10&max_price=50&sort=price_desc",
    "per_page=20",
    "q=walnut&category=kitchen&page=3",
    "q=lantern&min_price=100&in_stock=true&sort=relevance",
    "category=music&sort=price_asc&page=10&per_page=50",
];

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let products: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let queries: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);

    let direct = args.next().as_deref() == Some("direct");
    let extra = args.next().unwrap_or_default();
    let with_extra = |q: &str| if extra.is_empty() { q.to_string() } else { format!("{q}&{extra}") };

    let app = spawn_app(Options { cdc: !direct, ..Options::default() }).await?;
    let loaded = if direct {
        let started = Instant::now();
        for start in (0..products).step_by(10_000) {
            let changes = (start..(start + 10_000).min(products))
                .map(|i| {
                    let g = scenarios::generated(i);
                    let created = chrono::DateTime::from_timestamp(1_767_225_600 + i as i64, 0).unwrap();
                    let doc = product::search::ProductDoc {
                        id: i as u64 + 1,
                        name: g.name,
                        description: g.description,
                        category: g.category,
                        price: g.price,
                        stock: g.stock as i64,
                        created_at_micros: created.timestamp_micros(),
                        created_at: created.to_rfc3339(),
                    };
                    product::search::Change::Upsert { doc, version: 1 }
                })
                .collect();
            app.search.apply(changes).await?;
        }
        started.elapsed()
    } else {
        scenarios::generate_catalogue(&app, products, Duration::from_secs(3600)).await?
    };
    anyhow::ensure!(app.find_all("per_page=1").await?["total"].as_u64() == Some(products as u64), "index incomplete");

    // Warm up caches, then time.
    for q in MIX {
        app.find_all(&with_extra(q)).await?;
    }
    let mut all = Vec::with_capacity(queries);
    let mut per_query: Vec<Vec<Duration>> = vec![Vec::new(); MIX.len()];
    for i in 0..queries {
        let q = with_extra(MIX[i % MIX.len()]);
        let t = Instant::now();
        let body = app.find_all(&q).await?;
        let took = t.elapsed();
        anyhow::ensure!(body["total"].as_u64().is_some(), "{q}: {body}");
        all.push(took);
        per_query[i % MIX.len()].push(took);
    }
    all.sort();
    let how = if direct { "straight into the index" } else { "via SQL + Debezium + indexer" };
    println!("products: {products}; loaded {how} in {loaded:.1?}");
    println!("queries: {queries} sequential over HTTP (tantivy backend){}", if extra.is_empty() { String::new() } else { format!(", each with &{extra}") });
    println!("all: p50 {:.2?}  p99 {:.2?}  max {:.2?}", pct(&all, 0.50), pct(&all, 0.99), all[all.len() - 1]);
    for (q, mut times) in MIX.iter().zip(per_query) {
        times.sort();
        println!("  {q:<55} p50 {:.2?}  p99 {:.2?}", pct(&times, 0.50), pct(&times, 0.99));
    }
    app.cleanup().await;
    Ok(())
}
