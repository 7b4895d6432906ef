//! `product [serve|migrate|reindex]`: a thin wrapper around the library.
//!
//! - `serve` (default): the HTTP API, the saga command consumer, the CDC indexer and the expiry job.
//! - `migrate`: database schema and topics, then exit.
//! - `reindex [--url <URL>] [--token <JWT>]`: asks the running service to rebuild its search index
//!   from the CDC topic, as an admin (the token: `--token` or `SAGAWAY_TOKEN`;
//!   [`product::reindex_command`]).

use sagaway_common::{http::shutdown_signal, service::cancel_on, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("product");
    let config = product::Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = product::Application::build(config).await?;
            let shutdown = CancellationToken::new();
            cancel_on(shutdown_signal(), shutdown.clone());
            app.run_until_stopped(shutdown).await
        }
        Some("migrate") => product::migrate(&config).await,
        Some("reindex") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            let own = product::reindex_command::own_url(&config.common.http_host, config.common.http_port);
            let cmd = product::reindex_command::parse(&args, std::env::var("SAGAWAY_TOKEN").ok(), &own).map_err(anyhow::Error::msg)?;
            println!("{}", product::reindex_command::run(&cmd).await?);
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `serve` (default), `migrate` or `reindex`"),
    }
}
