//! `orchestrator [serve|migrate]`: a thin wrapper around the library. (The dead-letter CLI that
//! was `orchestrator dlq ...` is now `sagaway dlq ...`, crate `sagaway-cli`.)

use sagaway_common::{http::shutdown_signal, service::cancel_on, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("dlq") {
        eprintln!("the dead-letter CLI has moved: run `sagaway dlq ...` (crate sagaway-cli; docs/dlq-runbook.md)");
        std::process::exit(2);
    }
    telemetry::init("orchestrator");
    let config = orchestrator::Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = orchestrator::Application::build(config).await?;
            let shutdown = CancellationToken::new();
            cancel_on(shutdown_signal(), shutdown.clone());
            app.run_until_stopped(shutdown).await
        }
        Some("migrate") => orchestrator::migrate(&config).await,
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `serve` (default) or `migrate`"),
    }
}
