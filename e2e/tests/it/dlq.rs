//! Dead letters end to end (issue 5): the payment processor dead-letters after its retry budget,
//! the orchestrator records `payment_dlq` and operators list, show, replay, abandon and purge them
//! over the admin API and the `sagaway dlq` CLI (crate sagaway-cli). Real MariaDB and broker, fresh databases and
//! topics per test, small retry budgets.

use std::time::{Duration, Instant};

use e2e::system::{System, SystemOptions, settled, statuses};
use futures::future::join_all;
use rdkafka::producer::FutureRecord;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(60);
const VISA: &str = "4242424242424242";
const ALWAYS_FAILS: &str = "4000000000000119";


async fn set_outage(sys: &System, enabled: bool) -> anyhow::Result<()> {
    let res = sys.http.post(format!("{}/admin/outage", sys.payment_url)).bearer_auth(sys.admin_token("e2e")).json(&json!({"enabled": enabled})).send().await?;
    anyhow::ensure!(res.status() == StatusCode::OK, "outage switch: {}", res.status());
    Ok(())
}

/// `GET /admin/dlq?query` → (status, body).
async fn dlq_get(sys: &System, path_and_query: &str) -> anyhow::Result<(StatusCode, Value)> {
    let res = sys.http.get(format!("{}/admin/dlq{path_and_query}", sys.orchestrator_url)).bearer_auth(sys.admin_token("e2e")).send().await?;
    let status = res.status();
    Ok((status, res.json().await?))
}

/// `POST /admin/dlq/{op}` as `operator`.
async fn dlq_post(sys: &System, op: &str, operator: &str, body: Value) -> anyhow::Result<Value> {
    let res = sys.http.post(format!("{}/admin/dlq/{op}", sys.orchestrator_url)).bearer_auth(sys.admin_token(operator)).json(&body).send().await?;
    anyhow::ensure!(res.status() == StatusCode::OK, "{op}: {} {}", res.status(), res.text().await?);
    Ok(res.json().await?)
}

/// Polls `GET /admin/dlq?query` until it reports `n` dead letters.
async fn wait_dead_letters(sys: &System, query: &str, n: i64) -> anyhow::Result<Value> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let (status, page) = dlq_get(sys, query).await?;
        assert_eq!(status, StatusCode::OK, "{page}");
        if page["total"] == n {
            return Ok(page);
        }
        anyhow::ensure!(Instant::now() < deadline, "expected {n} dead letters for {query:?}; have {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reservation_status(sys: &System, rid: &str) -> anyhow::Result<String> {
    Ok(sys.get_json(format!("{}/reservations/{rid}", sys.product_url)).await?["status"].as_str().unwrap_or_default().to_string())
}

async fn charge_attempts(sys: &System, order_id: &str) -> anyhow::Result<Vec<(u32, u32, String)>> {
    Ok(sqlx::query_as("SELECT round, attempt, outcome FROM charge_attempts WHERE order_id = ? ORDER BY id")
        .bind(order_id)
        .fetch_all(&sys.payment_db)
        .await?)
}

async fn captured_total(sys: &System) -> anyhow::Result<String> {
    let ledger = sys.get_json(format!("{}/ledger/summary", sys.payment_url)).await?;
    assert_eq!(ledger["balanced"], true, "{ledger}");
    Ok(ledger["captured_total"].as_str().unwrap_or_default().to_string())
}

async fn audit_of(sys: &System, dead_letter_id: u64) -> anyhow::Result<Vec<Value>> {
    let page = sys.get_json(format!("{}/admin/dlq/audit?dead_letter_id={dead_letter_id}", sys.orchestrator_url)).await?;
    assert!(page["next_cursor"].is_null(), "one page holds a dead letter's trail");
    let mut entries = page["items"].as_array().unwrap().clone();
    entries.reverse(); // oldest first
    Ok(entries)
}

fn topic_dump(sys: &System, logical: &str) -> anyhow::Result<String> {
    e2e::dump_topic(&e2e::StackAddr::from_env().brokers(), &format!("{}{logical}", sys.prefix))
}

