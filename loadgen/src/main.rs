//! `loadgen`: Sagaway's load generator and machine-limit benchmarks.
//!
//! It drives only the public HTTP API of a running stack (product :3333, orchestrator :3334,
//! payment :3335, bank :3340 by default). See `docs/benchmarks.md` for the standard suite (`scripts/bench`).
//!
//! ```text
//! loadgen payments --rate 500 --duration 30          # open model: fixed arrival rate
//! loadgen payments --concurrency 64 --duration 30    # closed model: fixed concurrency
//! loadgen bank     --rate 100 --duration 20 --accounts 20   # deposits, withdrawals, instant transfers
//! loadgen interbank --rate 50 --duration 20                 # transfers between banks (2PC), many-to-one
//! loadgen push      --rate 50 --duration 20 --streams 200   # live events through the gateway
//! loadgen search   --rate 500 --duration 20 --catalogue 2000
//! loadgen cdc-lag  --rate 5 --duration 30
//! loadgen limits   --duration 5
//! loadgen summarize bench-results/<run>/             # min/median/max tables of repeated runs
//! ```
//! Every subcommand prints a summary on stdout, a progress line every second on stderr, and
//! writes its full results as JSON with `--json-out FILE`.

mod api;
mod bank;
mod cdc;
mod driver;
mod interbank;
mod limits;
mod payments;
mod push;
mod search;
mod stats;
mod summarize;

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "loadgen", about = "Load generator and benchmarks for Sagaway (public HTTP API only)")]
struct Cli {
    #[command(flatten)]
    endpoints: Endpoints,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Endpoints {
    /// Product service base URL.
    #[arg(long, global = true, env = "LOADGEN_PRODUCT_URL", default_value = "http://127.0.0.1:3333")]
    product: String,
    /// Orchestrator base URL.
    #[arg(long, global = true, env = "LOADGEN_ORCHESTRATOR_URL", default_value = "http://127.0.0.1:3334")]
    orchestrator: String,
    /// Payment processor base URL.
    #[arg(long, global = true, env = "LOADGEN_PAYMENT_URL", default_value = "http://127.0.0.1:3335")]
    payment: String,
    /// Bank base URL.
    #[arg(long, global = true, env = "LOADGEN_BANK_URL", default_value = "http://127.0.0.1:3340")]
    bank: String,
    /// Per-request timeout, seconds.
    #[arg(long, global = true, default_value_t = 30)]
    request_timeout: u64,
    /// The identity service's signing key (PKCS#8 PEM). The load generator signs its simulated
    /// users' bearer tokens with it, so a run measures the services, not thousands of logins —
    /// a benchmark tool for a stack you run, never something to point at production.
    #[arg(long, global = true, env = "LOADGEN_SIGNING_KEY", default_value = ".stack/identity/dev-signing-key.pem")]
    signing_key: std::path::PathBuf,
    /// The issuer (`iss`) the services expect.
    #[arg(long, global = true, env = "LOADGEN_ISSUER", default_value = "http://127.0.0.1:3336")]
    issuer: String,
}

#[derive(Args, Clone)]
struct Load {
    /// Open model: operations started per second, whatever the responses do.
    #[arg(long)]
    rate: Option<f64>,
    /// Closed model: this many workers, each one operation after another.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds of load (operations start only inside this window).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds at the start whose operations run but are not measured.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Open model: the most operations in flight; beyond it operations are skipped and counted as errors.
    #[arg(long, default_value_t = 20_000)]
    max_inflight: usize,
    /// Write the full results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

impl Load {
    fn window(&self, drain: Duration) -> anyhow::Result<driver::Window> {
        anyhow::ensure!(self.duration > 0.0 && self.duration <= 3600.0, "--duration must be in (0, 3600] seconds");
        anyhow::ensure!(self.warmup >= 0.0 && self.warmup < self.duration, "--warmup must be shorter than --duration");
        Ok(driver::Window {
            duration: Duration::from_secs_f64(self.duration),
            warmup: Duration::from_secs_f64(self.warmup),
            max_inflight: self.max_inflight,
            drain,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Reserve + pay (mostly approved cards, some declines), then check correctness.
    Payments {
        #[command(flatten)]
        load: Load,
        /// Products created for the run (reservations spread over them).
        #[arg(long, default_value_t = 64)]
        products: usize,
        /// Stock of each product created.
        #[arg(long, default_value_t = 1_000_000)]
        stock: i64,
        /// Percent of payments made with the declining card 4000000000000002.
        #[arg(long, default_value_t = 10.0)]
        decline_pct: f64,
        /// Send no Idempotency-Key header (by default every payment carries one, as real clients do).
        #[arg(long)]
        no_idempotency_keys: bool,
        /// Seconds to wait after the load for every order to be terminal.
        #[arg(long, default_value_t = 180)]
        terminal_deadline: u64,
        /// Skip the correctness check.
        #[arg(long)]
        no_check: bool,
    },
    /// Deposits, withdrawals (the per-account queue) and instant transfers between the run's own
    /// accounts, then the exactly-once and conservation checks.
    Bank {
        #[command(flatten)]
        load: Load,
        /// Users opened for the run, one individual BRL account each. Operations go round robin over
        /// them, so each user sends rate/accounts requests per second (the bank's default per-user
        /// limit is 20/s with bursts of 40: 429s beyond it are counted as `rate_limited`).
        #[arg(long, default_value_t = 20)]
        accounts: usize,
        /// Each account's first deposit (waited for until APPLIED).
        #[arg(long, default_value = "10000.00")]
        initial_deposit: String,
        /// Percent of operations that are deposits.
        #[arg(long, default_value_t = 30.0)]
        deposit_pct: f64,
        /// Percent that are withdrawals (the rest are instant transfers).
        #[arg(long, default_value_t = 30.0)]
        withdrawal_pct: f64,
        /// Percent of withdrawals asking 999 999.00, more than any balance (REJECTED insufficient_funds).
        #[arg(long, default_value_t = 2.0)]
        oversized_withdrawal_pct: f64,
        /// Accepted requests sent again with their Idempotency-Key after the load (must replay the first answer).
        #[arg(long, default_value_t = 20)]
        replays: usize,
        /// Seconds to wait after the load for every queued operation to be APPLIED or REJECTED.
        #[arg(long, default_value_t = 180)]
        terminal_deadline: u64,
        /// The stack's pid files (`<component>.pid`), for CPU per request; "" to skip.
        #[arg(long, default_value = ".stack/pids")]
        pids_dir: PathBuf,
        /// Seconds of idle CPU measured before the load and subtracted from the load's CPU.
        #[arg(long, default_value_t = 3.0)]
        cpu_idle_secs: f64,
        /// Skip the correctness check.
        #[arg(long)]
        no_check: bool,
    },
    /// Transfers between banks (two-phase commit): one-to-one across banks and many-to-one from
    /// every bank, then each followed to SETTLED/FAILED; checks no hold is left, money is conserved
    /// across the banks and the clearing positions net to zero.
    Interbank {
        #[command(flatten)]
        load: Load,
        /// The banks, `code=url`, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "001=http://127.0.0.1:3340,002=http://127.0.0.1:3341,003=http://127.0.0.1:3342")]
        banks: Vec<String>,
        /// Users opened for the run, each with one BRL account in every bank.
        #[arg(long, default_value_t = 30)]
        users: usize,
        /// Each account's first deposit.
        #[arg(long, default_value = "1000.00")]
        initial_deposit: String,
        /// Percent of transfers that are many-to-one (one source in every bank).
        #[arg(long, default_value_t = 10.0)]
        many_to_one_pct: f64,
        /// Seconds to wait after the load for every transfer to be decided.
        #[arg(long, default_value_t = 120)]
        decide_deadline: u64,
        /// The stack's pid files (CPU per transfer); empty: not measured.
        #[arg(long, default_value = ".stack/pids")]
        pids_dir: PathBuf,
        /// Seconds of idle CPU measured before the load and subtracted from the load's CPU.
        #[arg(long, default_value_t = 3.0)]
        cpu_idle_secs: f64,
    },
    /// Event streams at the gateway: `--streams` users hold `GET /api/events` open while orders
    /// are reserved and paid through the gateway; times each status from commit to client.
    Push {
        #[command(flatten)]
        load: Load,
        /// The gateway's base URL.
        #[arg(long, env = "LOADGEN_GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// Users, each with one stream open.
        #[arg(long, default_value_t = 200)]
        streams: usize,
        /// Products the orders spread over.
        #[arg(long, default_value_t = 16)]
        products: usize,
        /// Seconds to wait after the load for every order's statuses to arrive.
        #[arg(long, default_value_t = 60)]
        deliver_deadline: u64,
        /// The stack's pid files (the gateway's CPU per event); empty: not measured.
        #[arg(long, default_value = ".stack/pids")]
        pids_dir: PathBuf,
    },
    /// A mix of /findAll queries.
    Search {
        #[command(flatten)]
        load: Load,
        /// Products to add to the catalogue first (and wait for in the index).
        #[arg(long, default_value_t = 0)]
        catalogue: usize,
    },
    /// PATCH a product, poll /findAll until the change is visible.
    CdcLag {
        #[command(flatten)]
        load: Load,
        /// Products created and patched in turn.
        #[arg(long, default_value_t = 200)]
        products: usize,
        /// Milliseconds between /findAll polls (the resolution of the lag).
        #[arg(long, default_value_t = 10)]
        poll_ms: u64,
        /// Seconds after which a change that is still not visible counts as an error.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// This machine's limits: MariaDB commits/s, broker msgs/s, trivial HTTP requests/s.
    Limits {
        /// MariaDB server URL without a database (a scratch database is created and dropped).
        #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = "mysql://sagaway:sagaway@127.0.0.1:3307")]
        mysql_url: String,
        /// Kafka bootstrap servers (a scratch topic is created and deleted).
        #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// MariaDB connection counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,32")]
        db_connections: Vec<usize>,
        /// Concurrency levels of the HTTP measurement.
        #[arg(long, value_delimiter = ',', default_value = "32")]
        http_concurrency: Vec<usize>,
        /// Partitions of the scratch topic (4, as the service topics on a real cluster).
        #[arg(long, default_value_t = sagaway_messaging::topics::CLUSTER_SERVICE_PARTITIONS)]
        partitions: i32,
        /// Skip some measurements: mariadb, broker, http.
        #[arg(long, value_delimiter = ',')]
        skip: Vec<String>,
        #[arg(long)]
        json_out: Option<PathBuf>,
    },
    /// min/median/max markdown tables of the `<name>-run<N>.json` files in a directory.
    Summarize { dir: PathBuf },
}

/// What the results were measured on (for the JSON; the noise is part of the result).
fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default().trim().to_string();
    let cpu = read("/proc/cpuinfo").lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("").trim().to_string();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "loadavg": read("/proc/loadavg"),
        "git_rev": std::env::var("LOADGEN_GIT_REV").unwrap_or_default(),
        "at": chrono::Utc::now(),
    })
}

fn write_json(path: &Option<PathBuf>, report: &impl Serialize, started_machine: Value) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let mut v = serde_json::to_value(report)?;
    let mut m = started_machine;
    m["loadavg_after"] = json!(std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    v["machine"] = m;
    v["command"] = json!(std::env::args().collect::<Vec<_>>().join(" "));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
    eprintln!("results written to {}", path.display());
    Ok(())
}

fn print_latencies(latency: &std::collections::BTreeMap<String, stats::Latency>) {
    for (k, l) in latency {
        println!("  {k:<44} {}", l.line());
    }
}

fn print_errors(errors: &std::collections::BTreeMap<String, u64>) {
    if errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors:");
        for (k, n) in errors {
            println!("  {k:<32} {n}");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let e = &cli.endpoints;
    // Only the commands that drive the stack's API need tokens (limits and summarize do not).
    let stack_api = || -> anyhow::Result<api::Api> {
        let tokens = api::Tokens::load(&e.signing_key, &e.issuer)?;
        Ok(api::Api::new(api::authed_client(Duration::from_secs(e.request_timeout), &tokens), tokens, &e.product, &e.orchestrator, &e.payment, &e.bank))
    };
    let at_start = machine();
    match cli.command {
        Command::Payments { load, products, stock, decline_pct, no_idempotency_keys, terminal_deadline, no_check } => {
            anyhow::ensure!(products > 0, "--products must be at least 1");
            anyhow::ensure!((0.0..=100.0).contains(&decline_pct), "--decline-pct is a percentage");
            let model = driver::Model::from_args(load.rate, load.concurrency, 100.0)?;
            let settings = payments::Settings {
                products,
                stock_per_product: stock,
                decline_pct,
                idempotency_keys: !no_idempotency_keys,
                terminal_deadline_secs: terminal_deadline,
                check: !no_check,
            };
            let r = payments::run(stack_api()?, model, load.window(Duration::from_secs(e.request_timeout + 5))?, settings).await?;
            println!("payments ({model:?}, {:.0} s): {} operations, {} ok, {} failed", load.duration, r.driven.operations, r.driven.ok, r.driven.failed);
            let t = &r.throughput;
            println!(
                "throughput: started {:.1}/s, accepted {:.1}/s; terminal in window {:.1}/s (COMPLETED {:.1}/s); overall {:.1}/s; drain after load {:.1} s",
                t.started_per_s, t.accepted_per_s, t.terminal_per_s_in_window, t.completed_per_s_in_window, t.terminal_per_s_overall, t.drain_after_load_s
            );
            println!("latency (max generator lateness {:.1} ms):", r.driven.max_schedule_lag_ms);
            print_latencies(&r.latency);
            println!("saga steps (from order history):");
            print_latencies(&r.hops);
            print_errors(&r.errors);
            if let Some(c) = &r.correctness {
                payments::print_check(c);
            }
            write_json(&load.json_out, &r, at_start)?;
            if r.correctness.as_ref().is_some_and(|c| !c.ok) {
                std::process::exit(3);
            }
        }
        Command::Bank {
            load,
            accounts,
            initial_deposit,
            deposit_pct,
            withdrawal_pct,
            oversized_withdrawal_pct,
            replays,
            terminal_deadline,
            pids_dir,
            cpu_idle_secs,
            no_check,
        } => {
            anyhow::ensure!(accounts >= 2, "--accounts must be at least 2 (transfers go between them)");
            anyhow::ensure!(deposit_pct >= 0.0 && withdrawal_pct >= 0.0 && deposit_pct + withdrawal_pct <= 100.0, "--deposit-pct + --withdrawal-pct must be within 0..=100");
            anyhow::ensure!((0.0..=100.0).contains(&oversized_withdrawal_pct), "--oversized-withdrawal-pct is a percentage");
            let model = driver::Model::from_args(load.rate, load.concurrency, 100.0)?;
            let settings = bank::Settings {
                accounts,
                initial_deposit,
                deposit_pct,
                withdrawal_pct,
                transfer_pct: 100.0 - deposit_pct - withdrawal_pct,
                oversized_withdrawal_pct,
                replays,
                terminal_deadline_secs: terminal_deadline,
                check: !no_check,
                pids_dir,
                cpu_idle_secs,
            };
            let r = bank::run(stack_api()?, model, load.window(Duration::from_secs(e.request_timeout + 5))?, settings).await?;
            println!(
                "bank ({model:?}, {:.0} s, {accounts} accounts): {} requests, {} ok, {} failed; {} rate-limited (429)",
                load.duration, r.driven.operations, r.driven.ok, r.driven.failed, r.rate_limited
            );
            let t = &r.throughput;
            println!(
                "throughput: started {:.1}/s, accepted {:.1}/s {:?}; queued operations terminal in window {:.1}/s; drain after load {:.2} s",
                t.started_per_s, t.accepted_per_s, t.accepted_per_s_by_kind, t.terminal_per_s_in_window, t.drain_after_load_s
            );
            println!("latency (max generator lateness {:.1} ms):", r.driven.max_schedule_lag_ms);
            print_latencies(&r.latency);
            if !r.refused.is_empty() {
                println!("refused (422, business rules): {:?}", r.refused);
            }
            print_errors(&r.errors);
            if let Some(c) = &r.cpu {
                println!(
                    "cpu over {:.1} s (load start → last operation terminal), net of idle: {:.2} CPU-ms per accepted request; CPU-s {:?}",
                    c.seconds,
                    c.net_cpu_ms_per_request,
                    c.net_cpu_s.iter().map(|(k, v)| format!("{k} {v:.2}")).collect::<Vec<_>>()
                );
            }
            if let Some(c) = &r.correctness {
                bank::print_check(c);
            }
            write_json(&load.json_out, &r, at_start)?;
            if r.correctness.as_ref().is_some_and(|c| !c.ok) {
                std::process::exit(3);
            }
        }
        Command::Interbank { load, banks, users, initial_deposit, many_to_one_pct, decide_deadline, pids_dir, cpu_idle_secs } => {
            anyhow::ensure!(users >= 2, "--users must be at least 2 (transfers go between them)");
            anyhow::ensure!((0.0..=100.0).contains(&many_to_one_pct), "--many-to-one-pct is a percentage");
            let banks = banks
                .iter()
                .map(|b| b.split_once('=').map(|(c, u)| (c.trim().to_string(), u.trim().trim_end_matches('/').to_string())).ok_or_else(|| anyhow::anyhow!("--banks: {b:?} is not code=url")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let model = driver::Model::from_args(load.rate, load.concurrency, 50.0)?;
            let settings = interbank::Settings { banks, users, initial_deposit, many_to_one_pct, decide_deadline_secs: decide_deadline, pids_dir, cpu_idle_secs };
            let r = interbank::run(stack_api()?, model, load.window(Duration::from_secs(e.request_timeout + 5))?, settings).await?;
            println!(
                "interbank ({model:?}, {:.0} s, {users} users): {} requests, {} accepted, refused {:?}; {} SETTLED, FAILED {:?}; settled {:.1}/s in the window",
                load.duration, r.driven.operations, r.accepted, r.refused, r.settled, r.failed, r.settled_per_s
            );
            println!("latency (accept: POST → 202 on the client; decide: PROCESSING → SETTLED/FAILED by the server's timestamps):");
            print_latencies(&r.latency);
            print_errors(&r.errors);
            if let Some(ms) = r.cpu_ms_per_transfer {
                println!("cpu: {ms:.2} CPU-ms per accepted transfer, net of idle; CPU-s {:?}", r.cpu_s.iter().map(|(k, v)| format!("{k} {v:.2}")).collect::<Vec<_>>());
            }
            if r.violations.is_empty() {
                println!("correctness: every transfer decided, no hold left, money conserved across the banks, clearing nets to zero => CORRECT");
            } else {
                println!("correctness: NOT CORRECT");
                for v in &r.violations {
                    println!("  - {v}");
                }
            }
            write_json(&load.json_out, &r, at_start)?;
            if !r.violations.is_empty() {
                std::process::exit(3);
            }
        }
        Command::Push { load, gateway, streams, products, deliver_deadline, pids_dir } => {
            let model = driver::Model::from_args(load.rate, load.concurrency, 50.0)?;
            let settings = push::Settings { gateway, streams, products, deliver_deadline_secs: deliver_deadline, pids_dir };
            let r = push::run(stack_api()?, model, load.window(Duration::from_secs(e.request_timeout + 5))?, settings).await?;
            println!(
                "push ({model:?}, {:.0} s, {} streams): {} orders accepted, {} status events received",
                load.duration, r.streams_open, r.orders_accepted, r.events_received
            );
            println!("latency (pay: reserve + pay through the gateway; push: status committed → received on the stream):");
            print_latencies(&r.latency);
            println!("  {:<44} {}", "push (every status)", r.push.line());
            for (status, l) in &r.push_by_status {
                println!("  {:<44} {}", format!("push {status}"), l.line());
            }
            print_errors(&r.errors);
            if let Some(ms) = r.gateway_cpu_ms_per_event {
                println!("cpu: gateway {ms:.3} CPU-ms per event pushed");
            }
            if r.violations.is_empty() {
                println!("correctness: every order's statuses pushed once, in order, to its user only => CORRECT");
            } else {
                println!("correctness: NOT CORRECT ({} violations)", r.violations.len());
                for v in r.violations.iter().take(20) {
                    println!("  - {v}");
                }
            }
            write_json(&load.json_out, &r, at_start)?;
            if !r.violations.is_empty() {
                std::process::exit(3);
            }
        }
        Command::Search { load, catalogue } => {
            let model = driver::Model::from_args(load.rate, load.concurrency, 200.0)?;
            let r = search::run(stack_api()?, model, load.window(Duration::from_secs(e.request_timeout + 5))?, catalogue).await?;
            println!("search ({model:?}, {:.0} s): {} queries, {:.1}/s", load.duration, r.driven.operations, r.queries_per_s);
            print_latencies(&r.latency);
            print_errors(&r.errors);
            write_json(&load.json_out, &r, at_start)?;
        }
        Command::CdcLag { load, products, poll_ms, timeout } => {
            let model = driver::Model::from_args(load.rate, load.concurrency, 5.0)?;
            let window = load.window(Duration::from_secs(timeout + 5))?;
            let r = cdc::run(stack_api()?, model, window, products, Duration::from_millis(poll_ms.max(1)), Duration::from_secs(timeout)).await?;
            println!("cdc-lag ({model:?}, {:.0} s): {} changes, poll every {poll_ms} ms", load.duration, r.driven.operations);
            print_latencies(&r.latency);
            print_errors(&r.errors);
            write_json(&load.json_out, &r, at_start)?;
        }
        Command::Limits { mysql_url, brokers, duration, db_connections, http_concurrency, partitions, skip, json_out } => {
            anyhow::ensure!(duration > 0.0 && duration <= 600.0, "--duration must be in (0, 600] seconds");
            let r = limits::run(limits::Settings {
                mysql_url,
                brokers,
                duration: Duration::from_secs_f64(duration),
                db_connections,
                http_concurrency,
                partitions,
                skip,
            })
            .await?;
            for e in &r.errors {
                println!("error: {e}");
            }
            println!("{}", serde_json::to_string_pretty(&r)?);
            write_json(&json_out, &r, at_start)?;
            anyhow::ensure!(r.errors.is_empty(), "some measurements failed");
        }
        Command::Summarize { dir } => {
            print!("{}", summarize::run(&dir)?);
        }
    }
    Ok(())
}
