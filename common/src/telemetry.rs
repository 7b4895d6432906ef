//! Structured logs. Every service logs JSON lines to stdout; `RUST_LOG` filters (default `info`).

use tracing_subscriber::{EnvFilter, fmt};

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
