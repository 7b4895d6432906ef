//! The house rules of the code, checked on the sources (no server needed):
//! - the saga's state machine is pure: it imports neither `sqlx`, `rdkafka`, `axum` nor `reqwest`;
//! - no module outside the adapters imports both `sqlx` and `axum`: SQL and HTTP meet only in the
//!   wiring (`lib.rs`, `error.rs`). A new module that mixes them fails here;
//! - the contract crate (`contract/`) is pure: no database, broker, HTTP or async runtime;
//! - the messaging crate (`messaging/`) serves no HTTP (no `axum`): services mount its pieces.

use std::path::{Path, PathBuf};

/// Wiring: builds the router over the pool, maps database errors to HTTP problems.
const WIRING: &[&str] = &["lib.rs", "error.rs"];

/// HTTP handlers that still run their own SQL (split them like `orchestrator/src/orders/` —
/// queries in the module, handlers in `api.rs` — and remove them from this list). Empty: keep it so.
const NOT_YET_SPLIT: &[&str] = &[];

/// Pure modules: no database, broker or HTTP.
const PURE: &[&str] = &[
    "orchestrator/src/saga/machine.rs",
    "orchestrator/src/saga/machine_tests.rs",
    "bank/src/rules/account_number.rs", "bank/src/rules/calendar.rs", "bank/src/rules/documents.rs", "bank/src/rules/interbank.rs", "bank/src/rules/interbank_tests.rs", "bank/src/rules/interbank_auth.rs", "bank/src/rules/ledger.rs", "bank/src/rules/mask.rs", "bank/src/rules/mod.rs", "bank/src/rules/states.rs",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether the code (comments left out) names `krate` as a path root: `use krate…` or `krate::`.
fn uses(code: &str, krate: &str) -> bool {
    code.lines().map(|l| l.split("//").next().unwrap_or("")).any(|l| {
        l.match_indices(krate).any(|(i, _)| {
            let before = l[..i].chars().last();
            let after = &l[i + krate.len()..];
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
        })
    })
}

fn crate_sources() -> Vec<(String, String)> {
    let root = workspace();
    let mut files = Vec::new();
    for member in std::fs::read_dir(&root).unwrap() {
        let src = member.unwrap().path().join("src");
        if src.is_dir() {
            sources(&src, &mut files);
        }
    }
    files
        .into_iter()
        .map(|p| (p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

#[test]
fn the_saga_state_machine_imports_no_database_broker_or_http() {
    let sources = crate_sources();
    for pure in PURE {
        let (_, code) = sources.iter().find(|(p, _)| p == pure).unwrap_or_else(|| panic!("{pure} is gone; update PURE"));
        for krate in ["sqlx", "rdkafka", "axum", "reqwest"] {
            assert!(!uses(code, krate), "{pure} must stay pure but uses {krate}");
        }
    }
}

#[test]
fn the_contract_is_pure_and_messaging_serves_no_http() {
    let sources = crate_sources();
    let contract: Vec<_> = sources.iter().filter(|(p, _)| p.starts_with("contract/src/")).collect();
    assert!(contract.len() >= 6, "the contract crate's modules are found: {}", contract.len());
    for (path, code) in contract {
        for krate in ["sqlx", "rdkafka", "axum", "reqwest", "tokio", "sagaway_common", "sagaway_messaging"] {
            assert!(!uses(code, krate), "{path} is in the contract crate, which must stay pure, but uses {krate}");
        }
    }
    let messaging: Vec<_> = sources.iter().filter(|(p, _)| p.starts_with("messaging/src/")).collect();
    assert!(messaging.len() >= 8, "the messaging crate's modules are found: {}", messaging.len());
    for (path, code) in messaging {
        for krate in ["axum", "sagaway_common"] {
            assert!(!uses(code, krate), "{path} is in the messaging crate, which serves no HTTP and sits below common, but uses {krate}");
        }
    }
}

#[test]
fn sql_and_http_meet_only_in_the_adapters() {
    let mut mixed = Vec::new();
    for (path, code) in crate_sources() {
        if uses(&code, "sqlx") && uses(&code, "axum") {
            mixed.push(path);
        }
    }
    let wiring = |p: &str| WIRING.iter().any(|w| p.ends_with(&format!("/src/{w}")));
    let offenders: Vec<_> = mixed.iter().filter(|p| !wiring(p) && !NOT_YET_SPLIT.contains(&p.as_str())).collect();
    assert!(offenders.is_empty(), "these modules import both sqlx and axum; split the SQL from the handlers: {offenders:?}");
    let stale: Vec<_> = NOT_YET_SPLIT.iter().filter(|p| !mixed.iter().any(|m| m == *p)).collect();
    assert!(stale.is_empty(), "these no longer mix sqlx and axum: take them off NOT_YET_SPLIT: {stale:?}");
}

#[test]
fn the_checker_sees_imports_and_paths_but_not_words() {
    assert!(uses("use sqlx::MySqlPool;", "sqlx"));
    assert!(uses("    let x = sqlx::query(\"\");", "sqlx"));
    assert!(uses("use axum;", "axum"));
    assert!(!uses("// sqlx::query in a comment", "sqlx"));
    assert!(!uses("let mysqlx::a = 1;", "sqlx"));
    assert!(!uses("no axum here", "axum"));
}
