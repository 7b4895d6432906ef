//! The stack tool itself, on a second stack (other ports, a fresh state dir) so it never disturbs
//! the one the other tests use. Ignored by default: `scripts/test` runs it on its own with
//! `--ignored`, after the rest, because it starts and kills whole processes.
//!
//! - `up` from a clean state dir reaches "all healthy" in under 60 s (caches warm);
//! - the broker's SQLite store has the header index the stack adds;
//! - a second `up` is a no-op (same PIDs);
//! - kill -9 the broker, change rows, `up` again: the broker is back and the changes reach the topic;
//! - the same for Kafka Connect, killed right after it committed the offset of a row;
//! - `down` leaves no process of the stack behind;
//! - `up` straight after `down`, ten times in a row, succeeds every time (defect 14).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use e2e::{StackAddr, TopicWatcher};
use serde_json::Value;

const COMPONENTS: &[&str] = &["mariadb", "broker", "connect", "identity", "product", "orchestrator", "payment", "bank", "bank002", "bank003", "gateway"];
/// The components of a stack with one bank (`SAGAWAY_BANKS=001`): the down/up cycles need no more.
const ONE_BANK: &[&str] = &["mariadb", "broker", "connect", "identity", "product", "orchestrator", "payment", "bank", "gateway"];

struct Stack {
    state: PathBuf,
    addr: StackAddr,
    /// Kafka Connect's REST port.
    connect_port: u16,
    /// product, orchestrator, payment, identity, bank (the first; the others on the next ports), gateway.
    service_ports: [u16; 6],
    /// `SAGAWAY_BANKS`.
    banks: &'static str,
}

impl Stack {
    fn new() -> Self {
        Self::on_ports(13307, 19092, 18083, [13333, 13334, 13335, 13336, 13340, 13380])
    }

    /// A stack in a fresh state dir on the given ports (MariaDB, broker, Connect, the three services).
    fn on_ports(mysql_port: u16, kafka_port: u16, connect_port: u16, service_ports: [u16; 6]) -> Self {
        let state = std::env::temp_dir().join(format!("sagaway-lifecycle-{}", uuid::Uuid::new_v4()));
        Self { state, addr: StackAddr { mysql_port, kafka_port }, connect_port, service_ports, banks: "001 002 003" }
    }

    /// Runs `scripts/stack <args>` against this stack; returns (success, combined output).
    fn run(&self, args: &[&str]) -> (bool, String) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stack");
        let out = Command::new("bash")
            .arg(script)
            .args(args)
            .env("SAGAWAY_STATE_DIR", &self.state)
            .env("SAGAWAY_MYSQL_PORT", self.addr.mysql_port.to_string())
            .env("SAGAWAY_KAFKA_PORT", self.addr.kafka_port.to_string())
            .env("SAGAWAY_CONNECT_PORT", self.connect_port.to_string())
            .env("PRODUCT_PORT", self.service_ports[0].to_string())
            .env("ORCHESTRATOR_PORT", self.service_ports[1].to_string())
            .env("PAYMENT_PORT", self.service_ports[2].to_string())
            .env("IDENTITY_PORT", self.service_ports[3].to_string())
            .env("BANK_PORT", self.service_ports[4].to_string())
            .env("GATEWAY_PORT", self.service_ports[5].to_string())
            .env("SAGAWAY_BANKS", self.banks)
            .output()
            .expect("scripts/stack runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        println!("$ scripts/stack {}\n{text}", args.join(" "));
        (out.status.success(), text)
    }

