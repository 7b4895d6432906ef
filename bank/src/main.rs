//! `bank [serve|migrate]`: a thin wrapper around the library.
//!
//! - `serve` (default): the HTTP API, the operation-queue and `bank.commands` consumers, the scheduler.
//! - `migrate`: database schema, topics and the bank's own accounts, then exit.
//! - `keygen <file>`: writes a fresh signing key (base64 seed) to `<file>` unless it exists, and
//!   prints its public key — the third field of the bank's line in the directory file.
//! - `settle-leg <tx_id> <leg> commit|abort`: an operator settles a leg held here of a transfer
//!   whose coordinator lost its record (answered `transfer_lost`; docs/operations.md,
//!   SagawayBankTransferLost), after finding out from the other banks what its other legs did.

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
        Some("settle-leg") => {
            let usage = || anyhow::anyhow!("usage: bank settle-leg <tx_id> <leg> commit|abort");
            let args: Vec<String> = std::env::args().skip(2).collect();
            let [tx_id, leg, decision] = args.as_slice() else { return Err(usage()) };
            let leg: usize = leg.parse().map_err(|_| usage())?;
            let decision = match decision.as_str() {
                "commit" => bank::rules::interbank::Decision::Commit,
                "abort" => bank::rules::interbank::Decision::Abort,
                _ => return Err(usage()),
            };
            let pool = sagaway_messaging::db::connect_and_migrate(&config.common.database_url, 2, &bank::MIGRATOR).await?;
            println!("{}", bank::interbank::participant::settle_lost(&pool, &config, tx_id, leg, decision).await?);
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `serve` (default), `migrate`, `keygen <file>` or `settle-leg <tx_id> <leg> commit|abort`"),
    }
}
