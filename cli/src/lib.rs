//! `sagaway ...`: the operator's command line. Every command is a client of a running service's
//! admin HTTP API, so it goes through the same code and the same audit trail as HTTP callers.
//!
//! - `sagaway dlq ...`: dead letters, through the orchestrator's `/admin/dlq` (docs/dlq-runbook.md).
//!
//! Exit codes: 0 everything acted (and for `--help`/`--version`), 1 a failure or any dead letter
//! `skipped` or `not_found` (they are listed on stderr), 2 a usage error.

use std::{
    collections::BTreeMap,
    io::{BufRead, IsTerminal, Write},
    time::Duration,
};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, error::ErrorKind};
use sagaway_common::rate::TokenBucket;
use serde_json::{Map, Value, json};

/// The operator's command line for Sagaway (a client of the services' admin HTTP APIs).
#[derive(Debug, Parser)]
#[command(name = "sagaway", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dead letters: list, show, replay, abandon, resolve, purge and their audit trail.
    Dlq(Dlq),
}

/// Dead letters, through the orchestrator's admin API (`/admin/dlq`).
#[derive(Debug, Args)]
#[command(after_help = "The orchestrator is found at --url, else http://$ORCHESTRATOR_HOST:$ORCHESTRATOR_PORT \
(default http://127.0.0.1:3334). Every call needs an admin's bearer token (--token or SAGAWAY_TOKEN; \
on the local stack: `export SAGAWAY_TOKEN=$(scripts/stack token <you> --admin)`); the audit trail records its subject.\n\
Exit codes: 0 all acted, 1 failure or any dead letter skipped / not found, 2 usage error.")]
pub struct Dlq {
    /// The orchestrator's base URL.
    #[arg(long, global = true, help_heading = "Global options", value_name = "URL")]
    pub url: Option<String>,
    /// An admin's bearer token (the audit trail records its subject).
    #[arg(long, global = true, help_heading = "Global options", value_name = "JWT", env = "SAGAWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON (a paced replay prints one response per line).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters, oldest first.
    List {
        /// Which page (from 1).
        #[arg(long, value_name = "N")]
        page: Option<u32>,
        /// Dead letters per page.
        #[arg(long, value_name = "N")]
        per_page: Option<u32>,
        #[command(flatten)]
        filter: Filter,
    },
    /// One dead letter with its payload and audit trail.
    Show { id: u64 },
    /// Replay onto the original topic (PENDING ones; others are recorded no-ops).
    Replay {
        /// Say what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many replays per second.
        #[arg(long, value_name = "PER_SEC", value_parser = rate)]
        rate: Option<f64>,
        /// Do not ask for confirmation (needed without a terminal for --all or a filter).
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        selection: Selection,
    },
    /// Compensate the parked orders (→ COMPENSATED).
    Abandon {
        /// Do not ask for confirmation (needed without a terminal).
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        selection: Selection,
    },
    /// Mark dead letters handled (RESOLVED) with a reason; a compensation step its order waits on
    /// (a release or refund done by hand) is settled, and the order may end COMPENSATED.
    Resolve {
        /// Why they need nothing more: what was done by hand (1-255 characters; audited).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Say what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation (needed without a terminal).
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        selection: Selection,
    },
    /// Erase the payloads of REPLAYED/ABANDONED/RESOLVED dead letters (mark them PURGED).
    Purge {
        /// Say what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also PENDING ones whose order is settled or unknown.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation (needed without a terminal).
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        selection: Selection,
    },
    /// The audit trail, newest first.
    Audit {
        /// Only entries about this dead letter.
        #[arg(long, value_name = "N")]
        id: Option<u64>,
        /// At most this many entries (one page; the server's default is 100).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// The page after the one that printed this cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
}

/// Filters, by the API's field names.
#[derive(Debug, Clone, Default, PartialEq, Args)]
#[command(next_help_heading = "Filters")]
pub struct Filter {
    /// The order the dead-lettered message was about.
    #[arg(long, value_name = "ID")]
    pub order_id: Option<String>,
    /// processing_error, malformed, invalid_command, card_unreadable, ...
    #[arg(long, value_name = "CLASS")]
    pub error_class: Option<String>,
    /// The source topic, with or without the topic prefix (payment.commands).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// PENDING, REPLAYED, ABANDONED, RESOLVED or PURGED (lists hide PURGED unless asked).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// The service that gave up (payment, orchestrator, product, bank).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Only letters carrying a compensation step (a release, refund or void given up on).
    #[arg(long)]
    pub compensation: bool,
    /// Failing at or after this time (its last failure is not earlier).
    #[arg(long, value_name = "RFC3339")]
    pub since: Option<String>,
    /// Failing at or before this time (its first failure is not later).
    #[arg(long, value_name = "RFC3339")]
    pub until: Option<String>,
}

impl Filter {
    /// The set fields as (API name, value).
    pub fn fields(&self) -> Vec<(String, String)> {
        [
            ("order_id", &self.order_id),
            ("error_class", &self.error_class),
            ("topic", &self.topic),
            ("status", &self.status),
            ("service", &self.service),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
        .chain(self.compensation.then(|| ("compensation".to_string(), "true".to_string())))
        .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }
}

/// Which dead letters: ids, or filters, or `--all` (exactly one of them).
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct Selection {
    /// Dead-letter ids.
    pub ids: Vec<u64>,
    #[command(flatten)]
    pub filter: Filter,
    /// Every dead letter in the default status.
    #[arg(long, help_heading = "Selection")]
    pub all: bool,
    /// At most this many (oldest first).
    #[arg(long, value_name = "N", help_heading = "Selection")]
    pub limit: Option<u32>,
}

impl Selection {
    /// Selects by ids, by filter or all: exactly one way.
    fn ways(&self) -> usize {
        usize::from(!self.ids.is_empty()) + usize::from(!self.filter.is_empty()) + usize::from(self.all)
    }

