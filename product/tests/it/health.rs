//! `/health/ready` answers a status per dependency and nothing else (the detail of a failure is
//! logged; common/src/http.rs tests the not-ready side without a stack).

use crate::common;

use common::{Options, spawn_app};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_each_dependency_up() -> anyhow::Result<()> {
    let app = spawn_app(Options::default()).await?;
    let (status, body) = app.get_json("/health/ready").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"service": "product", "status": "ready", "checks": {"database": "up", "broker": "up"}}));
    let (status, body) = app.get_json("/health/live").await?;
    assert_eq!((status, body), (200, json!({"status": "live"})));
    app.cleanup().await;
    Ok(())
}
