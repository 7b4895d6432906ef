//! Acceptance 5: full-text, filters, sorts, pagination and totals on 10 000 generated products,
//! indexed through the real CDC pipeline, checked against SQL.

use crate::common;

use std::time::Duration;

use common::{Options, scenarios, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_over_ten_thousand_products_agrees_with_sql() -> anyhow::Result<()> {
    let app = spawn_app(Options::cdc()).await?;
    scenarios::generate_catalogue(&app, 10_000, Duration::from_secs(300)).await?;
    scenarios::search_agrees_with_sql(&app, 10_000).await?;
    app.cleanup().await;
    Ok(())
}