    /// The request body's selection part.
    fn body(&self) -> Value {
        let mut body = json!({});
        if !self.ids.is_empty() {
            body["ids"] = json!(self.ids);
        }
        if !self.filter.is_empty() {
            body["filter"] = Value::Object(
                self.filter
                    .fields()
                    .into_iter()
                    .map(|(k, v)| {
                        let v = if k == "compensation" { Value::Bool(v == "true") } else { Value::String(v) };
                        (k, v)
                    })
                    .collect::<Map<_, _>>(),
            );
        }
        if self.all {
            body["all"] = json!(true);
        }
        if let Some(l) = self.limit {
            body["limit"] = json!(l);
        }
        body
    }
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a positive number of operations per second")),
    }
}

/// Parses a whole command line (`argv[0]` is the program name), checking what clap's derive
/// cannot say: a selection is ids, filters or `--all` — exactly one of them.
pub fn parse<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = Cli::command();
    let cli = Cli::from_arg_matches(&command.try_get_matches_from_mut(argv)?)?;
    let Command::Dlq(dlq) = &cli.command;
    let (name, selection) = match &dlq.command {
        DlqCommand::Replay { selection, .. } => ("replay", selection),
        DlqCommand::Abandon { selection, .. } => ("abandon", selection),
        DlqCommand::Purge { selection, .. } => ("purge", selection),
        DlqCommand::Resolve { selection, reason, .. } => {
            if reason.trim().is_empty() || reason.chars().count() > 255 {
                let sub = command.find_subcommand_mut("dlq").and_then(|d| d.find_subcommand_mut("resolve")).expect("dlq has resolve");
                return Err(sub.error(ErrorKind::ValueValidation, "--reason must be 1-255 characters, not blank"));
            }
            ("resolve", selection)
        }
        _ => return Ok(cli),
    };
    if selection.ways() != 1 {
        // The subcommand's own usage line (`sagaway dlq replay [OPTIONS] ...`) in the message.
        let sub = command.find_subcommand_mut("dlq").and_then(|d| d.find_subcommand_mut(name)).expect("dlq has this subcommand");
        return Err(sub.error(ErrorKind::ArgumentConflict, "give ids, filters or --all (exactly one of them)"));
    }
    Ok(cli)
}

