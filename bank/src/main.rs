//! `bank [serve|migrate]`: a thin wrapper around the library.
//!
//! - `serve` (default): the HTTP API, the operation-queue and `bank.commands` consumers, the scheduler.
//! - `migrate`: database schema, topics and the bank's own accounts, then exit.
//! - `keygen <file>`: writes a fresh signing key (base64 seed) to `<file>` unless it exists, and
//!   prints its public key — the third field of the bank's line in the directory file.

use sagaway_common::{http::shutdown_signal, service::cancel_on, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("keygen") {
        let path = std::env::args().nth(2).ok_or_else(|| anyhow::anyhow!("usage: bank keygen <file>"))?;
        println!("{}", bank::keygen(std::path::Path::new(&path))?);
        return Ok(());
    }
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
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `serve` (default), `migrate` or `keygen <file>`"),
    }
}