/// Puts a raw record on a topic, bypassing every service (as a buggy or hostile producer would).
async fn produce_raw(sys: &System, logical: &str, key: &str, payload: &str) -> anyhow::Result<()> {
    let producer = sagaway_messaging::kafka::producer(&e2e::StackAddr::from_env().brokers())?;
    let topic = format!("{}{logical}", sys.prefix);
    producer
        .send(FutureRecord::to(&topic).key(key).payload(payload), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    Ok(())
}

/// `sagaway dlq --url … --token <operator's admin token> <rest>` as an argv for [`sagaway_cli::run`].
fn cli(sys: &System, operator: &str, rest: &str) -> Vec<String> {
    let mut args = vec!["sagaway".to_string(), "dlq".into(), "--url".into(), sys.orchestrator_url.clone(), "--token".into(), sys.admin_token(operator)];
    args.extend(rest.split_whitespace().map(str::to_string));
    args
}

/// Outage on → 4242 dead-letters after the budget with every header, FAILED, hold kept, nothing
/// charged. Outage off → replay → COMPLETED, charged once; replay again → recorded no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_dead_letters_then_replay_completes_once_and_a_second_replay_is_a_recorded_noop() -> anyhow::Result<()> {
    let budget = 3;
    let sys = System::spawn(SystemOptions { max_attempts: budget, ..Default::default() }).await?;
    let product = sys.create_product("12.50", 10).await?;
    set_outage(&sys, true).await?;
    let (order_id, rid) = sys.pay(product, "outage-user", VISA).await?;
    let order = sys.wait_order(&order_id, WITHIN, settled).await?;
    assert_eq!(order["status"], "FAILED", "{order}");
    assert!(order["reason"].as_str().unwrap().contains("after 3 attempts"), "{order}");
    assert_eq!(reservation_status(&sys, &rid).await?, "HELD", "a parked order keeps its hold");
    assert_eq!(sys.stock(product).await?, 8);
    assert_eq!(captured_total(&sys).await?, "0.00", "nothing charged during the outage");
    let attempts = charge_attempts(&sys, &order_id).await?;
    assert_eq!(attempts.len(), budget as usize, "{attempts:?}");
    assert!(attempts.iter().all(|(round, _, outcome)| *round == 1 && outcome == "transient"));

    // Exactly one record on payment_dlq for the order, with every header.
    let page = wait_dead_letters(&sys, &format!("?order_id={order_id}"), 1).await?;
    let dump = topic_dump(&sys, "payment_dlq")?;
    let lines: Vec<&str> = dump.lines().filter(|l| l.contains(&order_id)).collect();
    assert_eq!(lines.len(), 1, "one dead letter on the topic: {dump}");
    let header = |name: &str| {
        lines[0].split('|').find_map(|h| h.strip_prefix(&format!("{name}="))).unwrap_or_else(|| panic!("header {name} missing: {}", lines[0])).to_string()
    };
    assert_eq!(header("dlq.original.topic"), format!("{}payment.commands", sys.prefix));
    assert!(header("dlq.original.partition").parse::<i32>().is_ok());
    assert!(header("dlq.original.offset").parse::<i64>().is_ok());
    assert_eq!(header("dlq.original.key"), "outage-user");
    assert!(!header("dlq.original.message_id").is_empty());
    assert_eq!(header("dlq.attempts"), budget.to_string());
    assert_eq!(header("dlq.error.class"), "processing_error");
    assert!(header("dlq.error.message").contains("acquirer_unavailable"));
    let first: chrono_like::Stamp = header("dlq.first_failure").parse()?;
    let last: chrono_like::Stamp = header("dlq.last_failure").parse()?;
    assert!(first <= last, "first failure {first:?} after last {last:?}");
    assert_eq!(header("dlq.service"), "payment");

    // The recorded dead letter says the same.
    let dl = &page["items"][0];
    let id = dl["id"].as_u64().unwrap();
    assert_eq!((dl["status"].as_str(), dl["attempts"].as_i64(), dl["service"].as_str()), (Some("PENDING"), Some(3), Some("payment")));
    assert_eq!(dl["original_key"], "outage-user");
    assert_eq!(dl["message_type"], "charge");

    set_outage(&sys, false).await?;
    let started = Instant::now();
    let replay = dlq_post(&sys, "replay", "alice", json!({"ids": [id]})).await?;
    assert_eq!(replay["outcomes"][0]["outcome"], "replayed", "{replay}");
    let order = sys.wait_order(&order_id, WITHIN, |o| o["status"] == "COMPLETED").await?;
    println!("replay → COMPLETED in {:?}", started.elapsed());
    assert_eq!(
        statuses(&order),
        ["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "FAILED", "PAYMENT_PENDING", "PAID", "COMPLETED"],
        "{order}"
    );
    assert_eq!(order["history"][4]["reason"], format!("replay of dead letter {id}"));
    assert_eq!(reservation_status(&sys, &rid).await?, "CONFIRMED");
    assert_eq!(captured_total(&sys).await?, "25.00", "charged once");
    let attempts = charge_attempts(&sys, &order_id).await?;
    assert_eq!(attempts.last().unwrap(), &(2, 1, "approved".to_string()), "a fresh budget: round 2, attempt 1: {attempts:?}");

    // The replayed command went back to the original topic with the key, the marker and no attempt header.
    let commands = topic_dump(&sys, "payment.commands")?;
    let replayed: Vec<&str> = commands.lines().filter(|l| l.contains(&format!("dlq.replay_of={id}"))).collect();
    assert_eq!(replayed.len(), 1, "{commands}");
    assert!(replayed[0].starts_with("outage-user|"), "original key kept: {}", replayed[0]);
    assert!(!replayed[0].contains("retry.attempt"), "fresh attempt budget: {}", replayed[0]);

    // A second replay is a recorded no-op, and nothing more is charged.
    let again = dlq_post(&sys, "replay", "bob", json!({"ids": [id]})).await?;
    assert_eq!(again["outcomes"][0]["outcome"], "skipped", "{again}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(captured_total(&sys).await?, "25.00", "still charged once");
    assert_eq!(charge_attempts(&sys, &order_id).await?.iter().filter(|a| a.2 == "approved").count(), 1);
    let (_, shown) = dlq_get(&sys, &format!("/{id}")).await?;
    assert_eq!(shown["status"], "REPLAYED", "{shown}");
    assert_eq!(shown["order_status"], "COMPLETED");
    let trail: Vec<(String, String, String)> = audit_of(&sys, id)
        .await?
        .iter()
        .filter(|e| e["operation"] == "replay")
        .map(|e| (e["operator"].as_str().unwrap().into(), e["operation"].as_str().unwrap().into(), e["outcomes"][0]["outcome"].as_str().unwrap().into()))
        .collect();
    assert_eq!(trail, [("alice".into(), "replay".into(), "replayed".into()), ("bob".into(), "replay".into(), "skipped".into())]);
    sys.stop().await;
    Ok(())
}

/// Card 0119 → dead letter → abandon → COMPENSATED, stock back; purge → gone; every step audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn always_failing_card_is_abandoned_compensated_and_purged_with_an_audit_trail() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { max_attempts: 2, ..Default::default() }).await?;
    let product = sys.create_product("9.00", 10).await?;
    let (order_id, rid) = sys.pay(product, "abandon-user", ALWAYS_FAILS).await?;
    let order = sys.wait_order(&order_id, WITHIN, settled).await?;
    assert_eq!(order["status"], "FAILED", "{order}");
    assert_eq!(sys.stock(product).await?, 8);
    let page = wait_dead_letters(&sys, &format!("?order_id={order_id}"), 1).await?;
    let id = page["items"][0]["id"].as_u64().unwrap();
    let (_, shown) = dlq_get(&sys, &format!("/{id}")).await?;
    assert_eq!(shown["error_class"], "processing_error");
    assert!(shown["payload"].as_str().unwrap().contains("\"sealed\""), "a charge carries its card sealed: {shown}");

    let abandoned = dlq_post(&sys, "abandon", "carol", json!({"ids": [id]})).await?;
    assert_eq!(abandoned["outcomes"][0]["outcome"], "abandoned", "{abandoned}");
    let order = sys.wait_order(&order_id, WITHIN, |o| o["status"] == "COMPENSATED").await?;
    assert_eq!(statuses(&order), ["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "FAILED", "COMPENSATED"]);
    assert_eq!(reservation_status(&sys, &rid).await?, "RELEASED");
    assert_eq!(sys.stock(product).await?, 10, "stock released");
    assert_eq!(captured_total(&sys).await?, "0.00");

    // Replaying or abandoning it again is a recorded no-op.
    let replay = dlq_post(&sys, "replay", "carol", json!({"ids": [id]})).await?;
    assert_eq!(replay["outcomes"][0]["outcome"], "skipped", "{replay}");

    let purged = dlq_post(&sys, "purge", "dave", json!({"ids": [id]})).await?;
    assert_eq!(purged["outcomes"][0]["outcome"], "purged", "{purged}");
    let (_, page) = dlq_get(&sys, &format!("?order_id={order_id}")).await?;
    assert_eq!(page["total"], 0, "purged dead letters leave the list: {page}");
    let (_, shown) = dlq_get(&sys, &format!("/{id}")).await?;
    assert_eq!(shown["status"], "PURGED");
    assert!(shown.get("payload").is_none(), "the payload is erased: {shown}");
    let (_, page) = dlq_get(&sys, "?status=PURGED").await?;
    assert_eq!(page["total"], 1);

    let trail: Vec<String> = audit_of(&sys, id)
        .await?
        .iter()
        .map(|e| format!("{} {} {}", e["operator"].as_str().unwrap(), e["operation"].as_str().unwrap(), e["outcomes"][0]["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        trail,
        ["e2e show shown", "carol abandon abandoned", "carol replay skipped", "dave purge purged", "e2e show shown"],
        "every step, in order"
    );
    sys.stop().await;
    Ok(())
}

/// `list` finds dead letters by each filter (and pages), `show` shows one, bad input is a 4xx
/// problem, and `replay --dry-run` (HTTP and CLI) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_and_show_filter_and_page_and_a_dry_run_changes_nothing() -> anyhow::Result<()> {
    let before = chrono_like::Stamp::now();
    let sys = System::spawn(SystemOptions { max_attempts: 2, ..Default::default() }).await?;
    let product = sys.create_product("3.00", 20).await?;
    let (order_a, _) = sys.pay(product, "filter-a", ALWAYS_FAILS).await?;
    let (order_b, _) = sys.pay(product, "filter-b", ALWAYS_FAILS).await?;
    produce_raw(&sys, "order_queue", "filter-c", "{not json").await?;
    for o in [&order_a, &order_b] {
        assert_eq!(sys.wait_order(o, WITHIN, settled).await?["status"], "FAILED");
    }
    wait_dead_letters(&sys, "", 3).await?;
    let after = chrono_like::Stamp::now();

    let count = |q: String| {
        let sys = &sys;
        async move {
            let (status, page) = dlq_get(sys, &q).await.unwrap();
            assert_eq!(status, StatusCode::OK, "{q}: {page}");
            page["total"].as_i64().unwrap()
        }
    };
    let p = &sys.prefix;
    assert_eq!(count(format!("?order_id={order_a}")).await, 1);
    assert_eq!(count("?error_class=processing_error".into()).await, 2);
    assert_eq!(count("?error_class=malformed".into()).await, 1);
    assert_eq!(count("?topic=payment.commands".into()).await, 2);
    assert_eq!(count(format!("?topic={p}payment.commands")).await, 2);
    assert_eq!(count("?topic=order_queue".into()).await, 1);
    assert_eq!(count("?service=orchestrator".into()).await, 1);
    assert_eq!(count("?service=payment&error_class=processing_error".into()).await, 2);
    assert_eq!(count("?status=PENDING".into()).await, 3);
    assert_eq!(count("?status=REPLAYED".into()).await, 0);
    assert_eq!(count(format!("?since={}&until={}", before.0, after.0)).await, 3);
    assert_eq!(count(format!("?since={}", after.0)).await, 0, "nothing failed after `after`");
    assert_eq!(count(format!("?until={}", before.0)).await, 0, "nothing failed before `before`");
    let (_, page2) = dlq_get(&sys, "?per_page=2&page=2").await?;
    assert_eq!((page2["total"].as_i64(), page2["items"].as_array().unwrap().len()), (Some(3), 1), "{page2}");

    // Bad input: 4xx problem documents, never a 5xx.
    for (q, code) in [
        ("?status=BOGUS", 422),
        ("?per_page=0", 422),
        ("?page=0", 422),
        ("?since=yesterday", 422),
        ("?unknown=1", 422),
        ("/abc", 422),
        ("/0", 422),
        ("/999999", 404),
    ] {
        let res = sys.http.get(format!("{}/admin/dlq{q}", sys.orchestrator_url)).bearer_auth(sys.admin_token("e2e")).send().await?;
        assert_eq!(res.status().as_u16(), code, "{q}");
        assert_eq!(res.headers()["content-type"], "application/problem+json", "{q}");
    }
    for body in [json!({}), json!({"ids": []}), json!({"filter": {}}), json!({"ids": [1], "all": true}), json!({"all": true, "rate": -1}), json!({"all": true, "bogus": 1})] {
        let res = sys.http.post(format!("{}/admin/dlq/replay", sys.orchestrator_url)).bearer_auth(sys.admin_token("e2e")).json(&body).send().await?;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let res = sys.http.post(format!("{}/admin/dlq/abandon", sys.orchestrator_url)).bearer_auth(sys.admin_token("e2e")).json(&json!({"all": true, "dry_run": true})).send().await?;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "abandon has no dry run");
    let res = sys.http.post(format!("{}/admin/dlq/replay", sys.orchestrator_url)).bearer_auth(sys.admin_token("e2e")).json(&json!({"all": true, "force": true})).send().await?;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "only purge takes force");
    let res = sys.http.post(format!("{}/admin/dlq/replay", sys.orchestrator_url)).bearer_auth(sys.admin_token("e2e")).header("content-type", "application/json").body("{").send().await?;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // show
    let (_, page) = dlq_get(&sys, &format!("?order_id={order_b}")).await?;
    let id_b = page["items"][0]["id"].as_u64().unwrap();
    let (status, shown) = dlq_get(&sys, &format!("/{id_b}")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((shown["order_id"].as_str(), shown["order_status"].as_str()), (Some(order_b.as_str()), Some("FAILED")));
    assert_eq!(shown["original_key"], "filter-b");

    // Dry runs, over HTTP and from the CLI: they say what would happen and change nothing.
    let snapshot = || async {
        let dls: Vec<(u64, String)> = sqlx::query_as("SELECT id, status FROM dead_letters ORDER BY id").fetch_all(&sys.orchestrator_db).await.unwrap();
        let orders: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM orders ORDER BY id").fetch_all(&sys.orchestrator_db).await.unwrap();
        let history: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_history").fetch_one(&sys.orchestrator_db).await.unwrap();
        let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM charge_attempts").fetch_one(&sys.payment_db).await.unwrap();
        (dls, orders, history, attempts)
    };
    let was = snapshot().await;
    let dry = dlq_post(&sys, "replay", "erin", json!({"all": true, "dry_run": true})).await?;
    assert_eq!(dry["summary"]["would_replay"], 3, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(sagaway_cli::run(&cli(&sys, "cli-user", "replay --all --dry-run")).await, 0);
    assert_eq!(sagaway_cli::run(&cli(&sys, "cli-user", "replay --error-class processing_error --dry-run --limit 1")).await, 0);
    assert_eq!(sagaway_cli::run(&cli(&sys, "cli-user", "list --topic payment.commands")).await, 0);
    assert_eq!(sagaway_cli::run(&cli(&sys, "cli-user", &format!("show {id_b}"))).await, 0);
    assert_eq!(sagaway_cli::run(&cli(&sys, "cli-user", "show 999999")).await, 1);
    assert_eq!(sagaway_cli::run(&cli(&sys, "cli-user", "replay")).await, 2, "usage error");
    assert_eq!(sagaway_cli::run(&cli(&sys, "cli-skip", "replay 999999 --dry-run")).await, 1, "not found exits 1");
    assert_eq!(sagaway_cli::run(&cli(&sys, "cli-user", "--help")).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(snapshot().await, was, "dry runs changed nothing");
    let dry_runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dlq_audit WHERE operation = 'replay' AND dry_run = 1")
        .fetch_one(&sys.orchestrator_db)
        .await?;
    assert_eq!(dry_runs, 4, "dry runs are audited too (one HTTP, three CLI)");
    let cli_ops: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dlq_audit WHERE operator = 'cli-user'").fetch_one(&sys.orchestrator_db).await?;
    assert_eq!(cli_ops, 5, "--operator is recorded");
    sys.stop().await;
    Ok(())
}

/// Garbage on `payment.commands` (payment's consumer) and `order_queue` (the orchestrator's) is
/// dead-lettered at once, the consumers carry on with the same key's next message, and no card
/// number reaches the dead-letter topic or table even when the garbage carried one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_messages_are_dead_lettered_and_consumers_keep_going_with_no_card_data() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { max_attempts: 2, ..Default::default() }).await?;
    let product = sys.create_product("4.00", 10).await?;
    let user = "garbage-user";
    produce_raw(&sys, "payment.commands", user, r#"{"type":"charge","card":"4242 4242 4242 4242","#).await?;
    produce_raw(&sys, "order_queue", user, "\u{0}\u{1}binary 4000000000000119 junk").await?;
    let page = wait_dead_letters(&sys, "?error_class=malformed", 2).await?;
    let services: Vec<&str> = page["items"].as_array().unwrap().iter().map(|d| d["service"].as_str().unwrap()).collect();
    assert!(services.contains(&"payment") && services.contains(&"orchestrator"), "{page}");
    for d in page["items"].as_array().unwrap() {
        assert_eq!(d["attempts"], 1, "malformed messages are not retried: {d}");
        assert_eq!(d["original_key"], user);
    }

    // Same key, so same partitions: the consumers moved past the garbage.
    let (ok_order, _) = sys.pay(product, user, VISA).await?;
    assert_eq!(sys.wait_order(&ok_order, WITHIN, settled).await?["status"], "COMPLETED");
    let (failing, _) = sys.pay(product, "scan-user", ALWAYS_FAILS).await?;
    assert_eq!(sys.wait_order(&failing, WITHIN, settled).await?["status"], "FAILED");
    wait_dead_letters(&sys, "", 3).await?;

    let mut haystack = topic_dump(&sys, "payment_dlq")?;
    assert_eq!(haystack.lines().count(), 3, "{haystack}");
    let rows: Vec<String> = sqlx::query_scalar("SELECT CONCAT_WS('|', payload, error_message, original_key) FROM dead_letters")
        .fetch_all(&sys.orchestrator_db)
        .await?;
    haystack.push_str(&rows.join("\n"));
    for card in [VISA, "4242 4242 4242 4242", ALWAYS_FAILS] {
        assert!(!haystack.contains(card), "card number {card} in the DLQ: {haystack}");
    }
    assert!(!haystack.contains("\"cvc\""), "a CVC in the DLQ");
    assert!(haystack.contains("[redacted]"), "the garbage's digits were redacted");
    sys.stop().await;
    Ok(())
}

/// 100 orders during an outage → 100 dead letters, none retried beyond its budget; orders paid
/// after the outage complete normally; a rate-limited bulk replay from the CLI completes them all,
/// each charged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_storm_is_bounded_and_a_rate_limited_bulk_replay_recovers_it() -> anyhow::Result<()> {
    let budget = 3;
    let n = 100;
    let sys = System::spawn(SystemOptions { max_attempts: budget, ..Default::default() }).await?;
    let product = sys.create_product("1.00", 1000).await?;
    set_outage(&sys, true).await?;
    let started = Instant::now();
    let mut orders = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(20) {
        let users: Vec<String> = chunk.iter().map(|i| format!("storm-{i}")).collect();
        let placed = join_all(users.iter().map(|u| sys.pay(product, u, VISA))).await;
        for p in placed {
            orders.push(p?.0);
        }
    }
    for o in &orders {
        assert_eq!(sys.wait_order(o, Duration::from_secs(120), settled).await?["status"], "FAILED", "{o}");
    }
    wait_dead_letters(&sys, "?error_class=processing_error&status=PENDING", n).await?;
    println!("{n} orders → {n} dead letters in {:?}", started.elapsed());
    let per_order: Vec<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM charge_attempts GROUP BY order_id").fetch_all(&sys.payment_db).await?;
    assert_eq!(per_order.len(), n as usize);
    assert!(per_order.iter().all(|c| *c == i64::from(budget)), "every order tried exactly its budget: {per_order:?}");
    let dlq_records = topic_dump(&sys, "payment_dlq")?.lines().count();
    assert_eq!(dlq_records, n as usize, "one dead letter per order on the topic");

    set_outage(&sys, false).await?;
    let mut after = Vec::new();
    for i in 0..5 {
        after.push(sys.pay(product, &format!("after-{i}"), VISA).await?.0);
    }
    for o in &after {
        assert_eq!(sys.wait_order(o, WITHIN, settled).await?["status"], "COMPLETED", "orders after the outage complete");
    }

    let replay_started = Instant::now();
    let rate = 50.0;
    assert_eq!(sagaway_cli::run(&cli(&sys, "storm-op", &format!("replay --error-class processing_error --rate {rate} --yes"))).await, 0);
    let replay_took = replay_started.elapsed();
    // The bucket starts with `rate` tokens; the other n - rate wait for refills.
    assert!(replay_took >= Duration::from_secs_f64((n as f64 - rate) / rate * 0.9), "rate respected: {replay_took:?}");
    for o in &orders {
        assert_eq!(sys.wait_order(o, Duration::from_secs(120), settled).await?["status"], "COMPLETED", "{o}");
    }
    println!("rate-limited replay of {n} took {replay_took:?}; all completed after {:?}", replay_started.elapsed());
    assert_eq!(captured_total(&sys).await?, "210.00", "105 orders × 2.00, each charged once");
    let approved: Vec<i64> =
        sqlx::query_scalar("SELECT COUNT(*) FROM charge_attempts WHERE outcome = 'approved' GROUP BY order_id").fetch_all(&sys.payment_db).await?;
    assert!(approved.len() == 105 && approved.iter().all(|c| *c == 1));
    assert_eq!(count_status(&sys, "REPLAYED").await?, n);
    sys.stop().await;
    Ok(())
}

async fn count_status(sys: &System, status: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE status = ?").bind(status).fetch_one(&sys.orchestrator_db).await?)
}

/// A parked order whose reservation expires is compensated; replaying its dead letter later is a
/// recorded no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservation_expiry_compensates_a_parked_order_and_a_later_replay_is_a_noop() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(5);
    let sys = System::spawn(SystemOptions { max_attempts: 2, reservation_ttl: ttl, ..Default::default() }).await?;
    let product = sys.create_product("6.00", 10).await?;
    let (order_id, rid) = sys.pay(product, "expiry-user", ALWAYS_FAILS).await?;
    assert_eq!(sys.wait_order(&order_id, ttl, settled).await?["status"], "FAILED", "parked before the hold lapses");
    let page = wait_dead_letters(&sys, &format!("?order_id={order_id}"), 1).await?;
    let id = page["items"][0]["id"].as_u64().unwrap();
    assert_eq!(reservation_status(&sys, &rid).await?, "HELD");

    let order = sys.wait_order(&order_id, WITHIN, |o| o["status"] == "COMPENSATED").await?;
    assert_eq!(statuses(&order), ["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "FAILED", "COMPENSATED"]);
    assert_eq!(order["history"][4]["reason"], "reservation_expired", "{order}");
    assert_eq!(reservation_status(&sys, &rid).await?, "EXPIRED");
    assert_eq!(sys.stock(product).await?, 10);

    let replay = dlq_post(&sys, "replay", "frank", json!({"ids": [id]})).await?;
    assert_eq!(replay["outcomes"][0]["outcome"], "skipped", "{replay}");
    assert!(replay["outcomes"][0]["detail"].as_str().unwrap().contains("COMPENSATED"), "{replay}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(captured_total(&sys).await?, "0.00");
    assert_eq!(sys.order(&order_id).await?["status"], "COMPENSATED");
    let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dlq_audit WHERE operator = 'frank' AND operation = 'replay'")
        .fetch_one(&sys.orchestrator_db)
        .await?;
    assert_eq!(audited, 1, "the no-op is recorded");
    sys.stop().await;
    Ok(())
}

/// RFC 3339 timestamps without pulling chrono into the test crate: UTC `...Z` strings with
/// millisecond precision compare correctly as text.
mod chrono_like {
    #[derive(Debug, Clone, PartialEq, PartialOrd)]
    pub struct Stamp(pub String);

    impl Stamp {
        pub fn now() -> Self {
            let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            let secs = d.as_secs() as i64;
            let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
            let (y, m, dd) = civil(days);
            Self(format!("{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis()))
        }
    }

    impl std::str::FromStr for Stamp {
        type Err = anyhow::Error;
        fn from_str(s: &str) -> anyhow::Result<Self> {
            anyhow::ensure!(s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T', "not an RFC 3339 UTC millisecond stamp: {s}");
            Ok(Self(s.to_string()))
        }
    }

    /// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
    fn civil(z: i64) -> (i64, u32, u32) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }
}


/// Inserts `n` resolved (ABANDONED) dead letters straight into the store; returns the first id.
async fn insert_abandoned(sys: &System, n: usize) -> anyhow::Result<u64> {
    let mut first = None;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO dead_letters (dlq_message_id, dlq_partition, dlq_offset, status, payload) ");
        q.push_values(chunk, |mut row, i| {
            row.push_bind(format!("bulk-{i}-{}", uuid::Uuid::new_v4())).push_bind(0).push_bind(*i as i64).push_bind("ABANDONED").push_bind("{}");
        });
        let done = q.build().execute(&sys.orchestrator_db).await?;
        first.get_or_insert(done.last_insert_id());
    }
    Ok(first.unwrap_or_default())
}

/// Defect 2: a purge of 12,000 dead letters answers 200 and its audit is complete — one item per
/// dead letter, written with it (today the audit row overflowed its TEXT columns and the call
/// answered 500 after every purge had committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_twelve_thousand_letter_purge_answers_200_with_a_complete_audit() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    insert_abandoned(&sys, 12_000).await?;
    let res = sys.http.post(format!("{}/admin/dlq/purge", sys.orchestrator_url)).bearer_auth(sys.admin_token("bulk")).json(&json!({"all": true})).send().await?;
    assert_eq!(res.status(), StatusCode::OK);
    let result: Value = res.json().await?;
    assert_eq!(result["summary"]["purged"], 12_000, "{}", result["summary"]);
    let audit_id = result["audit_id"].as_u64().unwrap();
    let items: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT dead_letter_id) FROM dlq_audit_items WHERE audit_id = ? AND outcome = 'purged'")
        .bind(audit_id)
        .fetch_one(&sys.orchestrator_db)
        .await?;
    assert_eq!(items, 12_000, "every purged letter is audited");
    let finished: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT finished_at FROM dlq_audit WHERE id = ?").bind(audit_id).fetch_one(&sys.orchestrator_db).await?;
    assert!(finished.is_some());
    sys.stop().await;
    Ok(())
}

/// Defect 2: each item's audit commits with its effect. A purge cut off part-way (the client
/// hangs up, so the server drops the handler) leaves exactly its committed purges audited —
/// today the audit was written at the end and such a purge left none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purge_cut_off_part_way_has_exactly_its_committed_items_audited() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    insert_abandoned(&sys, 20_000).await?;
    let purged = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE status = 'PURGED'").fetch_one(&sys.orchestrator_db).await.unwrap();
        n
    };
    let client = reqwest::Client::builder().timeout(Duration::from_millis(1500)).build()?;
    let cut = client.post(format!("{}/admin/dlq/purge", sys.orchestrator_url)).bearer_auth(sys.admin_token("e2e")).json(&json!({"all": true})).send().await;
    assert!(cut.is_err(), "the purge was cut off by the client's timeout");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, audited_before) = (purged().await, audited_purges(&sys).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = purged().await;
    assert_eq!(n, before, "the handler stopped when the client left");
    assert!(n > 0 && n < 20_000, "cut off part-way: {n}");
    assert_eq!(audited_purges(&sys).await?, n, "every committed purge is audited, nothing more");
    assert_eq!(audited_before, n);
    sys.stop().await;
    Ok(())
}

async fn audited_purges(sys: &System) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM dlq_audit_items WHERE outcome = 'purged'").fetch_one(&sys.orchestrator_db).await?)
}

/// Defect 7: purge skips PENDING letters unless forced, and forced only once the order is settled;
/// dry-run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_keeps_pending_letters_of_unsettled_orders_and_dry_runs() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { max_attempts: 2, ..SystemOptions::default() }).await?;
    let product = sys.create_product("4.00", 10).await?;
    let (order_id, _) = sys.pay(product, "parked", ALWAYS_FAILS).await?;
    sys.wait_order(&order_id, WITHIN, |o| o["status"] == "FAILED").await?;
    let page = wait_dead_letters(&sys, &format!("?order_id={order_id}"), 1).await?;
    let id = page["items"][0]["id"].as_u64().unwrap();

    let plain = dlq_post(&sys, "purge", "ops", json!({"ids": [id]})).await?;
    assert_eq!(plain["outcomes"][0]["outcome"], "skipped", "{plain}");
    let forced = dlq_post(&sys, "purge", "ops", json!({"ids": [id], "force": true})).await?;
    assert_eq!(forced["outcomes"][0]["outcome"], "skipped", "the order is parked, not settled: {forced}");
    let (_, page) = dlq_get(&sys, &format!("?order_id={order_id}")).await?;
    assert_eq!(page["items"][0]["status"], "PENDING", "still there for the operator: {page}");

    // Once the order is settled (here: its hold expired), a forced purge may drop the letter.
    sqlx::query("UPDATE orders SET status = 'COMPENSATED' WHERE id = ?").bind(&order_id).execute(&sys.orchestrator_db).await?;
    let dry = dlq_post(&sys, "purge", "ops", json!({"ids": [id], "force": true, "dry_run": true})).await?;
    assert_eq!(dry["outcomes"][0]["outcome"], "would_purge", "{dry}");
    assert_eq!(dry["dry_run"], true);
    let (_, page) = dlq_get(&sys, &format!("?order_id={order_id}")).await?;
    assert_eq!(page["items"][0]["status"], "PENDING", "a dry run changes nothing");
    let done = dlq_post(&sys, "purge", "ops", json!({"ids": [id], "force": true})).await?;
    assert_eq!(done["outcomes"][0]["outcome"], "purged", "{done}");
    sys.stop().await;
    Ok(())
}

/// Defect 4: a message that parses but carries a field no table can hold (a refund whose order id
/// is 200 characters) used to fail "transiently" in the database forever, stalling every message
/// of that customer behind it. It is malformed at the edge now: dead-lettered at once, with the
/// field named, and the same customer's next order goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_with_a_field_no_table_can_hold_is_dead_lettered_and_the_customer_goes_on() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let product = sys.create_product("4.00", 10).await?;
    let user = "long-id-user";
    let long = "9".repeat(20) + &"x".repeat(180);
    produce_raw(&sys, "payment.commands", user, &format!(r#"{{"type":"refund","order_id":"{long}","user_id":"{user}","reason":"r"}}"#)).await?;
    let page = wait_dead_letters(&sys, "?error_class=malformed", 1).await?;
    let d = &page["items"][0];
    assert_eq!(d["service"], "payment", "{page}");
    assert_eq!(d["attempts"], 1, "not retried: {page}");
    let (_, shown) = dlq_get(&sys, &format!("/{}", d["id"])).await?;
    assert!(shown["error_message"].as_str().unwrap().contains("order_id"), "the reason names the field: {shown}");
    let (order, _) = sys.pay(product, user, VISA).await?;
    assert_eq!(sys.wait_order(&order, WITHIN, settled).await?["status"], "COMPLETED", "the customer's queue moved on");
    sys.stop().await;
    Ok(())
}

// ---- Compensation dead letters: a release, refund or void given up on is replayed (once) or resolved.

const DECLINES: &str = "4000000000000002";

/// Every dead letter of `order_id` that carries a compensation step, once there are `n`.
async fn wait_compensation_letters(sys: &System, order_id: &str, n: i64) -> anyhow::Result<Vec<Value>> {
    let page = wait_dead_letters(sys, &format!("?order_id={order_id}&compensation=true&status=PENDING"), n).await?;
    Ok(page["items"].as_array().unwrap().clone())
}

/// A fault only a test would plant: `trigger` refuses what it matches until it is dropped.
async fn plant(db: &sqlx::MySqlPool, trigger: &str) -> anyhow::Result<()> {
    sqlx::query(trigger).execute(db).await?;
    Ok(())
}

/// `(captured_total, refunded_total)` of the payment ledger (which must balance).
async fn payment_totals(sys: &System) -> anyhow::Result<(String, String)> {
    let ledger = sys.get_json(format!("{}/ledger/summary", sys.payment_url)).await?;
    assert_eq!(ledger["balanced"], true, "{ledger}");
    Ok((ledger["captured_total"].as_str().unwrap_or_default().into(), ledger["refunded_total"].as_str().unwrap_or_default().into()))
}

/// The same replay sent twice at once, then once more: one `replayed`, the others `skipped`.
async fn replay_thrice(sys: &System, id: u64) -> anyhow::Result<()> {
    let both = join_all([("alice", id), ("bob", id)].map(|(who, id)| dlq_post(sys, "replay", who, json!({"ids": [id]})))).await;
    let again = dlq_post(sys, "replay", "carol", json!({"ids": [id]})).await?;
    let mut outcomes: Vec<String> = both.into_iter().map(|r| r.map(|r| r["outcomes"][0]["outcome"].as_str().unwrap().to_string())).collect::<anyhow::Result<_>>()?;
    outcomes.push(again["outcomes"][0]["outcome"].as_str().unwrap().to_string());
    outcomes.sort();
    assert_eq!(outcomes, ["replayed", "skipped", "skipped"], "one replay of a letter, whoever asks and however often");
    Ok(())
}

/// A card refund that exhausts its retries (a trigger refuses the refund row) left the order
/// COMPENSATING for good: `replay` refused it ("being compensated"), `abandon` too. Now the letter
/// is known as a compensation (`compensation=true`, `refund`), replayed after the fault is
/// cleared — the same letter twice at once and once more — and the order ends COMPENSATED with ONE
/// refund in the payment ledger; a copy of the refund command delivered again moves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_card_refund_is_replayed_to_compensated_refunding_once() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { max_attempts: 2, ..Default::default() }).await?;
    let product = sys.create_product("12.50", 10).await?;
    // Park the order (outage), take its hold away behind the saga's back, and break refunds.
    set_outage(&sys, true).await?;
    let (order_id, rid) = sys.pay(product, "refund-user", VISA).await?;
    assert_eq!(sys.wait_order(&order_id, WITHIN, settled).await?["status"], "FAILED");
    let charge_letter = wait_dead_letters(&sys, &format!("?order_id={order_id}"), 1).await?["items"][0]["id"].as_u64().unwrap();
    let released = sqlx::query("UPDATE reservations SET status = 'RELEASED' WHERE id = ? AND status = 'HELD'").bind(&rid).execute(&sys.product_db).await?;
    assert_eq!(released.rows_affected(), 1);
    plant(&sys.payment_db, "CREATE TRIGGER refunds_down BEFORE INSERT ON refunds FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refunds are down (test)'").await?;
    set_outage(&sys, false).await?;
    // The replayed charge captures; the confirmation fails (the hold is gone); the refund dead-letters.
    assert_eq!(dlq_post(&sys, "replay", "alice", json!({"ids": [charge_letter]})).await?["outcomes"][0]["outcome"], "replayed");
    let letters = wait_compensation_letters(&sys, &order_id, 1).await?;
    let letter = &letters[0];
    let id = letter["id"].as_u64().unwrap();
    assert_eq!((letter["compensation"].as_str(), letter["message_type"].as_str(), letter["error_class"].as_str()), (Some("refund"), Some("refund"), Some("transient_exhausted")), "{letter}");
    assert_eq!(letter["dlq_topic"], format!("{}payment_dlq", sys.prefix));
    let stuck = sys.order(&order_id).await?;
    assert_eq!(stuck["status"], "PAID", "compensating, waiting on the refund: {stuck}");
    assert_eq!(payment_totals(&sys).await?, ("25.00".into(), "0.00".into()), "captured, not refunded");

    // Abandoning it would hide the step; a dry run says what a replay does and changes nothing.
    assert_eq!(dlq_post(&sys, "abandon", "alice", json!({"ids": [id]})).await?["outcomes"][0]["outcome"], "skipped");
    let dry = dlq_post(&sys, "replay", "alice", json!({"ids": [id], "dry_run": true})).await?;
    assert_eq!(dry["outcomes"][0]["outcome"], "would_replay", "{dry}");
    assert!(dry["outcomes"][0]["detail"].as_str().unwrap().contains(&format!("finishes the refund of order {order_id}")), "{dry}");

    // The fault cleared, the letter replayed (twice at once, then again): COMPENSATED, one refund.
    sqlx::query("DROP TRIGGER refunds_down").execute(&sys.payment_db).await?;
    replay_thrice(&sys, id).await?;
    let order = sys.wait_order(&order_id, WITHIN, |o| o["status"] == "COMPENSATED").await?;
    assert_eq!(statuses(&order).last().map(String::as_str), Some("COMPENSATED"), "{order}");
    // A copy of the replayed refund command delivered again (another message id) moves nothing more.
    let copy = topic_dump(&sys, "payment.commands")?.lines().find(|l| l.contains(&format!("dlq.replay_of={id}"))).map(str::to_string).expect("the replayed refund is on the topic");
    let payload = copy.split('|').nth(1).expect("key|payload|headers").to_string();
    produce_raw(&sys, "payment.commands", "refund-user", &payload).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(payment_totals(&sys).await?, ("25.00".into(), "25.00".into()), "refunded exactly once");
    let refunds: Vec<(String,)> = sqlx::query_as("SELECT CAST(amount AS CHAR) FROM refunds WHERE order_id = ?").bind(&order_id).fetch_all(&sys.payment_db).await?;
    assert_eq!(refunds, [("25.0000".to_string(),)], "one refund row, for the whole capture");
    let (_, shown) = dlq_get(&sys, &format!("/{id}")).await?;
    assert_eq!((shown["status"].as_str(), shown["order_status"].as_str()), (Some("REPLAYED"), Some("COMPENSATED")), "{shown}");
    assert_eq!(wait_dead_letters(&sys, "?compensation=true&status=PENDING", 0).await?["total"], 0);
    sys.stop().await;
    Ok(())
}

/// A release that exhausts its retries (a trigger refuses the reservation's RELEASED) leaves a
/// declined order COMPENSATING. An operator who put the stock back by hand resolves the letter
/// with a reason (none: 422): the order ends COMPENSATED, the letter RESOLVED with who and why,
/// audited; a later replay or abandon of it is a recorded no-op. The compensation gauge the alert
/// reads counts it while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_release_is_resolved_by_an_operator_and_the_order_ends_compensated() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let product = sys.create_product("4.00", 10).await?;
    plant(&sys.product_db, "CREATE TRIGGER releases_down BEFORE UPDATE ON reservations FOR EACH ROW \
        IF NEW.status = 'RELEASED' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'releases are down (test)'; END IF").await?;
    let (order_id, _rid) = sys.pay(product, "release-user", DECLINES).await?;
    let letters = wait_compensation_letters(&sys, &order_id, 1).await?;
    let id = letters[0]["id"].as_u64().unwrap();
    assert_eq!((letters[0]["compensation"].as_str(), letters[0]["service"].as_str()), (Some("release_reservation"), Some("product")), "{}", letters[0]);
    assert_eq!(sys.order(&order_id).await?["status"], "DECLINED", "compensating, waiting on the release");

    // The gauge behind SagawayCompensationDeadLetter counts it (sampled every 10 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = sys.http.get(format!("{}/metrics", sys.orchestrator_url)).send().await?.text().await?;
        if metrics.lines().any(|l| l.starts_with("sagaway_dlq_compensation_pending") && l.ends_with(" 1")) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "sagaway_dlq_compensation_pending never reached 1");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A resolve says why; without a reason it is refused.
    let res = sys.http.post(format!("{}/admin/dlq/resolve", sys.orchestrator_url)).bearer_auth(sys.admin_token("ops")).json(&json!({"ids": [id]})).send().await?;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json::<Value>().await?["field"], "reason");
    let dry = dlq_post(&sys, "resolve", "ops", json!({"ids": [id], "reason": "stock put back by hand", "dry_run": true})).await?;
    assert_eq!(dry["outcomes"][0]["outcome"], "would_resolve", "{dry}");
    assert_eq!(sys.order(&order_id).await?["status"], "DECLINED", "a dry run changes nothing");
    sqlx::query("DROP TRIGGER releases_down").execute(&sys.product_db).await?;
    let done = dlq_post(&sys, "resolve", "ops", json!({"ids": [id], "reason": "stock put back by hand"})).await?;
    assert_eq!(done["outcomes"][0]["outcome"], "resolved", "{done}");
    let order = sys.wait_order(&order_id, WITHIN, |o| o["status"] == "COMPENSATED").await?;
    assert_eq!(statuses(&order).iter().filter(|s| *s == "COMPENSATED").count(), 1, "{order}");
    let (_, shown) = dlq_get(&sys, &format!("/{id}")).await?;
    assert_eq!(shown["status"], "RESOLVED", "{shown}");
    assert_eq!(shown["status_reason"], "resolved by ops: stock put back by hand");
    for op in ["replay", "abandon", "resolve"] {
        let mut body = json!({"ids": [id]});
        if op == "resolve" {
            body["reason"] = json!("again");
        }
        assert_eq!(dlq_post(&sys, op, "ops", body).await?["outcomes"][0]["outcome"], "skipped", "{op} after resolve");
    }
    let trail: Vec<(String, String)> = audit_of(&sys, id)
        .await?
        .iter()
        .filter(|e| e["operation"] == "resolve" && e["dry_run"] == false)
        .map(|e| (e["operator"].as_str().unwrap().into(), e["outcomes"][0]["outcome"].as_str().unwrap().into()))
        .collect();
    assert_eq!(trail, [("ops".to_string(), "resolved".to_string()), ("ops".to_string(), "skipped".to_string())]);
    sys.stop().await;
    Ok(())
}