/// Runs `sagaway <argv[1..]>` (`argv[0]` is the program name); returns the process exit code:
/// 0 ok (and `--help`, `--version`), 1 failed or anything skipped / not found, 2 usage.
pub async fn run(argv: &[String]) -> i32 {
    let cli = match parse(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // 0 for --help and --version, 2 for usage errors.
            return e.exit_code();
        }
    };
    let Command::Dlq(dlq) = cli.command;
    let Some(token) = dlq.token.clone().filter(|t| !t.trim().is_empty()) else {
        eprintln!("error: an admin's bearer token is required: --token <JWT> or SAGAWAY_TOKEN (local stack: scripts/stack token <you> --admin)");
        return 2;
    };
    let client = Client {
        http: reqwest::Client::builder().timeout(Duration::from_secs(600)).build().expect("an HTTP client builds"),
        base: dlq.url.clone().unwrap_or_else(default_url).trim_end_matches('/').to_string(),
        token,
        json: dlq.json,
    };
    let done = match &dlq.command {
        DlqCommand::List { filter, page, per_page } => list(&client, filter, *page, *per_page).await,
        DlqCommand::Show { id } => show(&client, *id).await,
        DlqCommand::Replay { selection, dry_run, rate, yes } => replay(&client, selection, *dry_run, *rate, *yes).await,
        DlqCommand::Abandon { selection, yes } => abandon(&client, selection, *yes).await,
        DlqCommand::Purge { selection, dry_run, force, yes } => purge(&client, selection, *dry_run, *force, *yes).await,
        DlqCommand::Resolve { selection, reason, dry_run, yes } => resolve(&client, selection, reason, *dry_run, *yes).await,
        DlqCommand::Audit { id, limit, cursor } => audit(&client, *id, *limit, cursor.as_deref()).await,
    };
    match done {
        Ok(Done::AllActed) => 0,
        Ok(Done::NotAll(lines)) => {
            for l in lines {
                eprintln!("{l}");
            }
            1
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// How a command ended, when it reached the server.
#[derive(Debug, PartialEq)]
enum Done {
    AllActed,
    /// Some dead letters were skipped or not found: one line each.
    NotAll(Vec<String>),
}

/// `http://$ORCHESTRATOR_HOST:$ORCHESTRATOR_PORT` (a wildcard host means this machine).
fn default_url() -> String {
    let host = std::env::var("ORCHESTRATOR_HOST").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "127.0.0.1".into());
    let host = if host == "0.0.0.0" || host == "::" { "127.0.0.1".to_string() } else { host };
    let port = std::env::var("ORCHESTRATOR_PORT").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "3334".into());
    format!("http://{host}:{port}")
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    json: bool,
}

impl Client {
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, String> {
        let res = req.bearer_auth(&self.token).send().await.map_err(|e| format!("cannot reach the orchestrator at {}: {e}", self.base))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            if self.json && !body.is_null() {
                println!("{}", pretty(&body));
            }
            let detail = body["detail"].as_str().unwrap_or("");
            return Err(format!("{status}: {} {detail}", body["code"].as_str().unwrap_or("error")));
        }
        Ok(body)
    }

    async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, String> {
        self.call(self.http.get(format!("{}{path}", self.base)).query(query)).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.call(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("-")
}

fn outcomes(result: &Value) -> impl Iterator<Item = &Value> {
    result["outcomes"].as_array().into_iter().flatten()
}

fn outcome_line(o: &Value) -> String {
    format!("{:>6}  {:<13} {}", o["dead_letter_id"], text(o, "outcome"), text(o, "detail"))
}

/// `skipped` and `not_found` outcomes make the exit code 1.
fn not_acted(o: &Value) -> bool {
    matches!(o["outcome"].as_str(), Some("skipped" | "not_found"))
}

fn done<'a>(outcomes: impl IntoIterator<Item = &'a Value>) -> Done {
    let lines: Vec<String> = outcomes.into_iter().filter(|o| not_acted(o)).map(|o| format!("not acted on: {}", outcome_line(o).trim_start())).collect();
    if lines.is_empty() { Done::AllActed } else { Done::NotAll(lines) }
}

/// Prints an operation's result (the server's JSON with `--json`) and says whether all acted.
fn report(c: &Client, result: &Value) -> Done {
    if c.json {
        println!("{}", pretty(result));
    } else {
        for o in outcomes(result) {
            println!("{}", outcome_line(o));
        }
        println!("summary: {} (audit entry {})", result["summary"], result["audit_id"]);
    }
    done(outcomes(result))
}

/// Asks "`question` [y/N]" on a terminal; without one, refuses unless `yes`.
fn confirm(question: &str, yes: bool) -> Result<bool, String> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!("{question} — not on a terminal: rerun with --yes to confirm"));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

