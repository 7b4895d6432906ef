//! `bank [serve|migrate]`: a thin wrapper around the library.
//!
//! - `serve` (default): the HTTP API, the operation-queue and `bank.commands` consumers, the scheduler.
//! - `migrate`: database schema, topics and the bank's own accounts, then exit.

use sagaway_common::{http::shutdown_signal, service::cancel_on, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("bank");
    let config = bank::Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = bank::Application::build(config).await?;
            let shutdown = CancellationToken::new();
            cancel_on(shutdown_signal(), shutdown.clone());
            app.run_until_stopped(shutdown).await
        }
        Some("migrate") => bank::migrate(&config).await,
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `serve` (default) or `migrate`"),
    }
}
