//! The CDC-fed tantivy index: MariaDB → Debezium (the test's own connector) → indexer → `/findAll`.

use crate::common;

use std::time::Duration;

use common::{Options, scenarios, spawn_app};

/// Acceptance 3 (tantivy): create, update and delete are searchable within 2 s, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_changes_reach_find_all_within_two_seconds() -> anyhow::Result<()> {
    let app = spawn_app(Options::cdc()).await?;
    let latencies = scenarios::crud_is_visible_within(&app, Duration::from_secs(2)).await?;
    println!("tantivy: API change → visible in /findAll: {latencies:?}");
    app.cleanup().await;
    Ok(())
}

/// Acceptance 4 (tantivy): replays never regress a document; reindex equals incremental indexing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_events_never_regress_and_reindex_matches() -> anyhow::Result<()> {
    let app = spawn_app(Options::cdc()).await?;
    scenarios::replays_do_not_regress_and_reindex_matches(&app).await?;
    app.cleanup().await;
    Ok(())
}