async fn list(c: &Client, filter: &Filter, page: Option<u32>, per_page: Option<u32>) -> Result<Done, String> {
    let mut query = filter.fields();
    if let Some(p) = page {
        query.push(("page".into(), p.to_string()));
    }
    if let Some(p) = per_page {
        query.push(("per_page".into(), p.to_string()));
    }
    let page = c.get("/admin/dlq", &query).await?;
    if c.json {
        println!("{}", pretty(&page));
        return Ok(Done::AllActed);
    }
    println!("{:>6}  {:<9}  {:<36}  {:<16}  {:<24}  {:<19}  {:>3}  LAST FAILURE", "ID", "STATUS", "ORDER", "ERROR CLASS", "SOURCE TOPIC", "COMPENSATION", "ATT");
    for d in page["items"].as_array().into_iter().flatten() {
        println!(
            "{:>6}  {:<9}  {:<36}  {:<16}  {:<24}  {:<19}  {:>3}  {}",
            d["id"],
            text(d, "status"),
            text(d, "order_id"),
            text(d, "error_class"),
            text(d, "original_topic"),
            text(d, "compensation"),
            d["attempts"].as_i64().map(|n| n.to_string()).unwrap_or("-".into()),
            text(d, "last_failure"),
        );
    }
    println!("page {} of {} dead letters ({} per page)", page["page"], page["total"], page["per_page"]);
    Ok(Done::AllActed)
}

async fn show(c: &Client, id: u64) -> Result<Done, String> {
    let d = c.get(&format!("/admin/dlq/{id}"), &[]).await?;
    if c.json {
        println!("{}", pretty(&d));
        return Ok(Done::AllActed);
    }
    for field in [
        "id", "status", "status_reason", "order_id", "order_status", "service", "error_class", "error_message", "attempts", "first_failure",
        "last_failure", "dlq_topic", "original_topic", "original_partition", "original_offset", "original_key", "original_message_id", "message_type", "compensation",
        "replay_message_id", "received_at",
    ] {
        if !d[field].is_null() {
            println!("{field:>20}: {}", d[field].as_str().map(str::to_string).unwrap_or_else(|| d[field].to_string()));
        }
    }
    let payload = d["payload"].as_str().map(|p| serde_json::from_str::<Value>(p).map(|v| pretty(&v)).unwrap_or(p.to_string()));
    println!("{:>20}: {}", "payload", payload.unwrap_or_else(|| "(none)".into()));
    println!("audit:");
    for e in d["audit"].as_array().into_iter().flatten() {
        let outcome = e["outcomes"].as_array().and_then(|o| o.first()).map(|o| format!("{} {}", text(o, "outcome"), text(o, "detail")));
        println!("  {}  {:<10} {:<8}{} {}", text(e, "at"), text(e, "operator"), text(e, "operation"), if e["dry_run"] == true { " (dry run)" } else { "" }, outcome.unwrap_or_default());
    }
    Ok(Done::AllActed)
}

/// A replay first asks for the plan (a dry run); `--dry-run` stops there. Replaying all or by
/// filter asks for confirmation with the plan's count. Then it replays one dead letter per
/// request — paced by `--rate` — so it can draw progress.
async fn replay(c: &Client, selection: &Selection, dry_run: bool, rate: Option<f64>, yes: bool) -> Result<Done, String> {
    let mut body = selection.body();
    body["dry_run"] = json!(true);
    let plan = c.post("/admin/dlq/replay", &body).await?;
    if dry_run {
        return Ok(report(c, &plan));
    }
    let ids: Vec<u64> = outcomes(&plan).filter_map(|o| o["dead_letter_id"].as_u64()).collect();
    if ids.is_empty() {
        if c.json {
            println!("{}", pretty(&plan));
        } else {
            println!("nothing to replay");
        }
        return Ok(Done::AllActed);
    }
    if selection.ids.is_empty() {
        let would = outcomes(&plan).filter(|o| o["outcome"] == "would_replay").count();
        let others = ids.len() - would;
        let question = if others == 0 {
            format!("Replay {would} dead letter(s)?")
        } else {
            format!("Replay {would} dead letter(s) ({others} more would be skipped or not found)?")
        };
        if !confirm(&question, yes)? {
            println!("not replayed");
            return Ok(Done::AllActed);
        }
    }
    let mut bucket = rate.map(TokenBucket::new);
    let mut progress = Progress::new(ids.len());
    let mut summary = BTreeMap::<String, usize>::new();
    let mut all = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(b) = bucket.as_mut() {
            b.acquire().await;
        }
        let result = c.post("/admin/dlq/replay", &json!({"ids": [id]})).await?;
        if c.json {
            progress.log(serde_json::to_string(&result).unwrap_or_default());
        }
        for o in outcomes(&result) {
            *summary.entry(text(o, "outcome").to_string()).or_default() += 1;
            if !c.json {
                progress.log(outcome_line(o));
            }
            all.push(o.clone());
        }
        progress.step(&summary);
    }
    progress.finish();
    if !c.json {
        println!("summary: {}", json!(summary));
    }
    Ok(done(&all))
}

