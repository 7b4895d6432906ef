//! The HTTP limit: a trivial axum handler in this process (port 0), driven by the same client and
//! closed model as the scenarios (kept apart from the database measurement: no module mixes sqlx
//! and axum).

use std::{sync::Arc, time::Duration};

use super::HttpLimit;
use crate::{
    api,
    driver::{self, Model, Window},
    stats::Stats,
};

pub(super) async fn limit(concurrency: usize, duration: Duration) -> anyhow::Result<HttpLimit> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = api::client(Duration::from_secs(10));
    let url = Arc::new(format!("http://{addr}/"));
    let stats = Stats::new();
    let window = Window { duration, warmup: Duration::from_millis(500).min(duration / 4), max_inflight: 100_000, drain: Duration::from_secs(10) };
    let driven = {
        let stats = stats.clone();
        driver::run(Model::Closed { concurrency }, window, stats.clone(), move |op| {
            let (client, url, stats) = (client.clone(), url.clone(), stats.clone());
            async move {
                match client.get(url.as_str()).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        if op.measured {
                            stats.record("request", op.scheduled.elapsed());
                        }
                        true
                    }
                    Ok(r) => {
                        stats.error(format!("GET / {}", r.status().as_u16()));
                        false
                    }
                    Err(e) => {
                        stats.error(api::error_key("GET /", &e));
                        false
                    }
                }
            }
        })
        .await
    };
    server.abort();
    let latency = stats.latency("request");
    let r = HttpLimit { concurrency, requests_per_s: latency.count as f64 / driven.measured_secs, latency, errors: stats.errors() };
    eprintln!("[limits] http (axum, trivial handler) concurrency {concurrency}: {:.0} requests/s ({})", r.requests_per_s, r.latency.line());
    Ok(r)
}
