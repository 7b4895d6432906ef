//! `orchestrator dlq ...`: the operator's command line. It is a client of the running
//! orchestrator's admin API (`/admin/dlq`) at `ORCHESTRATOR_HOST`:`ORCHESTRATOR_PORT` (or `--url`),
//! so every operation goes through the same code and the same audit trail as HTTP callers.
//! Arguments are parsed by hand: the grammar is small and this keeps `clap` out of the workspace.

use std::{
    io::{BufRead, IsTerminal, Write},
    time::Duration,
};

use serde_json::{Map, Value, json};

use super::rate::TokenBucket;

pub const USAGE: &str = "\
usage: orchestrator dlq [--url URL] [--operator NAME] <command> [options]

commands:
  list    [filters] [--page N] [--per-page N] [--json]   dead letters, oldest first
  show    <id> [--json]                                   one dead letter with payload and audit trail
  replay  (<id>... | filters | --all) [--dry-run] [--limit N] [--rate PER_SEC]
  abandon (<id>... | filters | --all) [--limit N]        compensate the parked orders
  purge   (<id>... | filters | --all) [--dry-run] [--force] [--limit N] [--yes]
                                      REPLAYED/ABANDONED ones; --force adds PENDING ones whose order is settled
  audit   [--id N] [--limit N]                            the audit trail, newest first

filters:
  --order-id ID  --error-class CLASS  --topic TOPIC  --status STATUS  --service NAME
  --since RFC3339  --until RFC3339

The orchestrator is found at --url, else http://$ORCHESTRATOR_HOST:$ORCHESTRATOR_PORT
(default http://127.0.0.1:3334). --operator (default \"unknown\") is recorded in the audit trail.";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Args {
    pub command: String,
    pub url: Option<String>,
    pub operator: String,
    pub ids: Vec<u64>,
    /// Filter fields, by their API names.
    pub filter: Map<String, Value>,
    pub all: bool,
    pub dry_run: bool,
    pub force: bool,
    pub yes: bool,
    pub json: bool,
    pub limit: Option<u32>,
    pub rate: Option<f64>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
    pub audit_id: Option<u64>,
}

const FILTER_FLAGS: [(&str, &str); 7] = [
    ("--order-id", "order_id"),
    ("--error-class", "error_class"),
    ("--topic", "topic"),
    ("--status", "status"),
    ("--service", "service"),
    ("--since", "since"),
    ("--until", "until"),
];

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

/// Parses the arguments after `dlq`.
pub fn parse(argv: &[String]) -> Result<Args, String> {
    let mut a = Args { operator: "unknown".into(), ..Default::default() };
    let mut it = argv.iter();
    let mut positional = Vec::new();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| format!("{flag} needs a value"));
        if let Some((_, field)) = FILTER_FLAGS.iter().find(|(f, _)| *f == flag) {
            a.filter.insert(field.to_string(), Value::String(value()?));
            continue;
        }
        match flag {
            "--url" => a.url = Some(value()?),
            "--operator" => a.operator = value()?,
            "--limit" => a.limit = Some(number(flag, &value()?)?),
            "--rate" => a.rate = Some(number(flag, &value()?)?),
            "--page" => a.page = Some(number(flag, &value()?)?),
            "--per-page" => a.per_page = Some(number(flag, &value()?)?),
            "--id" => a.audit_id = Some(number(flag, &value()?)?),
            "--all" => a.all = true,
            "--dry-run" => a.dry_run = true,
            "--force" => a.force = true,
            "--yes" | "-y" => a.yes = true,
            "--json" => a.json = true,
            "-h" | "--help" => a.command = "help".into(),
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            _ => positional.push(arg.clone()),
        }
    }
    if a.command == "help" {
        return Ok(a);
    }
    let mut positional = positional.into_iter();
    a.command = positional.next().ok_or("missing command")?;
    for p in positional {
        a.ids.push(number::<u64>("id", &p)?);
    }
    match a.command.as_str() {
        "list" | "audit" if !a.ids.is_empty() => return Err(format!("{} takes no ids", a.command)),
        "show" if a.ids.len() != 1 => return Err("show takes exactly one id".into()),
        "replay" | "abandon" | "purge" => {
            let ways = usize::from(!a.ids.is_empty()) + usize::from(!a.filter.is_empty()) + usize::from(a.all);
            if ways != 1 {
                return Err(format!("{}: give ids, filters or --all (exactly one of them)", a.command));
            }
        }
        "list" | "show" | "audit" => {}
        other => return Err(format!("unknown command {other:?}")),
    }
    if a.dry_run && !matches!(a.command.as_str(), "replay" | "purge") {
        return Err("--dry-run is for replay and purge".into());
    }
    if a.force && a.command != "purge" {
        return Err("--force is for purge".into());
    }
    if a.rate.is_some() && a.command != "replay" {
        return Err("--rate is for replay".into());
    }
    Ok(a)
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
    operator: String,
}