/// Abandon has no dry run: the count to confirm comes from the list (PENDING unless the filter
/// says otherwise, as the server selects).
async fn abandon(c: &Client, selection: &Selection, yes: bool) -> Result<Done, String> {
    if !yes {
        let count = if !selection.ids.is_empty() {
            let n = selection.ids.len();
            selection.limit.map_or(n, |l| n.min(l as usize)) as u64
        } else {
            let mut filter = selection.filter.clone();
            filter.status.get_or_insert_with(|| "PENDING".into());
            let total = c.get("/admin/dlq", &[filter.fields(), vec![("per_page".into(), "1".into())]].concat()).await?["total"].as_u64().unwrap_or(0);
            selection.limit.map_or(total, |l| total.min(u64::from(l)))
        };
        if count == 0 {
            println!("nothing to abandon");
            return Ok(Done::AllActed);
        }
        if !confirm(&format!("Abandon {count} dead letter(s)? Their orders are compensated."), yes)? {
            println!("not abandoned");
            return Ok(Done::AllActed);
        }
    }
    let result = c.post("/admin/dlq/abandon", &selection.body()).await?;
    Ok(report(c, &result))
}

/// The count to confirm comes from a dry run.
async fn purge(c: &Client, selection: &Selection, dry_run: bool, force: bool, yes: bool) -> Result<Done, String> {
    let mut body = selection.body();
    if force {
        body["force"] = json!(true);
    }
    if dry_run || !yes {
        let mut dry = body.clone();
        dry["dry_run"] = json!(true);
        let plan = c.post("/admin/dlq/purge", &dry).await?;
        if dry_run {
            return Ok(report(c, &plan));
        }
        let would = outcomes(&plan).filter(|o| o["outcome"] == "would_purge").count();
        if would == 0 {
            if c.json {
                println!("{}", pretty(&plan));
            } else {
                println!("nothing to purge");
            }
            return Ok(done(outcomes(&plan)));
        }
        let others = outcomes(&plan).count() - would;
        let more = if others == 0 { String::new() } else { format!(" ({others} more would be skipped or not found)") };
        if !confirm(&format!("Purge {would} dead letter(s){more}? Their payloads are erased for good."), yes)? {
            println!("not purged");
            return Ok(Done::AllActed);
        }
    }
    let result = c.post("/admin/dlq/purge", &body).await?;
    Ok(report(c, &result))
}

/// Like purge: the count to confirm comes from a dry run (which is all `--dry-run` does).
async fn resolve(c: &Client, selection: &Selection, reason: &str, dry_run: bool, yes: bool) -> Result<Done, String> {
    let mut body = selection.body();
    body["reason"] = json!(reason);
    if dry_run || !yes {
        let mut dry = body.clone();
        dry["dry_run"] = json!(true);
        let plan = c.post("/admin/dlq/resolve", &dry).await?;
        if dry_run {
            return Ok(report(c, &plan));
        }
        let would = outcomes(&plan).filter(|o| o["outcome"] == "would_resolve").count();
        if would == 0 {
            if c.json {
                println!("{}", pretty(&plan));
            } else {
                println!("nothing to resolve");
            }
            return Ok(done(outcomes(&plan)));
        }
        let others = outcomes(&plan).count() - would;
        let more = if others == 0 { String::new() } else { format!(" ({others} more would be skipped or not found)") };
        if !confirm(&format!("Resolve {would} dead letter(s){more} as handled: {reason:?}?"), yes)? {
            println!("not resolved");
            return Ok(Done::AllActed);
        }
    }
    let result = c.post("/admin/dlq/resolve", &body).await?;
    Ok(report(c, &result))
}

