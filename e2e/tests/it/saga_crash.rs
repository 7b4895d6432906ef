//! Crash safety: 200 orders flow while the product service, the orchestrator and the payment
//! processor are killed with SIGKILL at random moments and restarted. At the end every order is terminal, nothing was charged
//! twice (captures − refunds = the COMPLETED amounts; at most one capture per order), no stock leaked
//! or was oversold, and no process log holds a card number.
//!
//! The three services run as real child processes (their binaries), so a kill is a real crash.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{StackAddr, system::payment_body};
use futures::{StreamExt, stream};
use rand::Rng;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use sagaway_common::auth_testing::TestIssuer;
use sagaway_messaging::kafka;
use serde_json::{Value, json};

const ORDERS: usize = 200;
const CARDS: [&str; 3] = ["4242424242424242", "4000000000000002", "4000000000000341"];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One service binary run as a child process, restartable, logging to a file.
struct Proc {
    bin: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(&self.bin)
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn target_dir() -> PathBuf {
    // .../target/debug/deps/saga_crash-xxxx → .../target/debug
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

async fn wait_ready(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http.get(format!("{url}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_survive_kill_9_of_product_orchestrator_and_payment() -> anyhow::Result<()> {
    crash_run(false).await
}

/// The same in group mode (`KAFKA_CONSUMER_MODE=group`, 4 partitions): two replicas of each
/// service share the partitions through the broker's group coordinator; one replica of each is
/// killed and restarted at random, the other serves the clients throughout.
///
/// The replicas are static group members (`KAFKA_GROUP_INSTANCE_ID`, a 60 s session): a replica
/// restarted after `kill -9` takes its own partitions back. With dynamic members this test fails
/// on the local tansu 0.6.0 broker (2026-12-01: after the first SIGKILL the surviving replica
/// stopped receiving records and orders stayed PAYMENT_PENDING past the deadline): its coordinator
/// drops the dead member without rebalancing, so its partitions are never read again
/// (docs/stack.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_survive_kill_9_in_group_mode_with_two_replicas_each() -> anyhow::Result<()> {
    crash_run(true).await
}

async fn crash_run(group: bool) -> anyhow::Result<()> {
    // Make sure the binaries match the code under test.
    e2e::build_service_binaries()?;
    // Where the time goes, printed with the result: a slow phase is the first clue of a broker or
    // rejoin problem.
    let started = Instant::now();
    let mut phases: Vec<(&str, Duration)> = Vec::new();

    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let prefix = format!("t{id}.");
    let stack = StackAddr::from_env();
    let logs = std::env::temp_dir().join(format!("sagaway-crash-{id}"));
    std::fs::create_dir_all(&logs)?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;

    let product_db = format!("product_t_{id}");
    let cdc_topic = format!("{prefix}cdc.products");
    kafka::ensure_topics(&stack.brokers(), &[(cdc_topic.clone(), 1)], 1).await?;
    // Replica A of each service is the one killed; in group mode replica B (same database, same
    // consumer groups) stays up and serves the clients.
    let replicas = if group { 2 } else { 1 };
    let product_ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
    let orch_ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
    let pay_ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
    let product_url = format!("http://127.0.0.1:{}", product_ports[replicas - 1]);
    let orch_db = format!("orchestrator_t_{id}");
    let pay_db = format!("payment_t_{id}");
    // The services verify the clients' tokens against this issuer's JWKS.
    let issuer = TestIssuer::start().await;
    let admin = issuer.admin_token("crash-admin");
    let shared = |extra: Vec<(&str, String)>| -> Vec<(String, String)> {
        let mut env = vec![
            ("AUTH_ISSUER".to_string(), issuer.issuer.clone()),
            ("AUTH_JWKS_URL".to_string(), format!("{}/.well-known/jwks.json", issuer.url)),
            ("SAGAWAY_ENV".to_string(), "dev".to_string()),
            ("KAFKA_BROKERS".to_string(), stack.brokers()),
            ("TOPIC_PREFIX".to_string(), prefix.clone()),
            ("KAFKA_FETCH_WAIT_MAX_MS".to_string(), "50".to_string()),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        if group {
            env.push(("KAFKA_CONSUMER_MODE".to_string(), "group".to_string()));
            env.push(("KAFKA_TOPIC_PARTITIONS".to_string(), "4".to_string()));
        }
        env.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        env
    };
    let proc = |bin: &str, replica: usize, mut env: Vec<(&str, String)>| {
        if group {
            // Stable across this replica's restarts, unique among the replicas of one service.
            env.push(("KAFKA_GROUP_INSTANCE_ID", format!("{bin}-{replica}")));
            env.push(("KAFKA_SESSION_TIMEOUT_MS", "60000".to_string()));
        }
        Arc::new(Mutex::new(Proc {
            bin: target_dir().join(bin),
            env: shared(env),
            log: logs.join(format!("{bin}-{replica}.log")),
            child: None,
        }))
    };
    let mut products = Vec::new();
    let mut orchestrators = Vec::new();
    let mut payments = Vec::new();
    for r in 0..replicas {
        products.push(proc("product", r, vec![
            ("PRODUCT_PORT", product_ports[r].to_string()),
            ("PRODUCT_DATABASE_URL", stack.mysql_url(&product_db)),
            ("PRODUCT_CDC_TOPIC", cdc_topic.clone()),
            ("PRODUCT_INDEXER_GROUP", format!("{prefix}indexer")),
            ("PRODUCT_INDEX_DIR", "memory".to_string()),
            ("PRODUCT_EXPIRY_INTERVAL_MS", "500".to_string()),
            ("PRODUCT_MAX_RESERVATION_QUANTITY", "10".to_string()),
        ]));
        orchestrators.push(proc("orchestrator", r, vec![
            ("ORCHESTRATOR_PORT", orch_ports[r].to_string()),
            ("ORCHESTRATOR_DATABASE_URL", stack.mysql_url(&orch_db)),
            ("PRODUCT_URL", product_url.clone()),
        ]));
        payments.push(proc("payment", r, vec![
            ("PAYMENT_PORT", pay_ports[r].to_string()),
            ("PAYMENT_DATABASE_URL", stack.mysql_url(&pay_db)),
            ("PAYMENT_RETRY_BASE_MS", "50".to_string()),
            ("PAYMENT_RETRY_MAX_MS", "300".to_string()),
        ]));
    }
    for r in 0..replicas {
        // One at a time: the first of each creates its database and runs its migrations.
        for (p, port) in [(&products[r], product_ports[r]), (&orchestrators[r], orch_ports[r]), (&payments[r], pay_ports[r])] {
            p.lock().unwrap().start();
            wait_ready(&http, &format!("http://127.0.0.1:{port}")).await;
        }
    }
    let orch_url = format!("http://127.0.0.1:{}", orch_ports[replicas - 1]);
    let pay_url = format!("http://127.0.0.1:{}", pay_ports[replicas - 1]);
    let (product, orchestrator, payment) = (products[0].clone(), orchestrators[0].clone(), payments[0].clone());

    // Catalogue: 4 products with 100 each; 200 orders of 1 or 2 units.
    let replica_procs: Vec<_> = products.iter().chain(&orchestrators).chain(&payments).cloned().collect();
    let mut products = Vec::new();
    for i in 0..4 {
        let res = http.post(format!("{product_url}/products")).bearer_auth(&admin).json(&json!({"name": format!("crash {i}"), "price": "12.34", "stock": 100})).send().await?;
        products.push(res.json::<Value>().await?["id"].as_u64().unwrap());
    }

    // The killer: SIGKILL one of the three at random moments, restart it at once.
    phases.push(("services up", started.elapsed()));
    let stop_killing = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU32::new(0));
    let killer = {
        let (stop, kills, procs) = (stop_killing.clone(), kills.clone(), [product.clone(), orchestrator.clone(), payment.clone()]);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (pause, pick) = {
                    let mut rng = rand::rng();
                    (rng.random_range(300..1200), rng.random_range(0..procs.len()))
                };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let target = &procs[pick];
                let mut p = target.lock().unwrap();
                p.kill9();
                p.start();
                kills.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // Clients: reserve, then pay with an Idempotency-Key, retrying through crashes as a real client
    // would. Each order is its client's trace (W3C traceparent): its id must show in every
    // service's log lines about the order.
    let traces: Arc<std::sync::Mutex<HashMap<String, String>>> = Arc::default();
    let submitted: Vec<(String, u64, i64)> = stream::iter(0..ORDERS)
        .map(|i| {
            let (http, product_url, orch_url, traces) = (http.clone(), product_url.clone(), orch_url.clone(), traces.clone());
            let trace_id = format!("5a6a{:028x}", i + 1);
            let product = products[i % products.len()];
            let token = issuer.token(&format!("crash-user-{i}"));
            async move {
                // Spread the orders over ~10 s so crashes land in every phase of the saga.
                tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
                let user = format!("crash-user-{i}");
                let qty = 1 + (i % 2) as i64;
                // Reserve with an Idempotency-Key, retrying through product crashes: a retry after a
                // lost answer replays the first hold instead of making a second.
                let deadline = Instant::now() + Duration::from_secs(120);
                let rid = loop {
                    assert!(Instant::now() < deadline, "reservation {i} never made");
                    let sent = http
                        .post(format!("{product_url}/reserve"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", format!("crash-reserve-{i}"))
                        .json(&json!({"product_id": product, "user_id": user, "quantity": qty}))
                        .send()
                        .await;
                    match sent {
                        Ok(res) if res.status() == StatusCode::CREATED => {
                            let r: Value = res.json().await.unwrap();
                            break r["id"].as_str().unwrap().to_string();
                        }
                        Ok(res) if res.status().is_client_error() && res.status() != StatusCode::CONFLICT => {
                            panic!("reservation {i} refused: {} {}", res.status(), res.text().await.unwrap_or_default())
                        }
                        _ => tokio::time::sleep(Duration::from_millis(100)).await, // down, in flight, or 5xx: retry
                    }
                };
                let body = payment_body(&rid, &user, CARDS[i % CARDS.len()]);
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(Instant::now() < deadline, "payment {i} never accepted");
                    let paid = http
                        .post(format!("{orch_url}/payment"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", &rid)
                        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
                        .json(&body)
                        .send()
                        .await;
                    match paid {
                        Ok(res) if res.status() == StatusCode::ACCEPTED => {
                            let b: Value = res.json().await.unwrap();
                            let order_id = b["order_id"].as_str().unwrap().to_string();
                            traces.lock().unwrap().insert(order_id.clone(), trace_id);
                            return (order_id, product, qty);
                        }
                        Ok(res) if res.status().is_client_error() && res.status() != StatusCode::CONFLICT => {
                            panic!("payment {i} refused: {} {}", res.status(), res.text().await.unwrap_or_default())
                        }
                        _ => tokio::time::sleep(Duration::from_millis(100)).await, // down, in flight, or 5xx: retry
                    }
                }
            }
        })
        .buffer_unordered(ORDERS)
        .collect()
        .await;
    phases.push(("orders submitted", started.elapsed()));
    tokio::time::sleep(Duration::from_secs(3)).await; // a few more crashes mid-saga
    stop_killing.store(true, Ordering::Relaxed);
    killer.await?;
    let kills = kills.load(Ordering::Relaxed);
    assert!(kills >= 8, "the test must actually crash the services (only {kills} kills)");
    wait_ready(&http, &product_url).await;
    wait_ready(&http, &orch_url).await;
    wait_ready(&http, &pay_url).await;

    phases.push(("killing stopped, all ready", started.elapsed()));
    // Every order reaches a terminal state.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut final_orders: HashMap<String, Value> = HashMap::new();
    for (order_id, _, _) in &submitted {
        loop {
            let o: Value = http.get(format!("{orch_url}/orders/{order_id}")).bearer_auth(&admin).send().await?.json().await?;
            if matches!(o["status"].as_str(), Some("COMPLETED" | "COMPENSATED")) {
                final_orders.insert(order_id.clone(), o);
                break;
            }
            assert!(Instant::now() < deadline, "order {order_id} stuck in {}", o["status"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(final_orders.len(), ORDERS, "one order per client payment");

    phases.push(("all terminal", started.elapsed()));
    // Money: captures − refunds = the COMPLETED amounts; never two captures for one order.
    let completed: Decimal = final_orders
        .values()
        .filter(|o| o["status"] == "COMPLETED")
        .map(|o| Decimal::from_str(o["amount"].as_str().unwrap()).unwrap())
        .sum();
    let ledger: Value = http.get(format!("{pay_url}/ledger/summary")).bearer_auth(&admin).send().await?.json().await?;
    assert_eq!(ledger["balanced"], true, "{ledger}");
    let captured = Decimal::from_str(ledger["captured_total"].as_str().unwrap())?;
    let refunded = Decimal::from_str(ledger["refunded_total"].as_str().unwrap())?;
    assert_eq!(captured - refunded, completed, "net captures equal the COMPLETED amounts: {ledger}");
    let pay_pool = sqlx::MySqlPool::connect(&stack.mysql_url(&pay_db)).await?;
    let doubles: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT order_id FROM journal_entries WHERE kind = 'capture' GROUP BY order_id HAVING COUNT(*) > 1) d",
    )
    .fetch_one(&pay_pool)
    .await?;
    assert_eq!(doubles, 0, "an order was captured twice");

    // Stock: what is left plus what was sold equals what there was; nothing is still held.
    let product_pool = sqlx::MySqlPool::connect(&stack.mysql_url(&product_db)).await?;
    for p in &products {
        let stock: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE id = ?").bind(p).fetch_one(&product_pool).await?;
        let sold: Decimal = sqlx::query_scalar("SELECT COALESCE(SUM(quantity), 0) FROM reservations WHERE product_id = ? AND status = 'CONFIRMED'")
            .bind(p)
            .fetch_one(&product_pool)
            .await?;
        let held: Decimal = sqlx::query_scalar("SELECT COALESCE(SUM(quantity), 0) FROM reservations WHERE product_id = ? AND status = 'HELD'")
            .bind(p)
            .fetch_one(&product_pool)
            .await?;
        assert_eq!(held, Decimal::ZERO, "product {p}: stock still held after every order ended");
        assert_eq!(Decimal::from(stock) + sold, Decimal::from(100), "product {p}: stock leaked or oversold");
        let expected_sold: i64 = submitted
            .iter()
            .filter(|(o, prod, _)| prod == p && final_orders[o]["status"] == "COMPLETED")
            .map(|(_, _, q)| q)
            .sum();
        assert_eq!(sold, Decimal::from(expected_sold), "product {p}: sold units match COMPLETED orders");
    }

    // One order is one trace: a COMPLETED order's trace id is in the log lines of the orchestrator
    // (the accepted payment), the product service (its reservation commands) and the payment
    // processor (the charge).
    let traces = traces.lock().unwrap().clone();
    let log_of = |bin: &str| -> String {
        std::fs::read_dir(&logs).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(bin)).map(|e| std::fs::read_to_string(e.path()).unwrap()).collect()
    };
    let (orch_log, product_log, pay_log) = (log_of("orchestrator"), log_of("product"), log_of("payment"));
    let completed_orders: Vec<&String> = final_orders.iter().filter(|(_, o)| o["status"] == "COMPLETED").map(|(id, _)| id).collect();
    assert!(!completed_orders.is_empty());
    for order_id in completed_orders {
        let trace_id = &traces[order_id];
        for (service, log) in [("orchestrator", &orch_log), ("product", &product_log), ("payment", &pay_log)] {
            assert!(log.contains(&format!("\"trace_id\":\"{trace_id}\"")), "order {order_id}: trace {trace_id} is not in the {service} log");
        }
    }

    // No process log holds a card number.
    for log in std::fs::read_dir(&logs)? {
        let log = log?.path();
        let text = std::fs::read_to_string(&log)?;
        let log = log.display();
        for card in CARDS {
            assert!(!text.contains(card), "{log} contains card number {card}");
        }
    }
    let phases: Vec<String> = phases.iter().map(|(name, at)| format!("{name} at {:.1} s", at.as_secs_f64())).collect();
    println!(
        "{} mode, {ORDERS} orders, {kills} kills: {} completed, net captured {completed}; {}",
        if group { "group" } else { "assign" },
        final_orders.values().filter(|o| o["status"] == "COMPLETED").count(),
        phases.join(", ")
    );

    for p in &replica_procs {
        p.lock().unwrap().kill9();
    }
    for db in [&product_db, &orch_db, &pay_db] {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{db}`")).execute(&pay_pool).await;
    }
    let _ = std::fs::remove_dir_all(Path::new(&logs));
    Ok(())
}
