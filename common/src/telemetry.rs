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

/// Installs the global subscriber: JSON log lines filtered by `RUST_LOG`, and trace spans
/// ([`sagaway_messaging::trace`]). Safe to call more than once (later calls are ignored), so tests that start
/// several apps in one process can call it freely.
pub fn init(service: &'static str) {
    init_with_default(service, "info,sqlx=warn,rdkafka=warn")
}

/// [`init`] with another log filter when `RUST_LOG` is unset (test processes log warnings only).
pub fn init_with_default(service: &'static str, default_filter: &str) {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // The `request` and `message` spans carry the trace context from hop to hop: they stay on when
    // the filter is quieter than info (and with them the info lines of the plumbing crates).
    // One global filter, not one per layer: per-layer filters lost the span of some log lines.
    if filter.max_level_hint().is_some_and(|max| max < tracing::level_filters::LevelFilter::INFO) {
        for plumbing in ["sagaway_common=info", "sagaway_messaging=info"] {
            filter = filter.add_directive(plumbing.parse().expect("a static directive"));
        }
    }
    let logs = fmt::layer().json().flatten_event(true).with_current_span(false);
    let spans = tracing_opentelemetry::layer().with_tracer(sagaway_messaging::trace::tracer(service));
    let installed = tracing_subscriber::registry().with(filter).with(logs).with(spans).try_init();
    if installed.is_ok() {
        tracing::info!(service, exporting_traces = sagaway_messaging::trace::exporting(), "logging initialised");
    }
}