async fn audit(c: &Client, id: Option<u64>, limit: Option<u32>, cursor: Option<&str>) -> Result<Done, String> {
    let mut query = Vec::new();
    if let Some(id) = id {
        query.push(("dead_letter_id".to_string(), id.to_string()));
    }
    if let Some(l) = limit {
        query.push(("limit".to_string(), l.to_string()));
    }
    if let Some(cursor) = cursor {
        query.push(("cursor".to_string(), cursor.to_string()));
    }
    let page = c.get("/admin/dlq/audit", &query).await?;
    if c.json {
        println!("{}", pretty(&page));
        return Ok(Done::AllActed);
    }
    for e in page["items"].as_array().into_iter().flatten() {
        let outcomes: Vec<String> = e["outcomes"].as_array().into_iter().flatten().map(|o| format!("{}:{}", o["dead_letter_id"], text(o, "outcome"))).collect();
        println!(
            "{:>5}  {}  {:<12} {:<8}{}  {}",
            e["id"],
            text(e, "at"),
            text(e, "operator"),
            text(e, "operation"),
            if e["dry_run"] == true { " (dry run)" } else { "" },
            outcomes.join(" ")
        );
    }
    if let Some(next) = page["next_cursor"].as_str() {
        println!("older entries: sagaway dlq audit --cursor {next}");
    }
    Ok(Done::AllActed)
}