/// At the bank, a refund of an account payment that cannot be applied went to `bank.dlq`, which
/// nothing read: the order waited COMPENSATING and the money stayed with the merchant. Now the
/// orchestrator records `bank.dlq` (the letter names its order by the payment id), the letter is
/// replayed after the fault is cleared — twice at once and once more — and the bank refunds ONCE:
/// the account is whole, one `payment_refund` entry, the payment ledger refunded once, COMPENSATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_bank_refund_is_recorded_replayed_and_refunds_the_account_once() -> anyhow::Result<()> {
    let mut sys = System::spawn(SystemOptions { bank: true, ..SystemOptions::default() }).await?;
    let product = sys.create_product("19.99", 10).await?;
    let account = sys.open_account("dora", "USD").await?;
    sys.deposit("dora", &account, "100.00").await?;
    let bank_db = sqlx::MySqlPool::connect(&e2e::StackAddr::from_env().mysql_url(sys.databases.last().unwrap())).await?;
    plant(&bank_db, "CREATE TRIGGER bank_refunds_down BEFORE UPDATE ON payment_holds FOR EACH ROW \
        IF NEW.status = 'refunded' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'bank refunds are down (test)'; END IF").await?;

    // The hold goes away behind the saga's back while the bank is down: after the capture the
    // confirmation fails and the saga refunds; the bank cannot.
    sys.stop_bank().await?;
    let r = sys.reserve(product, "dora", 2).await?;
    let rid = r["id"].as_str().unwrap().to_string();
    let order_id = sys.pay_from_account(&rid, "dora", &account).await?;
    sys.wait_order(&order_id, WITHIN, |o| o["status"] == "PAYMENT_PENDING").await?;
    sqlx::query("UPDATE reservations SET status = 'RELEASED' WHERE id = ? AND status = 'HELD'").bind(&rid).execute(&sys.product_db).await?;
    sys.start_bank().await?;
    let letters = wait_compensation_letters(&sys, &order_id, 1).await?;
    let letter = &letters[0];
    let id = letter["id"].as_u64().unwrap();
    assert_eq!((letter["compensation"].as_str(), letter["service"].as_str(), letter["message_type"].as_str()), (Some("bank_refund"), Some("bank"), Some("refund")), "{letter}");
    assert_eq!(letter["dlq_topic"], format!("{}bank.dlq", sys.prefix));
    assert_eq!(sys.order(&order_id).await?["status"], "PAID", "compensating, waiting on the bank's refund");
    assert_eq!(balances_of(&sys, &account).await?, "60.02", "captured, not refunded");

    sqlx::query("DROP TRIGGER bank_refunds_down").execute(&bank_db).await?;
    replay_thrice(&sys, id).await?;
    let order = sys.wait_order(&order_id, WITHIN, |o| o["status"] == "COMPENSATED").await?;
    assert_eq!(statuses(&order).iter().filter(|s| *s == "COMPENSATED").count(), 1, "{order}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(balances_of(&sys, &account).await?, "100.00", "the money is back, once");
    assert_eq!(sys.bank_account("merchant-USD").await?["available"], "0.00");
    let refunds = sys.bank_statement(&account).await?.iter().filter(|e| e["reference"] == order_id.as_str() && e["kind"] == "payment_refund").count();
    assert_eq!(refunds, 1, "one refund entry at the bank");
    assert_eq!(payment_totals(&sys).await?, ("39.98".into(), "39.98".into()), "refunded exactly once");
    sys.stop().await;
    Ok(())
}

async fn balances_of(sys: &System, account: &str) -> anyhow::Result<String> {
    Ok(sys.bank_account(account).await?["available"].as_str().unwrap_or_default().to_string())
}