    fn pid(&self, component: &str) -> Option<i32> {
        std::fs::read_to_string(self.state.join("pids").join(format!("{component}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn kill9(&self, component: &str) {
        let pid = self.pid(component).unwrap_or_else(|| panic!("{component} has a pid file"));
        assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive(pid), "{component} (pid {pid}) survived kill -9");
    }

    /// Waits until the CDC topic carries a change of product `id`; on failure prints the tails of
    /// Connect's and the broker's logs before panicking.
    async fn wait_for_product_record(&self, id: u64, what: &str) {
        let brokers = self.addr.brokers();
        let found = tokio::task::spawn_blocking(move || {
            let watcher = TopicWatcher::from_start(&brokers, "shop.product.products")?;
            // Generous: after a kill -9, Connect restarts, reconnects to the binlog and the broker.
            watcher.wait_for(Duration::from_secs(60), |r| key_id(r) == Some(id))
        })
        .await
        .expect("watcher task");
        if let Err(e) = found {
            for log in ["connect", "broker"] {
                let text = std::fs::read_to_string(self.state.join("logs").join(format!("{log}.log"))).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- last lines of {log}.log ---\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            panic!("the change of product {id} {what} never reached the topic: {e:#}");
        }
    }

    /// Every live process whose command line mentions this stack's state dir or one of its service
    /// binaries started with this stack's environment.
    fn leftover_processes(&self) -> Vec<String> {
        let needle = self.state.to_string_lossy().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let env = String::from_utf8_lossy(&environ);
            if pid != std::process::id() as i32 && (cmd.contains(&needle) || env.contains(&needle)) {
                found.push(format!("{pid}: {cmd}"));
            }
        }
        found
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Whatever happened, leave nothing running; keep the state (logs) of a failed run to read.
        self.run(&["down"]);
        if std::thread::panicking() {
            eprintln!("kept the failed stack's state dir for its logs: {}", self.state.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

fn key_id(r: &e2e::Record) -> Option<u64> {
    r.key.as_ref().and_then(|k| k.get("id")).and_then(Value::as_u64)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "starts a second whole stack; run by scripts/test with --ignored"]
async fn stack_up_is_fast_idempotent_recovers_and_down_leaves_nothing() -> anyhow::Result<()> {
    let stack = Stack::new();

    // 1. From a clean state dir to all healthy in under 60 s.
    let t0 = Instant::now();
    let (ok, out) = stack.run(&["up"]);
    let took = t0.elapsed();
    assert!(ok && out.contains("all healthy"), "first up failed");
    assert!(took < Duration::from_secs(60), "up took {took:?}");
    println!("clean up reached all healthy in {took:?}");
    let pids: Vec<_> = COMPONENTS.iter().map(|c| stack.pid(c).expect("pid file")).collect();
    // The broker's store carries the header index the stack adds (without it every fetched record
    // scans the whole header table; docs/benchmarks.md).
    let plan = Command::new("python3")
        .args(["-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"EXPLAIN QUERY PLAN SELECT k, v FROM header WHERE topition = 1 AND offset_id = 1\").fetchall())"])
        .arg(stack.state.join("broker/tansu.db"))
        .output()?;
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("USING INDEX sagaway_header_record"), "header lookups use the index: {plan}");

    // 2. A second up changes nothing.
    let (ok, out) = stack.run(&["up"]);
    assert!(ok);
    for c in COMPONENTS {
        assert!(out.contains(&format!("{c} already up")), "{c} was touched by the second up");
    }
    let again: Vec<_> = COMPONENTS.iter().map(|c| stack.pid(c).expect("pid file")).collect();
    assert_eq!(pids, again, "a second up must not restart anything");
    let (ok, status) = stack.run(&["status"]);
    assert!(ok, "status reports every component up");
    assert_eq!(status.matches(" up ").count(), COMPONENTS.len());

    let pool = sqlx::MySqlPool::connect(&stack.addr.mysql_url("product")).await?;
    let insert = |name: String| {
        let pool = pool.clone();
        async move {
            sqlx::query("INSERT INTO products (name, description, price, stock) VALUES (?, '', 1.0000, 1)")
                .bind(name)
                .execute(&pool)
                .await
                .map(|r| r.last_insert_id())
        }
    };

    // 3. Broker killed; rows change while it is down; `up` brings it back; the change reaches the topic.
    let offsets_file = stack.state.join("connect/offsets.dat");
    let offsets_before = std::fs::read(&offsets_file).unwrap_or_default();
    stack.kill9("broker");
    let (ok, status) = stack.run(&["status"]);
    assert!(!ok && status.contains("broker        down"), "status must see the dead broker");
    let during_broker_outage = insert(format!("outage-broker-{}", uuid::Uuid::new_v4())).await?;
    let (ok, _) = stack.run(&["up"]);
    assert!(ok, "up recovers the broker");
    stack.wait_for_product_record(during_broker_outage, "made during the broker outage").await;

    // 4. Connect killed *after* it committed the offset of that row (the flaky case of CI run 22:
    //    restarting from an offset a row wrote skipped the next row), rows change while it is down,
    //    `up` restarts it from its offsets and the change reaches the topic.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read(&offsets_file).unwrap_or_default() == offsets_before {
        assert!(Instant::now() < deadline, "Connect never flushed the offset of the row it delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.kill9("connect");
    let during_connect_outage = insert(format!("outage-connect-{}", uuid::Uuid::new_v4())).await?;
    let (ok, _) = stack.run(&["up"]);
    assert!(ok, "up recovers Connect");
    stack.wait_for_product_record(during_connect_outage, "made while Connect was down").await;

    // 5. down leaves no process behind.
    pool.close().await;
    let (ok, _) = stack.run(&["down"]);
    assert!(ok);
    for (c, pid) in COMPONENTS.iter().zip(&pids) {
        if *c != "broker" && *c != "connect" {
            assert!(!alive(*pid), "{c} (pid {pid}) still running after down");
        }
    }
    let left = stack.leftover_processes();
    assert!(left.is_empty(), "processes left after down: {left:#?}");
    let (ok, _) = stack.run(&["status"]);
    assert!(!ok, "status reports the stack down");
    Ok(())
}

/// Defect 14: `scripts/stack up` right after `scripts/stack down` (or after `scripts/test`) exited 1
/// with "product did not start" or "payment did not start" in 4 of 7 tries, while the service went on
/// to come up. The cause was the health wait judging the just-started process by its command line,
/// which still reads `bash …/scripts/stack up` until the child has exec'd. Ten down/up cycles back
/// to back on a stack of its own (other ports than the test above); every `up` must succeed.
/// About 5 minutes on 2 cores (an `up` takes 10–20 s, a `down` about 10 s); every wait in
/// scripts/stack is bounded, so a broken cycle fails rather than hangs.
#[test]
#[ignore = "starts a second whole stack eleven times; run by scripts/test with --ignored"]
fn up_right_after_down_succeeds_ten_times_in_a_row() {
    const CYCLES: usize = 10;
    let mut stack = Stack::on_ports(14307, 19192, 18183, [14333, 14334, 14335, 14336, 14340, 14380]);
    stack.banks = "001";
    let started = Instant::now();
    let (ok, out) = stack.run(&["up"]);
    assert!(ok && out.contains("all healthy"), "the first up failed");

    let mut took = Vec::with_capacity(CYCLES);
    for cycle in 1..=CYCLES {
        let (ok, _) = stack.run(&["down"]);
        assert!(ok, "cycle {cycle}: down failed");
        let t0 = Instant::now();
        let (ok, out) = stack.run(&["up"]);
        let t = t0.elapsed();
        assert!(ok && out.contains("all healthy"), "cycle {cycle} of {CYCLES}: up right after down failed");
        // Every component really restarted (down stopped it) and status agrees that all are up.
        for c in ONE_BANK {
            assert!(!out.contains(&format!("{c} already up")), "cycle {cycle}: {c} survived down");
        }
        let (ok, status) = stack.run(&["status"]);
        assert!(ok && status.matches(" up ").count() == ONE_BANK.len(), "cycle {cycle}: status after up");
        took.push(t);
    }

    let (ok, _) = stack.run(&["down"]);
    assert!(ok, "the last down failed");
    let left = stack.leftover_processes();
    assert!(left.is_empty(), "processes left after down: {left:#?}");
    let secs: Vec<String> = took.iter().map(|t| format!("{:.1}", t.as_secs_f64())).collect();
    println!(
        "{CYCLES} down/up cycles all succeeded; up took [{}] s; {:.0} s in all",
        secs.join(", "),
        started.elapsed().as_secs_f64()
    );
}
