//! `gateway`: a thin wrapper around the library (serves until SIGTERM / Ctrl-C).

use sagaway_common::{http::shutdown_signal, service::cancel_on, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("gateway");
    let config = gateway::Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = gateway::Application::build(config).await?;
            let shutdown = CancellationToken::new();
            cancel_on(shutdown_signal(), shutdown.clone());
            app.run_until_stopped(shutdown).await
        }
        // Nothing to migrate: the gateway has no database. Accepted so the stack treats it like the others.
        Some("migrate") => Ok(()),
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `serve` (default)"),
    }
}
