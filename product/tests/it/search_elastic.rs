//! The Elasticsearch backend, against noida-db 0.2.3 (an Elasticsearch 8.15 emulator, started once
//! for this test binary; `scripts/install-noida` installs it), fed by the same CDC pipeline.
//! Without noida-db the tests fail, saying how to install it.

use crate::common;

use std::time::Duration;

use common::{Options, noida_url, scenarios, spawn_app};

fn es_url() -> String {
    noida_url().expect("noida-db is not installed: run scripts/install-noida (scripts/test does)")
}

/// Acceptance 3 (Elasticsearch): create, update and delete are searchable within 2 s, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_catalogue_changes_reach_find_all_within_two_seconds() -> anyhow::Result<()> {
    let app = spawn_app(Options::elastic(&es_url())).await?;
    let latencies = scenarios::crud_is_visible_within(&app, Duration::from_secs(2)).await?;
    println!("elasticsearch (noida-db): API change → visible in /findAll: {latencies:?}");
    app.cleanup().await;
    Ok(())
}

/// Acceptance 4 (Elasticsearch): replays — including a second indexer group writing the same
/// index — never regress a document; reindex (drop + recreate + replay) equals incremental indexing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_replayed_events_never_regress_and_reindex_matches() -> anyhow::Result<()> {
    let app = spawn_app(Options::elastic(&es_url())).await?;
    scenarios::replays_do_not_regress_and_reindex_matches(&app).await?;
    app.cleanup().await;
    Ok(())
}

/// Acceptance 5's checks on a smaller catalogue (noida-db scans: ~178 ms per query at 10k docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_search_agrees_with_sql() -> anyhow::Result<()> {
    let app = spawn_app(Options::elastic(&es_url())).await?;
    scenarios::generate_catalogue(&app, 2_400, Duration::from_secs(120)).await?;
    scenarios::search_agrees_with_sql(&app, 2_400).await?;
    app.cleanup().await;
    Ok(())
}
