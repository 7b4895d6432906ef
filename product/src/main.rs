//! `product [serve|migrate|reindex]`: a thin wrapper around the library.
//!
//! - `serve` (default): the HTTP API, the saga command consumer, the CDC indexer and the expiry job.
//! - `migrate`: database schema and topics, then exit.
//! - `reindex`: asks the running service to rebuild its search index from the CDC topic.

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
            let url = format!("http://{}:{}/admin/reindex", config.common.http_host, config.common.http_port);
            let res = reqwest::Client::new().post(&url).send().await?;
            let status = res.status();
            println!("{}", res.text().await?);
            anyhow::ensure!(status.is_success(), "reindex failed with HTTP {status}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `serve` (default), `migrate` or `reindex`"),
    }
}