impl Client {
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, String> {
        let res = req.header("X-Operator", &self.operator).send().await.map_err(|e| format!("cannot reach the orchestrator at {}: {e}", self.base))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
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

/// Runs `orchestrator dlq <argv>`; returns the process exit code (0 ok, 1 failed, 2 usage).
pub async fn run(argv: &[String]) -> i32 {
    let args = match parse(argv) {
        Ok(a) if a.command == "help" => {
            println!("{USAGE}");
            return 0;
        }
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return 2;
        }
    };
    let client = Client {
        http: reqwest::Client::builder().timeout(Duration::from_secs(600)).build().expect("an HTTP client builds"),
        base: args.url.clone().unwrap_or_else(default_url).trim_end_matches('/').to_string(),
        operator: args.operator.clone(),
    };
    let done = match args.command.as_str() {
        "list" => list(&client, &args).await,
        "show" => show(&client, &args).await,
        "replay" => replay(&client, &args).await,
        "abandon" => operation(&client, &args, "abandon").await,
        "purge" => purge(&client, &args).await,
        "audit" => audit(&client, &args).await,
        _ => unreachable!("parse accepts only known commands"),
    };
    match done {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("-")
}

async fn list(c: &Client, a: &Args) -> Result<(), String> {
    let mut query: Vec<(String, String)> = a.filter.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect();
    if let Some(p) = a.page {
        query.push(("page".into(), p.to_string()));
    }
    if let Some(p) = a.per_page {
        query.push(("per_page".into(), p.to_string()));
    }
    let page = c.get("/admin/dlq", &query).await?;
    if a.json {
        println!("{}", pretty(&page));
        return Ok(());
    }
    println!("{:>6}  {:<9}  {:<36}  {:<16}  {:<24}  {:>3}  LAST FAILURE", "ID", "STATUS", "ORDER", "ERROR CLASS", "SOURCE TOPIC", "ATT");
    for d in page["items"].as_array().into_iter().flatten() {
        println!(
            "{:>6}  {:<9}  {:<36}  {:<16}  {:<24}  {:>3}  {}",
            d["id"],
            text(d, "status"),
            text(d, "order_id"),
            text(d, "error_class"),
            text(d, "original_topic"),
            d["attempts"].as_i64().map(|n| n.to_string()).unwrap_or("-".into()),
            text(d, "last_failure"),
        );
    }
    println!("page {} of {} dead letters ({} per page)", page["page"], page["total"], page["per_page"]);
    Ok(())
}

async fn show(c: &Client, a: &Args) -> Result<(), String> {
    let d = c.get(&format!("/admin/dlq/{}", a.ids[0]), &[]).await?;
    if a.json {
        println!("{}", pretty(&d));
        return Ok(());
    }
    for field in [
        "id", "status", "status_reason", "order_id", "order_status", "service", "error_class", "error_message", "attempts", "first_failure",
        "last_failure", "original_topic", "original_partition", "original_offset", "original_key", "original_message_id", "message_type",
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
    Ok(())
}

fn selection(a: &Args) -> Value {
    let mut body = json!({});
    if !a.ids.is_empty() {
        body["ids"] = json!(a.ids);
    }
    if !a.filter.is_empty() {
        body["filter"] = Value::Object(a.filter.clone());
    }
    if a.all {
        body["all"] = json!(true);
    }
    if let Some(l) = a.limit {
        body["limit"] = json!(l);
    }
    if a.force {
        body["force"] = json!(true);
    }
    body
}

fn print_outcomes(result: &Value) {
    for o in result["outcomes"].as_array().into_iter().flatten() {
        println!("{:>6}  {:<13} {}", o["dead_letter_id"], text(o, "outcome"), text(o, "detail"));
    }
    println!("summary: {} (audit entry {})", result["summary"], result["audit_id"]);
}

async fn operation(c: &Client, a: &Args, op: &str) -> Result<(), String> {
    let result = c.post(&format!("/admin/dlq/{op}"), &selection(a)).await?;
    print_outcomes(&result);
    Ok(())
}

/// A dry run asks the server once. A real replay first asks for the plan (a dry run), then
/// replays one dead letter per request — paced by `--rate` — so it can draw progress.
async fn replay(c: &Client, a: &Args) -> Result<(), String> {
    let mut body = selection(a);
    body["dry_run"] = json!(true);
    let plan = c.post("/admin/dlq/replay", &body).await?;
    if a.dry_run {
        print_outcomes(&plan);
        return Ok(());
    }
    let ids: Vec<u64> = plan["outcomes"].as_array().into_iter().flatten().filter_map(|o| o["dead_letter_id"].as_u64()).collect();
    if ids.is_empty() {
        println!("nothing to replay");
        return Ok(());
    }
    let mut bucket = a.rate.map(TokenBucket::new);
    let mut progress = Progress::new(ids.len());
    let mut summary = std::collections::BTreeMap::<String, usize>::new();
    for id in ids {
        if let Some(b) = bucket.as_mut() {
            b.acquire().await;
        }
        let result = c.post("/admin/dlq/replay", &json!({"ids": [id]})).await?;
        for o in result["outcomes"].as_array().into_iter().flatten() {
            *summary.entry(text(o, "outcome").to_string()).or_default() += 1;
            progress.log(format!("{:>6}  {:<13} {}", o["dead_letter_id"], text(o, "outcome"), text(o, "detail")));
        }
        progress.step(&summary);
    }
    progress.finish();
    println!("summary: {}", json!(summary));
    Ok(())
}

async fn purge(c: &Client, a: &Args) -> Result<(), String> {
    if a.dry_run {
        let mut body = selection(a);
        body["dry_run"] = json!(true);
        print_outcomes(&c.post("/admin/dlq/purge", &body).await?);
        return Ok(());
    }
    if !a.yes {
        let count = if !a.ids.is_empty() {
            a.ids.len().to_string()
        } else {
            let query: Vec<(String, String)> = a.filter.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect();
            let total = c.get("/admin/dlq", &query).await?["total"].as_i64().unwrap_or(0);
            match a.limit {
                Some(l) => total.min(i64::from(l)).to_string(),
                None => total.to_string(),
            }
        };
        if !std::io::stdin().is_terminal() {
            return Err(format!("purge would drop {count} dead letter(s); rerun with --yes to confirm"));
        }
        eprint!("Purge {count} dead letter(s)? Their payloads are erased for good. [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("not purged");
            return Ok(());
        }
    }
    operation(c, a, "purge").await
}

async fn audit(c: &Client, a: &Args) -> Result<(), String> {
    let mut query = Vec::new();
    if let Some(id) = a.audit_id {
        query.push(("dead_letter_id".to_string(), id.to_string()));
    }
    if let Some(l) = a.limit {
        query.push(("limit".to_string(), l.to_string()));
    }
    let entries = c.get("/admin/dlq/audit", &query).await?;
    if a.json {
        println!("{}", pretty(&entries));
        return Ok(());
    }
    for e in entries.as_array().into_iter().flatten() {
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
    Ok(())
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

    fn step(&mut self, summary: &std::collections::BTreeMap<String, usize>) {
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

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_a_filtered_rate_limited_replay() {
        let a = parse(&args("--operator alice replay --error-class processing_error --topic=payment.commands --rate 5 --limit 10")).unwrap();
        assert_eq!(a.command, "replay");
        assert_eq!(a.operator, "alice");
        assert_eq!(a.filter["error_class"], "processing_error");
        assert_eq!(a.filter["topic"], "payment.commands");
        assert_eq!((a.rate, a.limit), (Some(5.0), Some(10)));
    }

    #[test]
    fn ids_filters_and_all_are_exclusive_and_required() {
        assert!(parse(&args("replay")).is_err());
        assert!(parse(&args("replay 3 --all")).is_err());
        assert!(parse(&args("purge 1 2 --status PENDING")).is_err());
        assert_eq!(parse(&args("purge 1 2 --yes")).unwrap().ids, [1, 2]);
        assert!(parse(&args("abandon --all")).unwrap().all);
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        assert!(parse(&args("show")).is_err());
        assert!(parse(&args("show x")).is_err());
        assert!(parse(&args("list --frobnicate")).is_err());
        assert!(parse(&args("abandon 1 --dry-run")).is_err());
        assert!(parse(&args("replay 1 --force")).is_err());
        assert!(parse(&args("purge 1 --dry-run --force")).unwrap().force);
        assert!(parse(&args("replay 1 --rate fast")).is_err());
        assert!(parse(&args("explode")).is_err());
        assert_eq!(parse(&args("--help")).unwrap().command, "help");
    }
}
