//! The paging convention (`limit`, `cursor` → `{items, next_cursor}`, newest first) on the
//! orchestrator's append-only lists: a user's orders and the DLQ audit log. Pages never overlap,
//! together they hold everything, and a cursor from elsewhere is a 422 naming `cursor`.

use e2e::system::{System, SystemOptions, payment_body};
use reqwest::StatusCode;
use serde_json::Value;

/// Every page of `url` (which already has a query string) at `limit` per page, and the cursors seen.
async fn pages(sys: &System, url: &str, token: &str, limit: u32) -> anyhow::Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = sys.http.get(format!("{url}&limit={limit}")).bearer_auth(token);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: Value = req.send().await?.error_for_status()?.json().await?;
        let ids: Vec<String> = page["items"].as_array().unwrap().iter().map(|o| o["id"].to_string().trim_matches('"').to_string()).collect();
        out.push(ids);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(out),
        }
        anyhow::ensure!(out.len() < 10, "paging does not end: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_and_the_audit_log_page_by_cursor_newest_first() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let user = "pat-pager";
    // Five orders (five products: the duplicate rule is per product and card).
    let mut placed = Vec::new();
    for _ in 0..5 {
        let product = sys.create_product("3.00", 5).await?;
        let r = sys.reserve(product, user, 1).await?;
        let (status, _, body) = sys.post_payment(&payment_body(r["id"].as_str().unwrap(), user, "4242424242424242"), None).await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        placed.push(body["order_id"].as_str().unwrap().to_string());
    }
    placed.reverse(); // newest first

    let token = sys.token(user);
    let url = format!("{}/orders?user_id={user}", sys.orchestrator_url);
    let got = pages(&sys, &url, &token, 2).await?;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1], "{got:?}");
    assert_eq!(got.concat(), placed, "every order once, newest first");
    assert_eq!(pages(&sys, &url, &token, 100).await?, [placed.clone()], "one page when it fits: no cursor");

    // A cursor is the list's own: another list's, or garbage, is refused naming it.
    let audit_url = format!("{}/admin/dlq/audit?", sys.orchestrator_url);
    for _ in 0..3 {
        sys.get_json(format!("{}/admin/dlq", sys.orchestrator_url)).await?; // each listing is audited
    }
    let admin = sys.admin_token("e2e-admin");
    let audit = pages(&sys, &audit_url, &admin, 2).await?;
    let entries = audit.concat();
    assert!(entries.len() >= 3 && audit.iter().all(|p| p.len() <= 2), "{audit:?}");
    let ids: Vec<u64> = entries.iter().map(|i| i.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats: {ids:?}");

    let first: Value = sys.get_json(format!("{audit_url}limit=1")).await?;
    let audit_cursor = first["next_cursor"].as_str().unwrap().to_string();
    for bad in [audit_cursor.as_str(), "not-a-cursor"] {
        let res = sys.http.get(&url).query(&[("cursor", bad)]).bearer_auth(&token).send().await?;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: Value = res.json().await?;
        assert_eq!(problem["field"], "cursor", "{problem}");
    }
    let res = sys.http.get(format!("{url}&limit=101")).bearer_auth(&token).send().await?;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    Ok(())
}
