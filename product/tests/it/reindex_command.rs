//! `product reindex` against a running product service (this test's, in process, with its own
//! Debezium connector): the command sends an admin's token (`--token` or `SAGAWAY_TOKEN`) and the
//! index is rebuilt from the CDC topic; without a token it refuses before sending anything, and a
//! shopper's token is refused by the service (403), each with a message that says so.

use crate::common;

use std::{process::Command, time::Duration};

use common::{Options, poll_until, spawn_app};
use serde_json::{Value, json};

/// Runs the `product` binary with `args` (and `SAGAWAY_TOKEN` = `env_token` when given):
/// (success, stdout, stderr).
fn product(args: &[&str], env_token: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_product"));
    cmd.args(args).env_remove("SAGAWAY_TOKEN").env("RUST_LOG", "warn");
    if let Some(t) = env_token {
        cmd.env("SAGAWAY_TOKEN", t);
    }
    let out = cmd.output().expect("the product binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The report: the last line of stdout that parses as JSON.
fn report(stdout: &str) -> Value {
    stdout.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v.get("events").is_some())).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_reindex_sends_an_admins_token_and_rebuilds_the_index() -> anyhow::Result<()> {
    let app = spawn_app(Options::cdc()).await?;
    let url = app.address.clone();
    let (status, created) = app.post_json("/products", &json!({"name": "Reindexed Kettle", "price": "12.00", "stock": 3})).await?;
    assert_eq!(status, 201, "{created}");
    poll_until(Duration::from_secs(30), || async { app.find_all("q=Reindexed").await.ok().filter(|b| b["total"] == json!(1)).map(|_| ()) }).await?;

    // No token: refused before anything is sent, naming both ways to give one.
    let (ok, _, err) = product(&["reindex", "--url", &url], None);
    assert!(!ok, "reindex without a token succeeded");
    assert!(err.contains("--token") && err.contains("SAGAWAY_TOKEN"), "{err}");

    // A shopper's token: the service answers 403, and the command says so.
    let shopper = app.issuer.token("not-an-admin");
    let (ok, _, err) = product(&["reindex", "--url", &url, "--token", &shopper], None);
    assert!(!ok);
    assert!(err.contains("403"), "{err}");

    // An admin's token, from the environment and from the flag: the index is rebuilt from the topic.
    let admin = app.issuer.admin_token("ops");
    for (args, env) in [(vec!["reindex", "--url", url.as_str()], Some(admin.as_str())), (vec!["reindex", "--url", url.as_str(), "--token", admin.as_str()], None)] {
        let (ok, out, err) = product(&args, env);
        assert!(ok, "reindex failed: {out}{err}");
        let r = report(&out);
        assert!(r["events"].as_u64().is_some_and(|n| n >= 1) && r["upserted"].as_u64().is_some_and(|n| n >= 1), "the report: {out}");
        let found = app.find_all("q=Reindexed").await?;
        assert_eq!(found["total"], json!(1), "the product is searchable after the rebuild: {found}");
    }
    app.cleanup().await;
    Ok(())
}