/// A progress bar on stderr when it is a terminal; plain lines otherwise.
struct Progress {
    total: usize,
    done: usize,
    tty: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self { total, done: 0, tty: std::io::stderr().is_terminal() }
    }

    fn log(&self, line: String) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        println!("{line}");
    }

    fn step(&mut self, summary: &BTreeMap<String, usize>) {
        self.done += 1;
        if !self.tty {
            return;
        }
        const WIDTH: usize = 30;
        let filled = WIDTH * self.done / self.total.max(1);
        let counts: Vec<String> = summary.iter().map(|(k, v)| format!("{k} {v}")).collect();
        eprint!("\r\x1b[2K[{}{}] {}/{} {}", "#".repeat(filled), ".".repeat(WIDTH - filled), self.done, self.total, counts.join(", "));
        let _ = std::io::stderr().flush();
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        std::iter::once("sagaway").chain(s.split_whitespace()).map(str::to_string).collect()
    }

    fn dlq(s: &str) -> Result<Dlq, clap::Error> {
        parse(argv(s)).map(|c| {
            let Command::Dlq(d) = c.command;
            d
        })
    }

    #[test]
    fn the_derive_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_a_filtered_rate_limited_replay() {
        let d = dlq("dlq --token t.a.b replay --error-class processing_error --topic=payment.commands --rate 5 --limit 10 --yes").unwrap();
        assert_eq!((d.token.as_deref(), d.url, d.json), (Some("t.a.b"), None, false));
        let DlqCommand::Replay { selection, dry_run, rate, yes } = d.command else { panic!("{:?}", d.command) };
        assert_eq!(selection.filter.fields(), [("error_class".into(), "processing_error".into()), ("topic".into(), "payment.commands".into())]);
        assert_eq!((rate, selection.limit, dry_run, yes), (Some(5.0), Some(10), false, true));
        assert_eq!(selection.body(), json!({"filter": {"error_class": "processing_error", "topic": "payment.commands"}, "limit": 10}));
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let d = dlq("dlq --url http://h:1 list --json --token x.y.z --status PENDING --page 2").unwrap();
        assert_eq!((d.url.as_deref(), d.token.as_deref(), d.json), (Some("http://h:1"), Some("x.y.z"), true));
        assert!(matches!(d.command, DlqCommand::List { page: Some(2), per_page: None, ref filter } if filter.status.as_deref() == Some("PENDING")));

        assert!(matches!(dlq("dlq audit --id 3 --limit 5").unwrap().command, DlqCommand::Audit { id: Some(3), limit: Some(5), cursor: None }));
    }

    #[test]
    fn ids_filters_and_all_are_exclusive_and_required() {
        for bad in ["dlq replay", "dlq replay 3 --all", "dlq purge 1 2 --status PENDING", "dlq abandon --all --topic t", "dlq abandon --limit 3"] {
            assert_eq!(parse(argv(bad)).unwrap_err().kind(), ErrorKind::ArgumentConflict, "{bad}");
        }
        let DlqCommand::Purge { selection, yes, .. } = dlq("dlq purge 1 2 --yes").unwrap().command else { panic!() };
        assert_eq!((selection.ids, yes), (vec![1, 2], true));
        let DlqCommand::Abandon { selection, yes } = dlq("dlq abandon --all -y").unwrap().command else { panic!() };
        assert!(selection.all && yes);
    }

    #[test]
    fn resolve_needs_a_selection_and_a_reason_and_sends_them() {
        let DlqCommand::Resolve { selection, reason, dry_run, yes } = dlq("dlq resolve --compensation --order-id o-1 --reason refunded_by_hand --dry-run").unwrap().command else { panic!() };
        assert_eq!((reason.as_str(), dry_run, yes), ("refunded_by_hand", true, false));
        assert_eq!(selection.body(), json!({"filter": {"order_id": "o-1", "compensation": true}}));
        for bad in ["dlq resolve 3", "dlq resolve --reason x", "dlq resolve 3 --all --reason x"] {
            assert_eq!(parse(argv(bad)).unwrap_err().exit_code(), 2, "{bad}");
        }
        let blank = parse(["sagaway", "dlq", "resolve", "3", "--reason", "  "]).unwrap_err();
        assert_eq!((blank.kind(), blank.exit_code()), (ErrorKind::ValueValidation, 2));
        let DlqCommand::List { filter, .. } = dlq("dlq list --compensation --status PENDING").unwrap().command else { panic!() };
        assert_eq!(filter.fields(), [("status".into(), "PENDING".into()), ("compensation".into(), "true".into())]);
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        for bad in [
            "dlq show",
            "dlq show x",
            "dlq show 1 2",
            "dlq list --frobnicate",
            "dlq list 3",
            "dlq abandon 1 --dry-run",
            "dlq replay 1 --force",
            "dlq abandon 1 --rate 5",
            "dlq replay 1 --rate fast",
            "dlq replay 1 --rate 0",
            "dlq explode",
            "explode",
            "dlq audit 4",
        ] {
            let e = parse(argv(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
        assert!(matches!(dlq("dlq purge 1 --dry-run --force").unwrap().command, DlqCommand::Purge { force: true, dry_run: true, .. }));
    }

    #[test]
    fn help_and_version_exit_zero() {
        for ok in ["--help", "dlq --help", "dlq replay --help", "help dlq", "--version"] {
            let e = Cli::try_parse_from(argv(ok)).unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion), "{ok}: {:?}", e.kind());
            assert_eq!(e.exit_code(), 0, "{ok}");
        }
        assert_eq!(parse(argv("")).unwrap_err().exit_code(), 2, "no command is a usage error");
    }

    #[tokio::test]
    async fn run_exits_0_for_help_and_2_for_usage() {
        assert_eq!(run(&argv("dlq --help")).await, 0);
        assert_eq!(run(&argv("--version")).await, 0);
        assert_eq!(run(&argv("dlq replay")).await, 2);
        assert_eq!(run(&argv("dlq list --bogus")).await, 2);
    }

    #[test]
    fn skipped_or_not_found_is_not_all_acted() {
        let acted = json!({"outcomes": [{"dead_letter_id": 1, "outcome": "replayed", "detail": "ok"}, {"dead_letter_id": 2, "outcome": "would_purge", "detail": ""}]});
        assert_eq!(done(outcomes(&acted)), Done::AllActed);
        let not = json!({"outcomes": [
            {"dead_letter_id": 1, "outcome": "replayed", "detail": "ok"},
            {"dead_letter_id": 2, "outcome": "skipped", "detail": "order COMPLETED"},
            {"dead_letter_id": 3, "outcome": "not_found", "detail": "no such dead letter"},
        ]});
        let Done::NotAll(lines) = done(outcomes(&not)) else { panic!() };
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("skipped") && lines[0].contains("order COMPLETED") && lines[1].contains("not_found"), "{lines:?}");
    }
}
