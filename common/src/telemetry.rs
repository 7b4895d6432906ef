//! Structured logs, and the loop that keeps database-backed gauges fresh.
//!
//! Every service logs JSON lines to stdout; `RUST_LOG` filters (default `info`). Metrics are
//! exported at `/metrics` ([`crate::http::metrics_handle`]); gauges that describe a table (dead
//! letters waiting, transfers in doubt) are re-read by [`sample_every`].

use std::{future::Future, time::Duration};

use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, fmt};

/// How often database-backed gauges are re-read: cheap (one indexed COUNT each), and well inside
/// the minutes an alert waits before firing.
pub const GAUGE_SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Runs `sample` at once and then every `every` until `shutdown`.
pub async fn sample_every<F, Fut>(every: Duration, shutdown: CancellationToken, mut sample: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => sample().await,
        }
    }
}

/// Installs the global JSON subscriber. Safe to call more than once (later calls are ignored), so
/// tests that start several apps in one process can call it freely.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn"));
    let installed = fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .try_init();
    if installed.is_ok() {
        tracing::info!(service, "logging initialised");
    }
}
