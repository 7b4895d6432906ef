//! Checks of the deployment files that can be made without Docker: docker-compose.yml is complete
//! and consistent with what the services read, every variable the services read is documented, the
//! standalone and distributed Connect configurations describe the same connector, the identity
//! service runs with its key as a secret and every service trusts it, each Kafka principal's ACLs
//! (deploy/kafka/acls.conf) grant exactly the topics and groups its code uses, the bank runs beside
//! the saga services as one of the orchestrator's banks, the Dockerfile builds every service
//! binary, every Sagaway image is built and every other pinned (Debezium to the tested line, a
//! maintained Kafka UI), topic replicas fit the brokers and their min ISR with one broker and with
//! three, the CDC topic is compacted, and no secret has a default. Compose runs every service binary
//! (the bank three times: 001, 002, 003, and the gateway), database URLs name a user and no password
//! (each service reads its own from a secret; deploy/mysql/init.sh makes the users), every secret is
//! declared, mounted where it is named and made by scripts/compose-secrets, and the monitoring files
//! (deploy/prometheus/, deploy/grafana/) are mounted and scrape every service (their content:
//! scripts/check-monitoring). The Kubernetes overlays (deploy/k8s/) build and follow the deployment
//! rules, run every service binary (the bank three times, each its own code, principal, topics and
//! key, one directory), give each database user's password as its own mounted Secret file, create
//! the users with deploy/mysql/init.sh, and let the gateway and the banks reach every bank.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every environment variable the services read: literals passed to the config helpers, plus the
/// per-service variables `CommonConfig::from_env` derives from the service prefix.
fn variables_read_by_services() -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let mut files = Vec::new();
    for dir in ["common/src", "messaging/src", "product/src", "orchestrator/src", "payment/src", "bank/src", "gateway/src"] {
        collect_rs(&repo().join(dir), &mut files);
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for call in ["env_or(\"", "env_string(\"", "env::var(\""] {
            for (i, _) in text.match_indices(call) {
                let rest = &text[i + call.len()..];
                let name = &rest[..rest.find('"').unwrap()];
                if name.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()) && !name.is_empty() {
                    vars.insert(name.to_string());
                }
            }
        }
    }
    for svc in ["PRODUCT", "ORCHESTRATOR", "PAYMENT", "BANK"] {
        for suffix in DERIVED_SUFFIXES {
            vars.insert(format!("{svc}_{suffix}"));
        }
    }
    vars
}

/// What `CommonConfig::from_env` (and `config::database_url`) read under a service's prefix.
const DERIVED_SUFFIXES: [&str; 5] = ["HOST", "PORT", "DATABASE_URL", "DATABASE_PASSWORD_FILE", "DB_MAX_CONNECTIONS"];

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_variable_the_services_read_is_documented() {
    let docs = read("docs/configuration.md");
    // docs/configuration.md sends the bank's own settings (`BANK_*`) to bank/README.md, and the
    // gateway's (`GATEWAY_*` and the services' addresses it reads) to gateway/README.md.
    let bank_readme = read("bank/README.md");
    let gateway_readme = read("gateway/README.md");
    assert!(docs.contains("(`GATEWAY_*`") && docs.contains("gateway/README.md"), "docs/configuration.md points to the gateway's settings");
    assert!(docs.contains("(`BANK_*`") && docs.contains("bank/README.md"), "docs/configuration.md points to the bank's settings");
    let vars = variables_read_by_services();
    assert!(vars.len() > 20, "the scan found the services' variables: {vars:?}");
    assert!(vars.contains("BANK_CODE") && vars.contains("BANK_TIME_ZONE"), "the scan covers the bank");
    let undocumented: Vec<_> = vars
        .iter()
        .filter(|v| {
            let generic = DERIVED_SUFFIXES.iter().any(|s| v.ends_with(s) && docs.contains(&format!("`<SVC>_{s}`")));
            let bank = v.starts_with("BANK_") && bank_readme.contains(&format!("`{v}`"));
            let gateway = gateway_readme.contains(&format!("`{v}`"));
            !docs.contains(&format!("`{v}`")) && !generic && !bank && !gateway
        })
        .collect();
    assert!(undocumented.is_empty(), "not in docs/configuration.md: {undocumented:?}");
}

#[test]
fn compose_services_have_an_image_a_healthcheck_and_the_settings_the_services_expect() {
    let mut compose: Value = serde_yaml::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    compose.apply_merge().expect("merge keys resolve");
    let services = compose["services"].as_mapping().expect("services");
    let known = variables_read_by_services();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        assert!(svc.get("image").is_some() || svc.get("build").is_some(), "{name} has neither image nor build");
        let one_shot = svc.get("restart").and_then(Value::as_str) == Some("no");
        if !one_shot {
            assert!(svc.get("healthcheck").and_then(|h| h.get("test")).is_some(), "{name} has no healthcheck");
        }
        for dep in svc.get("depends_on").and_then(Value::as_mapping).into_iter().flatten() {
            let dep_name = dep.0.as_str().unwrap();
            assert!(services.contains_key(dep.0), "{name} depends on unknown {dep_name}");
            // A one-shot (restart: "no") is waited for until it has succeeded; anything else until healthy.
            let dep_one_shot = services[dep.0].get("restart").and_then(Value::as_str) == Some("no");
            let wanted = if dep_one_shot { "service_completed_successfully" } else { "service_healthy" };
            assert_eq!(dep.1["condition"], wanted, "{name} → {dep_name} must wait for {wanted}");
        }
    }
    for (svc, port) in [("product", 3333), ("orchestrator", 3334), ("payment", 3335), ("bank", 3340)] {
        let s = &services[svc];
        let env: BTreeMap<String, String> = s["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{svc} environment"))
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().map(str::to_string).unwrap_or_else(|| format!("{v:?}"))))
            .collect();
        let upper = svc.to_uppercase();
        assert_eq!(env.get(&format!("{upper}_HOST")).map(String::as_str), Some("0.0.0.0"), "{svc} must listen on all interfaces");
        assert_eq!(env.get(&format!("{upper}_PORT")), Some(&port.to_string()), "{svc} port");
        assert!(env[&format!("{upper}_DATABASE_URL")].contains("@mysql:3306/"), "{svc} talks to the mysql service");
        assert_eq!(env["KAFKA_BROKERS"], "kafka:9092");
        let ports: Vec<String> = s["ports"].as_sequence().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
        // The payment processor publishes a loopback range, so `--scale payment=3` binds (docs/operations.md).
        let published = if svc == "payment" { "127.0.0.1:3335-3339:3335".to_string() } else { format!("{port}:{port}") };
        assert!(ports.contains(&published), "{svc} publishes {published}: {ports:?}");
        assert!(s["healthcheck"]["test"].as_sequence().unwrap().iter().any(|t| t.as_str().is_some_and(|t| t.contains(&format!(":{port}/health/ready")))));
        for var in env.keys() {
            assert!(
                known.contains(var) || var == "RUST_LOG",
                "{svc} sets {var}, which no service reads"
            );
        }
    }
    assert_eq!(services["product"]["environment"]["PRODUCT_SEARCH_BACKEND"], "elasticsearch");
    for profile_svc in ["prometheus", "grafana", "kafka-ui"] {
        assert!(services[profile_svc]["profiles"].as_sequence().is_some_and(|p| !p.is_empty()), "{profile_svc} is optional");
    }
    let prometheus = read("deploy/prometheus/prometheus.yml");
    for target in ["identity:3336", "product:3333", "orchestrator:3334", "payment:3335", "bank:3340", "bank002:3341", "bank003:3342", "gateway:8080"] {
        assert!(prometheus.contains(target), "prometheus scrapes {target}");
    }
}

#[test]
fn connect_json_and_properties_describe_the_same_connector() {
    let props: BTreeMap<String, String> = read("connect-config/product-cdc.properties")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key=value");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let json: serde_json::Value = serde_json::from_str(&read("connect-config/product-cdc.json")).unwrap();
    assert_eq!(json["name"].as_str(), props.get("name").map(String::as_str), "same connector name");
    let config: BTreeMap<String, String> =
        json["config"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
    // Where they may differ: how to reach the database (and its password: the local MariaDB's
    // development one, the compose secret resolved by the worker), where the schema history lives (a
    // file for standalone, a Kafka topic for a distributed cluster), and how a created topic is
    // replicated and cleaned up (one tansu broker, which does not compact; the cluster's default and
    // compaction).
    let environment = |k: &str| {
        k == "database.hostname"
            || k == "database.port"
            || k == "database.password"
            || k.starts_with("schema.history.internal")
            || k == "topic.creation.default.replication.factor"
            || k == "topic.creation.default.cleanup.policy"
    };
    for (k, v) in &props {
        if k == "name" || environment(k) {
            continue;
        }
        assert_eq!(config.get(k), Some(v), "{k} differs between the .properties and the .json");
    }
    for k in config.keys() {
        assert!(props.contains_key(k) || environment(k), "{k} is only in the .json");
    }
    for must in ["decimal.handling.mode", "tombstones.on.delete", "topic.prefix", "table.include.list"] {
        assert!(props.contains_key(must), "{must} is configured");
    }
    assert_eq!(props["decimal.handling.mode"], "string");
    assert!(config["schema.history.internal"].contains("KafkaSchemaHistory"));
    assert_eq!(config["database.password"], "${dir:/run/secrets:mysql_debezium_password}", "the compose connector's password is a secret");
}

// ---- compose helpers --------------------------------------------------------------------------

/// docker-compose.yml with its merge keys (`<<: *service-env`) applied.
fn compose() -> Value {
    let mut compose: Value = serde_yaml::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    compose.apply_merge().expect("merge keys resolve");
    compose
}

/// A scalar as compose passes it to the container (numbers and booleans as text).
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn env_of(compose: &Value, svc: &str) -> BTreeMap<String, String> {
    compose["services"][svc]["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{svc} has an environment mapping"))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), scalar(v)))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().map(scalar).collect()).unwrap_or_default()
}

fn secrets_of(compose: &Value, svc: &str) -> BTreeSet<String> {
    strings(&compose["services"][svc]["secrets"]).into_iter().collect()
}

fn depends_on(compose: &Value, svc: &str, dep: &str) -> Option<String> {
    compose["services"][svc]["depends_on"][dep]["condition"].as_str().map(str::to_string)
}

/// The `file:` of a top-level secret, with `${VAR:-default}` replaced by its default.
fn secret_file(compose: &Value, name: &str) -> String {
    let raw = compose["secrets"][name]["file"].as_str().unwrap_or_else(|| panic!("top-level secret {name} has a file"));
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("closing brace") + i;
        let inner = &rest[i + 2..end];
        out.push_str(inner.split_once(":-").map(|(_, d)| d).unwrap_or(""));
        rest = &rest[end + 1..];
    }
    out + rest
}

/// Every environment variable read by the crates in `dirs` (literals passed to the config helpers).
fn variables_read_in(dirs: &[&str]) -> BTreeSet<String> {
    let mut files = Vec::new();
    for dir in dirs {
        collect_rs(&repo().join(dir), &mut files);
    }
    let mut vars = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for call in ["env_or(\"", "env_string(\"", "env::var(\"", "var(\""] {
            for (i, _) in text.match_indices(call) {
                let rest = &text[i + call.len()..];
                let name = &rest[..rest.find('"').unwrap()];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()) {
                    vars.insert(name.to_string());
                }
            }
        }
    }
    vars
}

/// The MySQL users deploy/mysql/init.sh creates, each allowed one database: its `USERS="…"` table,
/// `<user> <database>` a line (Debezium's user is created apart).
fn mysql_users() -> Vec<(String, String)> {
    let init = read("deploy/mysql/init.sh");
    let start = init.find("\nUSERS=\"").expect("deploy/mysql/init.sh has its USERS table") + "\nUSERS=\"".len();
    let body = &init[start..start + init[start..].find('"').expect("the USERS table ends")];
    let users: Vec<(String, String)> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 2, "deploy/mysql/init.sh USERS: `<user> <database>`: {l}");
            (f[0].to_string(), f[1].to_string())
        })
        .collect();
    assert!(users.len() >= 5, "deploy/mysql/init.sh USERS parsed: {users:?}");
    users
}

/// `mysql://<userinfo>@<host:port>/<database>[?…]` → (userinfo, host:port, database).
fn database_url_parts(url: &str) -> (String, String, String) {
    let rest = url.strip_prefix("mysql://").unwrap_or_else(|| panic!("{url} is a mysql:// URL"));
    let (userinfo, rest) = rest.split_once('@').unwrap_or_else(|| panic!("{url} names a user"));
    let (host, database) = rest.split_once('/').unwrap_or_else(|| panic!("{url} names a database"));
    (userinfo.to_string(), host.to_string(), database.split('?').next().unwrap_or_default().to_string())
}

/// The binary a Sagaway-image service runs: its command's first word, or what its shell `exec`s.
fn binary_of(svc: &Value) -> String {
    let command = strings(&svc["command"]);
    if command.first().map(String::as_str) == Some("/bin/sh") {
        command.last().and_then(|c| c.split("exec ").nth(1)).and_then(|c| c.split_whitespace().next()).expect("exec <binary>").to_string()
    } else {
        command.first().cloned().expect("a command")
    }
}

/// The port of a service's healthcheck (`…localhost:<port>/…`).
fn health_port(svc: &Value) -> String {
    let test = strings(&svc["healthcheck"]["test"]).join(" ");
    let i = test.find("localhost:").unwrap_or_else(|| panic!("a healthcheck on localhost: {test}")) + "localhost:".len();
    test[i..].chars().take_while(char::is_ascii_digit).collect()
}

// ---- identity -----------------------------------------------------------------------------------

#[test]
fn compose_runs_the_identity_service_with_its_key_as_a_secret_and_every_service_trusts_it() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    let id = &compose["services"]["identity"];
    assert_eq!(id["image"], "sagaway:latest", "identity runs from the services' image");
    let env = env_of(&compose, "identity");
    assert_eq!(env["IDENTITY_HOST"], "0.0.0.0", "identity listens on all interfaces");
    assert_eq!(env["IDENTITY_PORT"], "3336");
    assert!(strings(&id["ports"]).contains(&"3336:3336".to_string()), "identity publishes 3336");
    assert!(env["IDENTITY_DATABASE_URL"].ends_with("@mysql:3306/identity"), "identity has its own database on the mysql service");
    assert!(mysql_users().contains(&("identity".to_string(), "identity".to_string())), "deploy/mysql/init.sh makes the identity database's user");
    let issuer = &env["IDENTITY_ISSUER"];
    assert_eq!(issuer, "http://identity:3336", "the issuer is the address the services reach identity at");
    assert_eq!(depends_on(&compose, "identity", "mysql").as_deref(), Some("service_healthy"));
    assert!(
        strings(&id["healthcheck"]["test"]).iter().any(|t| t.contains("localhost:3336/health/ready")),
        "identity's healthcheck is its readiness"
    );

    // The signing key is a secret file, never an environment value.
    assert_eq!(env["IDENTITY_SIGNING_KEYS"], "/run/secrets/identity_signing_key");
    assert!(secrets_of(&compose, "identity").contains("identity_signing_key"), "identity mounts its signing key");
    assert!(secret_file(&compose, "identity_signing_key").ends_with(".pem"));
    assert!(!env.contains_key("SAGAWAY_ENV"), "no development key in compose");
    // The bootstrap operator: the service reads only IDENTITY_BOOTSTRAP_ADMIN, so the command loads
    // it from the secret file; it is never written into the compose file.
    assert!(!env.contains_key("IDENTITY_BOOTSTRAP_ADMIN"), "the bootstrap password is not in the YAML");
    let command = strings(&id["command"]).join(" ");
    assert!(command.contains("exec identity serve"), "identity serves: {command}");
    if command.contains("/run/secrets/identity_bootstrap_admin") {
        assert!(command.contains("IDENTITY_BOOTSTRAP_ADMIN="), "the secret becomes IDENTITY_BOOTSTRAP_ADMIN");
        assert!(secrets_of(&compose, "identity").contains("identity_bootstrap_admin"));
    }

    // Every variable compose gives identity is one it reads and identity/README.md documents.
    let mut known = variables_read_in(&["identity/src", "common/src", "messaging/src"]);
    // `config::database_url("IDENTITY", …)` derives IDENTITY_DATABASE_URL and …_PASSWORD_FILE from the prefix.
    assert!(read("identity/src/config.rs").contains("database_url(\"IDENTITY\""), "identity reads its database URL through config::database_url");
    known.insert("IDENTITY_DATABASE_URL".to_string());
    known.insert("IDENTITY_DATABASE_PASSWORD_FILE".to_string());
    let readme = read("identity/README.md");
    for var in env.keys() {
        assert!(known.contains(var) || var == "RUST_LOG", "identity is given {var}, which it does not read");
        assert!(readme.contains(&format!("`{var}`")), "{var} is not in identity/README.md");
    }

    // Every other service of the Sagaway image verifies tokens issued by this identity service.
    let mut verifiers = 0;
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        if name == "identity" || svc["image"] != "sagaway:latest" {
            continue;
        }
        verifiers += 1;
        let env = env_of(&compose, name);
        assert_eq!(env.get("AUTH_ISSUER"), Some(issuer), "{name} must set AUTH_ISSUER to identity's IDENTITY_ISSUER");
        if let Some(jwks) = env.get("AUTH_JWKS_URL") {
            assert!(jwks.starts_with(issuer.as_str()), "{name}'s AUTH_JWKS_URL is identity's");
        }
        assert_eq!(depends_on(&compose, name, "identity").as_deref(), Some("service_healthy"), "{name} waits for identity");
    }
    assert_eq!(verifiers, 7, "product, orchestrator, payment, the three banks and the gateway verify tokens");
}

// ---- the bank -----------------------------------------------------------------------------------

#[test]
fn compose_runs_the_bank_as_one_of_the_orchestrators_banks() {
    let compose = compose();
    let bank = &compose["services"]["bank"];
    assert_eq!(bank["image"], "sagaway:latest", "the bank runs from the services' image");
    assert_eq!(strings(&bank["command"]), ["bank", "serve"]);
    let env = env_of(&compose, "bank");
    assert_eq!(env["BANK_HOST"], "0.0.0.0", "the bank listens on all interfaces");
    assert_eq!(env["BANK_PORT"], "3340");
    assert!(strings(&bank["ports"]).contains(&"3340:3340".to_string()), "the bank publishes 3340");
    assert!(env["BANK_DATABASE_URL"].ends_with("@mysql:3306/bank"), "the bank has its own database on the mysql service");
    assert!(mysql_users().contains(&("bank".to_string(), "bank".to_string())), "deploy/mysql/init.sh makes the bank database's user");
    for dep in ["mysql", "kafka", "identity"] {
        assert_eq!(depends_on(&compose, "bank", dep).as_deref(), Some("service_healthy"), "the bank waits for {dep}");
    }
    assert!(strings(&bank["healthcheck"]["test"]).iter().any(|t| t.contains("localhost:3340/health/ready")), "the bank's healthcheck is its readiness");

    // The orchestrator accepts account payments at exactly this bank: the one that reads the shared
    // bank.commands (banks 002 and 003 have their own topics, which the payment processor does not write).
    let code = &env["BANK_CODE"];
    assert!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()), "BANK_CODE {code:?} is 3 digits");
    let banks: Vec<String> = env_of(&compose, "orchestrator")
        .get("ORCHESTRATOR_BANKS")
        .expect("compose sets ORCHESTRATOR_BANKS")
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    assert_eq!(banks.as_slice(), std::slice::from_ref(code), "ORCHESTRATOR_BANKS names the bank compose runs");
    assert!(env.contains_key("BANK_TIME_ZONE"), "business hours are in an explicit time zone");

    // Every variable compose gives the bank is one it (or common) reads and is documented: the
    // bank's own in bank/README.md, the shared ones in docs/configuration.md.
    let mut known = variables_read_in(&["bank/src", "common/src", "messaging/src"]);
    // CommonConfig::from_env derives BANK_HOST, BANK_PORT, ... from the prefix.
    assert!(read("bank/src/config.rs").contains("CommonConfig::from_env(\"BANK\", 3340, \"bank\")"), "the bank's prefix, port and database");
    known.extend(DERIVED_SUFFIXES.map(|s| format!("BANK_{s}")));
    let readme = read("bank/README.md");
    let docs = read("docs/configuration.md");
    for var in env.keys() {
        assert!(known.contains(var) || var == "RUST_LOG", "the bank is given {var}, which it does not read");
        assert!(readme.contains(&format!("`{var}`")) || docs.contains(&format!("`{var}`")) || var == "RUST_LOG", "{var} is documented nowhere");
    }
    // No card data at the bank: no card keys mounted, nothing of the card key is read by its code.
    assert!(!crate_source("bank").contains("CardKey"), "the bank handles no card data");
    assert!(!secrets_of(&compose, "bank").contains("card_keys"), "the bank mounts no card keys");
    // A value compose takes from the environment is listed in .env.example.
    let example = read(".env.example");
    for (var, value) in &env {
        if let Some(i) = value.find("${") {
            let name = value[i + 2..].split([':', '}']).next().unwrap();
            assert!(example.lines().any(|l| l.starts_with(&format!("{name}="))), "{var} reads ${{{name}}}, which .env.example does not list");
        }
    }
}

// ---- Kafka principals and ACLs ------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Acl {
    principal: String,
    resource: String,
    pattern: String,
    name: String,
    operations: BTreeSet<String>,
}

/// deploy/kafka/acls.conf, the file deploy/kafka/init.sh applies.
fn acls() -> Vec<Acl> {
    read("deploy/kafka/acls.conf")
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 5, "acls.conf: `principal resource pattern name operations`: {l}");
            Acl {
                principal: f[0].into(),
                resource: f[1].into(),
                pattern: f[2].into(),
                name: f[3].into(),
                operations: f[4].split(',').map(str::to_string).collect(),
            }
        })
        .collect()
}

/// `pub const NAME: &str = "value";` of messaging/src/topics.rs, by constant name.
fn topic_constants() -> BTreeMap<String, String> {
    read("messaging/src/topics.rs")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| {
            let (name, rest) = l.split_once(": &str = \"")?;
            Some((name.to_string(), rest.split('"').next()?.to_string()))
        })
        .collect()
}

/// The topic names of a service's `pub const TOPICS` (what it creates at start-up).
fn service_topics(svc: &str, constants: &BTreeMap<String, String>) -> BTreeSet<String> {
    let lib = read(&format!("{svc}/src/lib.rs"));
    let start = lib.find("pub const TOPICS: &[&str] = &[").unwrap_or_else(|| panic!("{svc}/src/lib.rs has TOPICS"));
    let body = &lib[start..start + lib[start..].find("];").unwrap()];
    let names: BTreeSet<String> = body
        .match_indices("topics::")
        .map(|(i, _)| body[i + 8..].chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect::<String>())
        .map(|c| constants.get(&c).unwrap_or_else(|| panic!("topics::{c} is in messaging/src/topics.rs")).clone())
        .collect();
    assert!(!names.is_empty(), "{svc} TOPICS parsed");
    names
}

/// The text of every source file of a crate.
fn crate_source(krate: &str) -> String {
    let mut files = Vec::new();
    collect_rs(&repo().join(krate).join("src"), &mut files);
    files.sort();
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect::<Vec<_>>().join("\n")
}

/// What a service's code does with Kafka: the topics (constants of messaging/src/topics.rs) it
/// consumes and produces and its consumer groups, each with a line of its source that shows it.
/// The lines are checked to be there: when the code changes, this table and acls.conf are revisited.
struct KafkaUse {
    service: &'static str,
    reads: &'static [(&'static str, &'static str)],
    writes: &'static [(&'static str, &'static str)],
    /// (group, pattern, evidence)
    groups: &'static [(&'static str, &'static str, &'static str)],
}

const KAFKA_USES: &[KafkaUse] = &[
    KafkaUse {
        service: "product",
        reads: &[
            ("PRODUCT_COMMANDS", "commands.subscribe(&[&common.topic(topics::PRODUCT_COMMANDS)])"),
            ("CDC_PRODUCTS", "indexer::assign_all(&cdc, &cfg.cdc_topic)"),
        ],
        writes: &[
            ("PRODUCT_REPLIES", "CommandHandler { replies_topic: common.topic(topics::PRODUCT_REPLIES) }"),
            ("PAYMENT_DLQ", "dlq_topic: common.topic(topics::PAYMENT_DLQ)"),
        ],
        groups: &[
            ("product-commands", "literal", "format!(\"{}product-commands\", common.topic_prefix)"),
            ("product-indexer", "literal", "env_string(\"PRODUCT_INDEXER_GROUP\", \"product-indexer\")"),
            // `product reindex` reads the CDC topic under a fresh group id each time (no commits).
            ("product-reindex-", "prefixed", "format!(\"product-reindex-{}\", uuid::Uuid::new_v4())"),
        ],
    },
    KafkaUse {
        service: "orchestrator",
        reads: &[
            ("ORDER_QUEUE", "[&self.order_queue, &self.product_replies, &self.payment_replies]"),
            ("PRODUCT_REPLIES", "consumer.subscribe(&saga_topics.consumed())"),
            ("PAYMENT_REPLIES", "consumer.subscribe(&saga_topics.consumed())"),
            ("PAYMENT_DLQ", "vec![common.topic(topics::PAYMENT_DLQ), common.topic(topics::BANK_DLQ)]"),
            ("BANK_DLQ", "vec![common.topic(topics::PAYMENT_DLQ), common.topic(topics::BANK_DLQ)]"),
        ],
        // Plus every topic a Sagaway consumer reads (dead-letter replay), added below.
        writes: &[
            ("ORDER_QUEUE", "cfg.topic(topics::ORDER_QUEUE)"),
            ("PRODUCT_COMMANDS", "product_commands: c.topic(topics::PRODUCT_COMMANDS)"),
            ("PAYMENT_COMMANDS", "payment_commands: c.topic(topics::PAYMENT_COMMANDS)"),
            ("ORDER_EVENTS", "order_events: c.topic(topics::ORDER_EVENTS)"),
            ("PAYMENT_DLQ", "alert_letter(&self.ctx.topics.payment_dlq"),
        ],
        groups: &[
            ("orchestrator-saga", "literal", "format!(\"{}orchestrator-saga\", common.topic_prefix)"),
            ("orchestrator-dlq", "literal", "format!(\"{}orchestrator-dlq\", common.topic_prefix)"),
        ],
    },
    KafkaUse {
        service: "payment",
        reads: &[
            ("PAYMENT_COMMANDS", "let commands_topic = common.topic(topics::PAYMENT_COMMANDS);"),
            ("SAGA_RETRY", "retries.subscribe(&[&common.topic(topics::SAGA_RETRY)])"),
            ("BANK_REPLIES", "bank_replies.subscribe(&[&common.topic(topics::BANK_REPLIES)])"),
        ],
        writes: &[
            ("PAYMENT_REPLIES", "replies_topic: common.topic(topics::PAYMENT_REPLIES)"),
            ("SAGA_RETRY", "retry_topic: common.topic(topics::SAGA_RETRY)"),
            ("PAYMENT_DLQ", "dlq_topic: common.topic(topics::PAYMENT_DLQ)"),
            // the retry forwarder puts a due retry back on its original topic
            ("PAYMENT_COMMANDS", "RetryForwarder { own_topics: vec![commands_topic]"),
            ("BANK_COMMANDS", "bank_commands_topic: common.topic(topics::BANK_COMMANDS)"),
        ],
        groups: &[
            ("payment-commands", "literal", "format!(\"{}payment-commands\", common.topic_prefix)"),
            ("payment-retry", "literal", "format!(\"{}payment-retry\", common.topic_prefix)"),
            ("payment-bank-replies", "literal", "format!(\"{}payment-bank-replies\", common.topic_prefix)"),
        ],
    },
    KafkaUse {
        service: "bank",
        reads: &[
            // the per-account queue: accepted operations are produced (outbox) and applied by the bank itself
            ("BANK_OPERATIONS", "consumer_loop(\"operations\", &topics.operations)"),
            ("BANK_COMMANDS", "consumer_loop(\"commands\", &topics.commands)"),
        ],
        writes: &[
            ("BANK_OPERATIONS", "Outgoing::json(&app.topics.operations, account_id, \"operation_queued\""),
            ("BANK_EVENTS", "Outgoing::json(events_topic, change.user_id"),
            ("BANK_REPLIES", "out.push(Outgoing::json(&self.replies_topic, key, &reply.kind, &reply));"),
            // its consumers' dead letters go to its own topic, which no replay reads
            ("BANK_DLQ", "dlq_topic: topics.dlq.clone()"),
        ],
        groups: &[
            // `consumer_loop(name, …)`: one group per consumer, `<TOPIC_PREFIX>bank-<name>`
            ("bank-operations", "literal", "&format!(\"{}bank-{name}\", common.topic_prefix)"),
            ("bank-commands", "literal", "&format!(\"{}bank-{name}\", common.topic_prefix)"),
        ],
    },
];

/// Operations Kafka accepts per resource type (kafka-acls.sh refuses others).
fn valid_operations(resource: &str) -> &'static [&'static str] {
    match resource {
        "topic" => &["Read", "Write", "Create", "Delete", "Alter", "Describe", "DescribeConfigs", "AlterConfigs"],
        "group" => &["Read", "Describe", "Delete"],
        "cluster" => &["Create", "ClusterAction", "DescribeConfigs", "AlterConfigs", "IdempotentWrite", "Alter", "Describe"],
        other => panic!("acls.conf: unknown resource type {other}"),
    }
}

/// topic name → operations granted to `principal` on it (literal topic patterns only).
fn topic_grants(acls: &[Acl], principal: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in acls.iter().filter(|a| a.principal == principal && a.resource == "topic") {
        assert_eq!(a.pattern, "literal", "{principal}: topic {} must be a literal pattern", a.name);
        out.entry(a.name.clone()).or_default().extend(a.operations.iter().cloned());
    }
    out
}

fn with_op(grants: &BTreeMap<String, BTreeSet<String>>, op: &str) -> BTreeSet<String> {
    grants.iter().filter(|(_, ops)| ops.contains(op)).map(|(t, _)| t.clone()).collect()
}

fn group_grants(acls: &[Acl], principal: &str) -> BTreeSet<(String, String)> {
    acls.iter()
        .filter(|a| a.principal == principal && a.resource == "group")
        .map(|a| {
            assert_eq!(a.operations, BTreeSet::from(["Read".to_string()]), "{principal}: group {} needs Read only", a.name);
            (a.name.clone(), a.pattern.clone())
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn kafka_acls_grant_each_principal_exactly_what_its_code_uses() {
    let acls = acls();
    let constants = topic_constants();
    let topic = |c: &str| constants.get(c).unwrap_or_else(|| panic!("topics::{c}")).clone();
    let probe = {
        let kafka = read("messaging/src/kafka.rs");
        let decl = "pub const PROBE_TOPIC: &str = \"";
        let i = kafka.find(decl).expect("PROBE_TOPIC") + decl.len();
        kafka[i..i + kafka[i..].find('"').unwrap()].to_string()
    };
    let compose = compose();
    let cdc = env_of(&compose, "product")["PRODUCT_CDC_TOPIC"].clone();
    assert_eq!(cdc, topic("CDC_PRODUCTS"), "compose's PRODUCT_CDC_TOPIC is the CDC topic of messaging/src/topics.rs");

    for a in &acls {
        assert!(["literal", "prefixed"].contains(&a.pattern.as_str()), "acls.conf: pattern {} (literal or prefixed)", a.pattern);
        for op in &a.operations {
            assert!(valid_operations(&a.resource).contains(&op.as_str()), "acls.conf: {op} is not an operation on a {}", a.resource);
        }
        assert!(!a.name.contains('*') && !a.operations.contains("All"), "acls.conf: no wildcards ({a:?})");
        assert_ne!(a.resource, "cluster", "acls.conf: no principal needs a cluster-wide grant ({a:?})");
        assert_ne!(a.principal, "admin", "admin is a super user: no ACL lines");
    }
    let principals: BTreeSet<String> = acls.iter().map(|a| a.principal.clone()).collect();
    assert_eq!(
        principals,
        set(&["product", "orchestrator", "payment", "bank", "bank002", "bank003", "gateway", "connect"]),
        "one principal per Kafka client (banks 002 and 003, and the gateway: kafka_acls_of_banks_002_and_003_and_of_the_gateway)"
    );

    // Every topic read by a Sagaway consumer that dead-letters into payment_dlq or bank.dlq (the
    // orchestrator records both; a dead letter's original topic can be any of them, and its replay
    // republishes it there), the CDC topic excepted (Debezium's).
    let dead_letters_to_payment_dlq = |u: &&KafkaUse| u.writes.iter().any(|(c, _)| *c == "PAYMENT_DLQ");
    let dead_letters_recorded = |u: &&KafkaUse| u.writes.iter().any(|(c, _)| *c == "PAYMENT_DLQ" || *c == "BANK_DLQ");
    let consumed_by_sagaway: BTreeSet<String> = KAFKA_USES
        .iter()
        .filter(dead_letters_recorded)
        .flat_map(|u| u.reads.iter().map(|(c, _)| topic(c)))
        // (The recorder never dead-letters what it reads: nothing is replayed onto bank.dlq.)
        .filter(|t| *t != cdc && *t != topic("BANK_DLQ"))
        .collect();
    for u in KAFKA_USES.iter().filter(|u| !dead_letters_to_payment_dlq(u)) {
        assert!(u.writes.iter().any(|(c, _)| *c == "BANK_DLQ"), "{}: where do its dead letters go?", u.service);
    }
    let dlq_readers: Vec<&str> = KAFKA_USES.iter().filter(|u| u.reads.iter().any(|(c, _)| *c == "BANK_DLQ")).map(|u| u.service).collect();
    assert_eq!(dlq_readers, ["orchestrator"], "the orchestrator, and only it, records bank.dlq");
    assert!(crate_source("orchestrator").contains("let mut copy = Outgoing { topic, key, payload, headers: vec![] };"), "replay republishes to the original topic");

    for u in KAFKA_USES {
        let svc = u.service;
        let source = crate_source(svc);
        for (c, evidence) in u.reads.iter().chain(u.writes.iter()) {
            assert!(source.contains(evidence), "{svc}: the source no longer shows `{evidence}` ({c}): revisit KAFKA_USES and acls.conf");
        }
        let reads: BTreeSet<String> = u.reads.iter().map(|(c, _)| topic(c)).collect();
        let mut writes: BTreeSet<String> = u.writes.iter().map(|(c, _)| topic(c)).collect();
        if svc == "orchestrator" {
            writes.extend(consumed_by_sagaway.iter().cloned());
        }
        let used: BTreeSet<String> = reads.union(&writes).cloned().collect();
        let created = service_topics(svc, &constants);
        let mut expected_created = created.clone();
        expected_created.insert(probe.clone());
        if svc == "product" {
            // `product migrate` creates the CDC topic (one partition) when it is missing.
            assert!(source.contains("kafka::ensure_topics(&config.common.kafka_brokers, &[(config.cdc_topic.clone(), 1)], config.common.topic_replicas)"));
            expected_created.insert(cdc.clone());
        }
        let without_cdc: BTreeSet<String> = used.iter().filter(|t| **t != cdc).cloned().collect();
        assert_eq!(without_cdc, created, "{svc}: the topics it reads and writes are its TOPICS");

        let grants = topic_grants(&acls, svc);
        let mut granted_topics: BTreeSet<String> = grants.keys().cloned().collect();
        granted_topics.remove(&probe);
        let unused: Vec<_> = granted_topics.difference(&used).collect();
        let missing: Vec<_> = used.difference(&granted_topics).collect();
        assert!(unused.is_empty(), "{svc}'s ACLs name topics it does not use: {unused:?}");
        assert!(missing.is_empty(), "{svc}'s ACLs miss topics it uses: {missing:?}");
        assert_eq!(with_op(&grants, "Read"), reads, "{svc}: Read exactly on the topics it consumes");
        assert_eq!(with_op(&grants, "Write"), writes, "{svc}: Write exactly on the topics it produces to");
        assert_eq!(with_op(&grants, "Create"), expected_created, "{svc}: Create exactly on the topics it creates at start-up");
        assert_eq!(grants.get(&probe), Some(&set(&["Describe", "Create"])), "{svc}: the readiness probe topic {probe}");
        for (t, ops) in &grants {
            for op in ops {
                assert!(["Read", "Write", "Create", "Describe"].contains(&op.as_str()), "{svc}: {op} on {t} is more than it needs");
            }
        }

        let groups: BTreeSet<(String, String)> = u.groups.iter().map(|(g, p, _)| (g.to_string(), p.to_string())).collect();
        for (g, _, evidence) in u.groups {
            assert!(source.contains(evidence), "{svc}: group {g}: the source no longer shows `{evidence}`");
        }
        assert_eq!(group_grants(&acls, svc), groups, "{svc}: Read on exactly its consumer groups");
    }
    for var in ["PRODUCT_INDEXER_GROUP", "PAYMENT_COMMANDS_GROUP", "PAYMENT_RETRY_GROUP", "PAYMENT_BANK_REPLIES_GROUP", "TOPIC_PREFIX"] {
        for svc in ["product", "orchestrator", "payment", "bank"] {
            assert!(!env_of(&compose, svc).contains_key(var), "{svc} sets {var}: the group/topic names of acls.conf would change");
        }
    }

    // connect: the worker's group and internal topics (compose), the connector's output topic and
    // its schema history topic and consumer group (connect-config/product-cdc.json).
    let connect = env_of(&compose, "connect");
    let json: serde_json::Value = serde_json::from_str(&read("connect-config/product-cdc.json")).unwrap();
    let cfg = |k: &str| json["config"][k].as_str().unwrap_or_else(|| panic!("product-cdc.json {k}")).to_string();
    assert_eq!(format!("{}.{}", cfg("topic.prefix"), cfg("table.include.list")), cdc, "Debezium writes the CDC topic product reads");
    let history = cfg("schema.history.internal.kafka.topic");
    let history_group = json["config"]["schema.history.internal.consumer.group.id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-schemahistory", cfg("topic.prefix"))); // Debezium's default
    let storage = set(&["Read", "Write", "Create", "DescribeConfigs"]);
    let mut expected: BTreeMap<String, BTreeSet<String>> = ["CONFIG_STORAGE_TOPIC", "OFFSET_STORAGE_TOPIC", "STATUS_STORAGE_TOPIC"]
        .iter()
        .map(|v| (connect[*v].clone(), storage.clone()))
        .collect();
    expected.insert(history, storage.clone());
    expected.insert(cdc.clone(), set(&["Write", "Create"]));
    assert_eq!(topic_grants(&acls, "connect"), expected, "connect: its internal topics, the CDC topic and the schema history");
    assert_eq!(
        group_grants(&acls, "connect"),
        BTreeSet::from([(connect["GROUP_ID"].clone(), "literal".to_string()), (history_group, "literal".to_string())]),
        "connect: the worker group and the schema-history consumer's group"
    );

    // kafka-init creates the CDC topic product's indexer needs before Debezium has written anything.
    assert_eq!(env_of(&compose, "kafka-init")["CDC_TOPIC"], cdc);
}

#[test]
fn kafka_in_compose_authenticates_every_client_with_its_own_credential() {
    let compose = compose();
    let kafka = env_of(&compose, "kafka");
    for listener in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(',') {
        let (name, protocol) = listener.split_once(':').unwrap();
        assert!(protocol.starts_with("SASL_"), "listener {name} authenticates ({protocol})");
    }
    assert!(kafka["KAFKA_ADVERTISED_LISTENERS"].split(',').any(|l| l == "CLIENT://kafka:9092"), "clients bootstrap from kafka:9092");
    assert_eq!(kafka["KAFKA_LISTENER_NAME_CLIENT_SASL_ENABLED_MECHANISMS"], "SCRAM-SHA-512");
    assert_eq!(kafka["KAFKA_AUTHORIZER_CLASS_NAME"], "org.apache.kafka.metadata.authorizer.StandardAuthorizer");
    assert_eq!(kafka["KAFKA_SUPER_USERS"], "User:admin", "admin is the only super user");
    assert_eq!(kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"], "false");
    assert_eq!(strings(&compose["services"]["kafka"]["ports"]), vec!["9092:9092".to_string()], "only the SASL client listener is published");
    assert!(strings(&compose["services"]["kafka"]["entrypoint"]).iter().any(|e| e.ends_with("broker-entrypoint.sh")));
    assert!(secrets_of(&compose, "kafka").contains("kafka_admin_password"));
    assert!(read("deploy/kafka/broker-entrypoint.sh").contains("exec /etc/kafka/docker/run"), "the image's own start script runs");

    // kafka-init holds every principal's password; each client holds only its own.
    let principals: BTreeSet<String> = acls().into_iter().map(|a| a.principal).collect();
    let init = &compose["services"]["kafka-init"];
    assert_eq!(init["restart"], "no", "kafka-init is a one-shot");
    assert!(strings(&init["entrypoint"]).iter().any(|e| e.ends_with("/init.sh")));
    assert!(strings(&init["volumes"]).iter().any(|v| v.starts_with("./deploy/kafka:")), "kafka-init reads deploy/kafka/acls.conf");
    let mut init_secrets = BTreeSet::from(["kafka_admin_password".to_string()]);
    init_secrets.extend(principals.iter().map(|p| format!("kafka_{p}_password")));
    assert_eq!(secrets_of(&compose, "kafka-init"), init_secrets);
    for s in &init_secrets {
        assert!(secret_file(&compose, s).ends_with(&format!("/{s}")), "secret {s} is the file of the same name");
    }
    for svc in ["product", "orchestrator", "payment", "bank", "bank002", "bank003", "gateway"] {
        let env = env_of(&compose, svc);
        assert_eq!(env["KAFKA_SECURITY_PROTOCOL"], "SASL_PLAINTEXT", "{svc}");
        assert_eq!(env["KAFKA_SASL_MECHANISM"], "SCRAM-SHA-512", "{svc}");
        assert_eq!(env["KAFKA_SASL_USERNAME"], svc, "{svc} is its own principal");
        assert_eq!(env["KAFKA_SASL_PASSWORD_FILE"], format!("/run/secrets/kafka_{svc}_password"));
        assert!(!env.contains_key("KAFKA_SASL_PASSWORD"), "{svc}: the password is a file, not a value");
        let mut own = BTreeSet::from([format!("kafka_{svc}_password")]);
        if svc == "orchestrator" || svc == "payment" {
            own.insert("card_keys".to_string()); // the card keys: CARD_KEYS_FILE
        }
        // Its database user's password (the user its URL names), and a bank's signing key and directory.
        if let Some(url) = env.iter().find(|(k, _)| k.ends_with("_DATABASE_URL")).map(|(_, v)| v) {
            own.insert(format!("mysql_{}_password", database_url_parts(url).0));
        }
        if let Some(code) = env.get("BANK_CODE") {
            own.insert(format!("bank_{code}_signing_key"));
            own.insert("bank_directory".to_string());
        }
        if svc == "gateway" {
            own.insert("gateway_metrics_token".to_string()); // Prometheus's scrape token: GATEWAY_METRICS_TOKEN_FILE
        }
        assert_eq!(secrets_of(&compose, svc), own, "{svc} mounts its own passwords (and the card keys, or a bank's key) only");
        assert_eq!(depends_on(&compose, svc, "kafka-init").as_deref(), Some("service_completed_successfully"), "{svc} waits for its ACLs");
    }
    let connect = env_of(&compose, "connect");
    assert_eq!(
        secrets_of(&compose, "connect"),
        BTreeSet::from(["kafka_connect_password".to_string(), "mysql_debezium_password".to_string()]),
        "connect mounts its Kafka password and the connector's database password"
    );
    assert_eq!(depends_on(&compose, "connect", "kafka-init").as_deref(), Some("service_completed_successfully"));
    assert_eq!(connect["CONNECT_CONFIG_PROVIDERS"], "dir");
    assert_eq!(connect["CONNECT_CONFIG_PROVIDERS_DIR_CLASS"], "org.apache.kafka.common.config.provider.DirectoryConfigProvider");
    // In the YAML `$${...}` is compose's escape for a literal `${...}`, which the worker resolves.
    let jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"connect\" password=\"$${dir:/run/secrets:kafka_connect_password}\";";
    for prefix in ["CONNECT_", "CONNECT_PRODUCER_", "CONNECT_CONSUMER_", "CONNECT_ADMIN_"] {
        assert_eq!(connect[&format!("{prefix}SECURITY_PROTOCOL")], "SASL_PLAINTEXT", "{prefix}");
        assert_eq!(connect[&format!("{prefix}SASL_MECHANISM")], "SCRAM-SHA-512", "{prefix}");
        assert_eq!(connect[&format!("{prefix}SASL_JAAS_CONFIG")], jaas, "{prefix}");
    }
    let json: serde_json::Value = serde_json::from_str(&read("connect-config/product-cdc.json")).unwrap();
    for client in ["producer", "consumer"] {
        let c = |k: &str| json["config"][format!("schema.history.internal.{client}.{k}")].as_str().map(str::to_string);
        assert_eq!(c("security.protocol").as_deref(), Some("SASL_PLAINTEXT"), "schema history {client}");
        assert_eq!(c("sasl.mechanism").as_deref(), Some("SCRAM-SHA-512"), "schema history {client}");
        assert_eq!(c("sasl.jaas.config"), Some(jaas.replace("$$", "$")), "schema history {client}");
    }

    // No password is written into the compose file or the connector: only placeholders.
    for (file, text) in [("docker-compose.yml", read("docker-compose.yml")), ("product-cdc.json", read("connect-config/product-cdc.json"))] {
        for (i, _) in text.match_indices("password=") {
            let value = text[i + 9..].trim_start_matches(['"', '\\']);
            assert!(value.starts_with("${") || value.starts_with("$${"), "{file}: a literal password at byte {i}");
        }
    }
}

// ---- Dockerfile ---------------------------------------------------------------------------------

#[test]
fn the_dockerfile_loads_the_whole_workspace_and_ships_every_service_binary() {
    let cargo: toml_like::Members = toml_like::members(&read("Cargo.toml"));
    let dockerfile = read("Dockerfile");
    let check = read("scripts/check-dockerfile");
    // The loops over the crates (copying manifests, writing stub sources) must name every member.
    let loops = |text: &str| -> Vec<String> { text.lines().filter(|l| l.contains("for c in ") && l.contains(" common ")).map(str::to_string).collect() };
    assert_eq!(loops(&dockerfile).len(), 1, "the Dockerfile's stub loop");
    assert_eq!(loops(&check).len(), 2, "scripts/check-dockerfile's manifest and stub loops");
    for member in &cargo.0 {
        assert!(dockerfile.contains(&format!("COPY {member}/Cargo.toml {member}/")), "Dockerfile copies {member}/Cargo.toml");
        for l in loops(&dockerfile).iter().chain(loops(&check).iter()) {
            let crates = &l[l.find("for c in").unwrap() + 8..l.find(';').unwrap()];
            assert!(crates.split_whitespace().any(|w| w == member), "{member} is missing from `{}`", l.trim());
        }
    }
    let compose = compose();
    let mut binaries = BTreeSet::new();
    for (name, svc) in compose["services"].as_mapping().unwrap() {
        if svc["image"] != "sagaway:latest" {
            continue;
        }
        let command = strings(&svc["command"]);
        let binary = if command[0] == "/bin/sh" {
            command[2].split("exec ").nth(1).and_then(|c| c.split_whitespace().next()).expect("exec <binary>").to_string()
        } else {
            command[0].clone()
        };
        assert!(cargo.0.contains(&binary), "{name:?} runs {binary}, a workspace member");
        binaries.insert(binary);
    }
    assert_eq!(binaries, set(&["identity", "product", "orchestrator", "payment", "bank", "gateway"]));
    for b in &binaries {
        assert_eq!(dockerfile.matches(&format!("-p {b}")).count(), 2, "both cargo builds of the Dockerfile build {b}");
        assert!(dockerfile.contains(&format!("target/release/{b}")), "the Dockerfile copies {b} into the image");
        assert_eq!(check.matches(&format!("-p {b}")).count(), 2, "scripts/check-dockerfile builds {b}");
        assert!(dockerfile.contains(&format!("{}_HOST=0.0.0.0", b.to_uppercase())), "{b} listens on all interfaces in a container");
    }
    assert!(read(".dockerignore").lines().any(|l| l.trim() == "deploy/secrets"), "secrets never enter a build context");
}

/// The `[workspace] members` of Cargo.toml (the only TOML this file needs to read).
mod toml_like {
    pub struct Members(pub Vec<String>);
    pub fn members(cargo: &str) -> Members {
        let line = cargo.lines().find(|l| l.trim_start().starts_with("members")).expect("workspace members");
        let list = &line[line.find('[').unwrap() + 1..line.rfind(']').unwrap()];
        Members(list.split(',').map(|m| m.trim().trim_matches('"').to_string()).filter(|m| !m.is_empty()).collect())
    }
}

/// docker-compose.yml with an override file laid over it the way `docker compose -f a -f b` does:
/// mappings merge key by key (so an override's `environment` adds to or replaces single variables),
/// anything else is replaced.
fn compose_with(override_file: &str) -> Value {
    fn merge(base: &mut Value, over: &Value) {
        match (base, over) {
            (Value::Mapping(b), Value::Mapping(o)) => {
                for (k, v) in o {
                    match b.get_mut(k) {
                        Some(existing) => merge(existing, v),
                        None => {
                            b.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (b, o) => *b = o.clone(),
        }
    }
    let mut base = compose();
    let mut over: Value = serde_yaml::from_str(&read(override_file)).unwrap_or_else(|e| panic!("{override_file}: {e}"));
    over.apply_merge().expect("merge keys resolve");
    merge(&mut base, &over);
    base
}

/// The services of a compose model that run a Kafka broker, with their environment.
fn brokers_of(compose: &Value) -> Vec<(String, BTreeMap<String, String>)> {
    compose["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .map(|name| {
            let env = compose["services"][name.as_str()]["environment"].as_mapping().map(|_| env_of(compose, &name)).unwrap_or_default();
            (name, env)
        })
        .filter(|(_, env)| env.get("KAFKA_PROCESS_ROLES").is_some_and(|r| r.contains("broker")))
        .collect()
}

#[test]
fn compose_builds_every_sagaway_image_and_pins_every_other() {
    let compose = compose();
    for (name, svc) in compose["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let image = svc["image"].as_str().unwrap_or_else(|| panic!("{name} names its image"));
        if image.starts_with("sagaway") {
            // Without `build:` compose pulls an image that exists in no registry.
            assert!(svc.get("build").is_some(), "{name} runs {image} but has no build:");
        } else {
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(!tag.is_empty() && tag != "latest" && !tag.contains('/'), "{name}: {image} is not pinned to a version");
        }
    }
    // The Kafka UI of provectuslabs is unmaintained since 2024; kafbat/kafka-ui continues it.
    let ui = compose["services"]["kafka-ui"]["image"].as_str().unwrap();
    assert!(!ui.contains("provectuslabs"), "kafka-ui runs the unmaintained {ui}");
}

#[test]
fn compose_runs_the_debezium_line_the_stack_tests() {
    let classpath = read("scripts/connect/classpath.txt");
    let tested = classpath
        .lines()
        .find_map(|l| l.trim().strip_prefix("debezium-connector-mysql-").and_then(|v| v.strip_suffix(".jar")))
        .expect("the classpath names the Debezium MySQL connector jar");
    let image = compose()["services"]["connect"]["image"].as_str().unwrap().to_string();
    let tag = image.rsplit_once(':').unwrap().1;
    assert_eq!(tag, tested, "connect runs {image}, the local stack tests Debezium {tested}");
}

#[test]
fn topic_replicas_fit_the_brokers_in_both_compose_setups() {
    for (setup, model) in [("docker-compose.yml", compose()), ("+ docker-compose.kafka-cluster.yml", compose_with("docker-compose.kafka-cluster.yml"))] {
        let brokers = brokers_of(&model);
        assert!(!brokers.is_empty(), "{setup}: no broker");
        let n = brokers.len() as i64;
        let num = |env: &BTreeMap<String, String>, k: &str| -> i64 {
            env.get(k).unwrap_or_else(|| panic!("{setup}: {k} must be explicit")).parse().unwrap_or_else(|_| panic!("{setup}: {k} is a number"))
        };
        let mut min_isr = 0;
        for (name, env) in &brokers {
            // Kafka's own topics and the default (used by the connector's "-1") fit the brokers too.
            let isr = num(env, "KAFKA_MIN_INSYNC_REPLICAS");
            min_isr = min_isr.max(isr);
            for k in ["KAFKA_DEFAULT_REPLICATION_FACTOR", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] {
                let rf = num(env, k);
                assert!(rf <= n && rf >= isr, "{setup}: {name} {k}={rf} with {n} broker(s) and min ISR {isr}");
            }
            assert!(num(env, "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR") <= num(env, "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"), "{setup}: {name}");
        }
        // Every other place a topic is created: the services, kafka-init (the CDC topic), Connect's topics.
        let mut checked = 0;
        for (name, _) in model["services"].as_mapping().unwrap() {
            let name = name.as_str().unwrap();
            if brokers.iter().any(|(b, _)| b == name) || model["services"][name]["environment"].as_mapping().is_none() {
                continue;
            }
            let env = env_of(&model, name);
            // The gateway reads the event topics and creates none (checked in
            // kafka_acls_of_banks_002_and_003_and_of_the_gateway: no Create in its ACLs).
            if env.contains_key("KAFKA_BROKERS") && name != "gateway" {
                assert!(env.contains_key("KAFKA_TOPIC_REPLICATION_FACTOR"), "{setup}: {name} creates topics without KAFKA_TOPIC_REPLICATION_FACTOR");
            }
            for (k, v) in env.iter().filter(|(k, _)| k.ends_with("REPLICATION_FACTOR")) {
                let rf: i64 = v.parse().unwrap_or_else(|_| panic!("{setup}: {name} {k}={v} is a number"));
                assert!(rf <= n && rf >= min_isr, "{setup}: {name} {k}={rf} with {n} broker(s) and min.insync.replicas {min_isr}: acks=all writes would fail");
                checked += 1;
            }
        }
        assert!(checked >= 8, "{setup}: only {checked} replication settings found");
    }
    // The connector's own topics take the broker default, which the loop above bounds.
    let connector: serde_json::Value = serde_json::from_str(&read("connect-config/product-cdc.json")).unwrap();
    assert_eq!(connector["config"]["topic.creation.default.replication.factor"], "-1", "the connector uses the broker's default replication");
}

#[test]
fn the_cdc_topic_is_compacted_wherever_it_is_created() {
    // Compacted, the topic keeps the latest change of every product for good: a reindex from its
    // start sees products that have not changed since long before the retention period.
    let init = read("deploy/kafka/init.sh");
    let create = init.lines().skip_while(|l| !l.contains("--create --if-not-exists --topic \"$cdc_topic\"")).take(2).collect::<Vec<_>>().join(" ");
    assert!(create.contains("cleanup.policy=compact"), "kafka-init creates the CDC topic compacted: {create}");
    assert!(init.contains("--add-config cleanup.policy=compact"), "kafka-init switches an existing CDC topic to compaction");
    let connector: serde_json::Value = serde_json::from_str(&read("connect-config/product-cdc.json")).unwrap();
    assert_eq!(connector["config"]["topic.creation.default.cleanup.policy"], "compact");
}

#[test]
fn compose_has_no_default_for_any_secret() {
    // `${VAR:-value}` falls back silently; a password must be given (`${VAR:?why}` refuses to start).
    for file in ["docker-compose.yml", "docker-compose.kafka-cluster.yml"] {
        let text = read(file);
        for (i, _) in text.match_indices("${") {
            let inner = &text[i + 2..i + text[i..].find('}').unwrap()];
            let (var, rest) = inner.split_once([':', '-', '?']).map(|(v, _)| (v, &inner[v.len()..])).unwrap_or((inner, ""));
            let upper = var.to_uppercase();
            // Where secrets live (SAGAWAY_SECRETS_DIR) is not a secret.
            let secret = ["PASSWORD", "SECRET", "TOKEN", "KEY"].iter().any(|w| upper.contains(w)) && !upper.ends_with("_DIR") && !upper.ends_with("_FILE");
            assert!(!(secret && (rest.starts_with(":-") || rest.starts_with('-'))), "{file}: ${{{inner}}} gives the secret {var} a default");
        }
    }
    let example = read(".env.example");
    assert!(example.contains("MYSQL_ROOT_PASSWORD="), ".env.example lists MYSQL_ROOT_PASSWORD");
}

/// `kubectl kustomize deploy/k8s/overlays/<overlay>`: every object of the overlay, as YAML values.
fn kustomize(overlay: &str) -> Vec<Value> {
    let dir = repo().join("deploy/k8s/overlays").join(overlay);
    let out = std::process::Command::new("kubectl").arg("kustomize").arg(&dir).output().expect("kubectl (with its built-in kustomize) is installed");
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    // kustomize writes one object per document, separated by `---` lines.
    text.split("\n---\n").map(|doc| serde_yaml::from_str::<Value>(doc).expect("kustomize output is YAML")).filter(|v| !v.is_null()).collect()
}

fn kind_of(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or_else(|| panic!("not an integer: {v:?}"))
}

/// Whether a `matchLabels` selector selects pods labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"].as_mapping().is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Whether a label selector (`matchLabels`, and `matchExpressions` with In, NotIn, Exists,
/// DoesNotExist) selects pods labelled `labels`; an empty or absent selector selects every pod.
fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let by_labels = selector["matchLabels"].as_mapping().into_iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector["matchExpressions"].as_sequence().into_iter().flatten().all(|e| {
        let value = labels.get(e["key"].as_str().unwrap_or_default());
        let values = strings(&e["values"]);
        let listed = value.and_then(Value::as_str).is_some_and(|v| values.iter().any(|w| w.as_str() == v));
        match e["operator"].as_str().unwrap_or_default() {
            "In" => listed,
            "NotIn" => !listed,
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            op => panic!("selector operator {op}"),
        }
    });
    by_labels && by_expressions
}

/// Whether a NetworkPolicy of pods labelled `to` admits a connection from pods labelled `from` (same
/// namespace) on `port`. No `from`: every peer; a peer with a namespaceSelector or an ipBlock is not
/// this namespace's pods.
fn ingress_allows(policies: &[&Value], from: &Value, to: &Value, port: i64) -> bool {
    policies.iter().copied().filter(|p| policy_applies(p, "Ingress", to)).any(|p| {
        p["spec"]["ingress"].as_sequence().into_iter().flatten().any(|r| peer_selected(&r["from"], from) && port_listed(&r["ports"], port))
    })
}

/// Whether the NetworkPolicies let pods labelled `from` connect out to pods labelled `to` (same
/// namespace) on `port`. Pods no Egress policy selects may connect anywhere (Kubernetes' rule).
fn egress_allows(policies: &[&Value], from: &Value, to: &Value, port: i64) -> bool {
    let mut applying = policies.iter().copied().filter(|p| policy_applies(p, "Egress", from)).peekable();
    applying.peek().is_none()
        || applying.any(|p| p["spec"]["egress"].as_sequence().into_iter().flatten().any(|r| peer_selected(&r["to"], to) && port_listed(&r["ports"], port)))
}

/// Both ways: admitted by the receiver's ingress policies and let out by the sender's egress ones.
fn network_allows(policies: &[&Value], from: &Value, to: &Value, port: i64) -> bool {
    ingress_allows(policies, from, to, port) && egress_allows(policies, from, to, port)
}

fn policy_applies(policy: &Value, kind: &str, labels: &Value) -> bool {
    strings(&policy["spec"]["policyTypes"]).iter().any(|t| t == kind) && selector_matches(&policy["spec"]["podSelector"], labels)
}

fn peer_selected(peers: &Value, labels: &Value) -> bool {
    peers.as_sequence().is_none_or(|peers| {
        peers.iter().any(|p| p.get("namespaceSelector").is_none() && p.get("ipBlock").is_none() && selector_matches(&p["podSelector"], labels))
    })
}

fn port_listed(ports: &Value, port: i64) -> bool {
    ports.as_sequence().is_none_or(|ports| ports.iter().any(|p| p.get("port").is_none_or(|q| q.as_i64() == Some(port))))
}

/// The object of `kind` named `name`.
fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| kind_of(o) == kind && name_of(o) == name)
}

/// The value of a container's variable: inline, or the key of a ConfigMap of `objects`
/// (configMapKeyRef); None when unset or a Secret's.
fn env_value(objects: &[Value], container: &Value, var: &str) -> Option<String> {
    let e = container["env"].as_sequence()?.iter().find(|e| e["name"] == var)?;
    if let Some(v) = e.get("value") {
        return Some(scalar(v));
    }
    let r = &e["valueFrom"]["configMapKeyRef"];
    let map = objects.iter().find(|o| kind_of(o) == "ConfigMap" && o["metadata"]["name"] == r["name"])?;
    map["data"].get(r["key"].as_str()?).map(scalar)
}

/// The Secret and key a container sees as the file `path`: the volume mounted at the file's
/// directory is a Secret (or projects one) with an item of that file name (or no items: every key a file).
fn secret_at(pod: &Value, container: &Value, path: &str) -> Option<(String, String)> {
    let (dir, file) = path.rsplit_once('/')?;
    let mount = container["volumeMounts"].as_sequence()?.iter().find(|m| m["mountPath"] == dir)?;
    let volume = pod["volumes"].as_sequence()?.iter().find(|v| v["name"] == mount["name"])?;
    let mut sources: Vec<(&Value, &str)> = vec![(&volume["secret"], "secretName")];
    sources.extend(volume["projected"]["sources"].as_sequence().into_iter().flatten().map(|s| (&s["secret"], "name")));
    sources.into_iter().find_map(|(secret, name_field)| {
        let name = secret[name_field].as_str()?.to_string();
        match secret["items"].as_sequence() {
            Some(items) => items.iter().find(|i| i["path"] == file).map(|i| (name, scalar(&i["key"]))),
            None => Some((name, file.to_string())),
        }
    })
}


#[test]
fn kubernetes_overlays_build_and_follow_the_deployment_rules() {
    let acl_conf = acls();
    for overlay in ["dev", "prod"] {
        let objects = kustomize(overlay);
        let of = |kind: &str| objects.iter().filter(move |o| kind_of(o) == kind).collect::<Vec<_>>();
        let deployments = of("Deployment");
        let names: BTreeSet<&str> = deployments.iter().map(|d| name_of(d)).collect();
        for svc in ["identity", "product", "orchestrator", "payment", "bank", "gateway"] {
            assert!(names.contains(svc), "{overlay}: no Deployment for {svc}");
        }

        // Pods: probes, requests and limits, non-root, no privilege escalation; Deployments spread
        // over nodes and zones and have a disruption budget.
        for w in deployments.iter().chain(of("StatefulSet").iter()) {
            let (kind, name) = (kind_of(w), name_of(w));
            let pod = &w["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true), "{overlay}: {kind} {name} runs as root");
            for c in pod["containers"].as_sequence().unwrap() {
                let cname = c["name"].as_str().unwrap();
                for probe in ["livenessProbe", "readinessProbe"] {
                    assert!(c.get(probe).is_some(), "{overlay}: {name}/{cname} has no {probe}");
                }
                if c["image"].as_str().unwrap().contains("sagaway") {
                    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health/live", "{overlay}: {name}");
                    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health/ready", "{overlay}: {name}");
                    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], Value::Bool(true), "{overlay}: {name}");
                }
                for (section, res) in [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")] {
                    assert!(c["resources"][section].get(res).is_some(), "{overlay}: {name}/{cname} has no {section}.{res}");
                }
                assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], Value::Bool(false), "{overlay}: {name}/{cname}");
                // No secret in the manifests: passwords, keys and credentialed URLs come from Secrets.
                for e in c["env"].as_sequence().into_iter().flatten() {
                    let (var, value) = (e["name"].as_str().unwrap(), e.get("value").and_then(Value::as_str));
                    let upper = var.to_uppercase();
                    let secretish = ["PASSWORD", "SECRET", "TOKEN"].iter().any(|w| upper.contains(w)) || upper.ends_with("_KEY") || upper.ends_with("_KEYS") || upper.ends_with("DATABASE_URL");
                    if let Some(value) = value {
                        assert!(!secretish || value.starts_with("/run/secrets/"), "{overlay}: {name} sets {var} inline");
                        assert!(!(value.contains("://") && value.contains('@')), "{overlay}: {name} {var} carries credentials inline");
                    }
                }
            }
            if kind == "Deployment" {
                assert!(pod["topologySpreadConstraints"].as_sequence().is_some_and(|t| !t.is_empty()), "{overlay}: {name} has no topology spread");
                let labels = &w["spec"]["template"]["metadata"]["labels"];
                assert!(of("PodDisruptionBudget").iter().any(|p| selects(&p["spec"]["selector"], labels)), "{overlay}: no PodDisruptionBudget covers {name}");
            }
        }
        assert!(of("Secret").is_empty(), "{overlay}: Secrets are created at install time, never kept in the manifests");

        // Kafka: topics as the services create them, replicas within the brokers and above min ISR.
        let brokers: i64 = of("KafkaNodePool").iter().filter(|p| strings(&p["spec"]["roles"]).contains(&"broker".to_string())).map(|p| int(&p["spec"]["replicas"])).sum();
        let kafka = of("Kafka");
        assert_eq!(kafka.len(), 1, "{overlay}: one Kafka cluster");
        let kcfg = &kafka[0]["spec"]["kafka"]["config"];
        let min_isr = int(&kcfg["min.insync.replicas"]);
        for k in ["default.replication.factor", "offsets.topic.replication.factor", "transaction.state.log.replication.factor"] {
            let rf = int(&kcfg[k]);
            assert!(rf <= brokers && rf >= min_isr, "{overlay}: Kafka {k}={rf} with {brokers} brokers, min ISR {min_isr}");
        }
        let env = of("ConfigMap").into_iter().find(|c| name_of(c).starts_with("sagaway-env")).expect("the shared ConfigMap");
        let keyed = int(&env["data"]["KAFKA_TOPIC_PARTITIONS"]) as i32;
        let service_rf = int(&env["data"]["KAFKA_TOPIC_REPLICATION_FACTOR"]);
        assert!(service_rf <= brokers && service_rf >= min_isr, "{overlay}: KAFKA_TOPIC_REPLICATION_FACTOR={service_rf}");
        assert_eq!(env["data"]["KAFKA_CONSUMER_MODE"], "group", "{overlay}: replicas share partitions only in group mode");
        let topics = of("KafkaTopic");
        let mut seen = BTreeSet::new();
        // A service creates `<TOPIC_PREFIX><topic>` with the partitions of `<topic>`: banks 002 and 003
        // (b002., b003.) partition their topics as bank 001 does.
        assert!(
            read("common/src/service.rs").contains("(cfg.topic(t), sagaway_messaging::topics::partitions(t, cfg.topic_partitions))"),
            "common/src/service.rs no longer takes the partitions of the unprefixed name: revisit this rule"
        );
        for t in &topics {
            let name = t["spec"]["topicName"].as_str().unwrap();
            seen.insert(name.to_string());
            let rf = int(&t["spec"]["replicas"]);
            let topic_isr = t["spec"]["config"].get("min.insync.replicas").map(int).unwrap_or(min_isr);
            assert!(rf <= brokers && rf >= topic_isr.max(min_isr), "{overlay}: {name} has {rf} replicas, {brokers} brokers, min ISR {topic_isr}");
            let unprefixed = name
                .split_once('.')
                .filter(|(p, _)| p.len() == 4 && p.starts_with('b') && p[1..].bytes().all(|b| b.is_ascii_digit()))
                .map_or(name, |(_, rest)| rest);
            assert_eq!(int(&t["spec"]["partitions"]) as i32, sagaway_messaging::topics::partitions(unprefixed, keyed), "{overlay}: partitions of {name}");
        }
        for (topic, _) in sagaway_messaging::topics::all() {
            assert!(seen.contains(topic), "{overlay}: no KafkaTopic for {topic}");
        }
        let cdc = topics.iter().find(|t| t["spec"]["topicName"] == sagaway_messaging::topics::CDC_PRODUCTS).unwrap();
        assert_eq!(cdc["spec"]["config"]["cleanup.policy"], "compact", "{overlay}: the CDC topic is compacted");
        for c in of("KafkaConnect") {
            for k in ["config.storage.replication.factor", "offset.storage.replication.factor", "status.storage.replication.factor"] {
                let rf = int(&c["spec"]["config"][k]);
                assert!(rf <= brokers && rf >= min_isr, "{overlay}: Connect {k}={rf}");
            }
        }

        // Autoscaling: a Kafka-driven service never scales past its topics' partitions.
        let consumers = ["product", "orchestrator", "payment", "bank", "bank002", "bank003"];
        for h in of("HorizontalPodAutoscaler") {
            let target = h["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
            assert_eq!(h["apiVersion"], "autoscaling/v2", "{overlay}: {target}");
            if consumers.contains(&target) {
                assert!(int(&h["spec"]["maxReplicas"]) <= keyed as i64, "{overlay}: {target} scales past {keyed} partitions");
            }
        }
        let scaled: Vec<_> = of("ScaledObject");
        for s in &scaled {
            let target = s["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
            assert!(int(&s["spec"]["maxReplicaCount"]) <= keyed as i64, "{overlay}: {target} scales past {keyed} partitions");
            let lag = s["spec"]["triggers"].as_sequence().unwrap().iter().find(|t| t["type"] == "kafka").unwrap_or_else(|| panic!("{overlay}: {target} scales on consumer lag"));
            let topic = lag["metadata"]["topic"].as_str().unwrap();
            assert!(seen.contains(topic), "{overlay}: {target} watches the lag of {topic}, which has no KafkaTopic");
            let partitions = topics.iter().find(|t| t["spec"]["topicName"] == topic).map(|t| int(&t["spec"]["partitions"])).unwrap_or(0);
            assert!(int(&s["spec"]["maxReplicaCount"]) <= partitions, "{overlay}: {target} scales past the {partitions} partitions of {topic}");
            let group = lag["metadata"]["consumerGroup"].as_str().unwrap();
            assert!(acl_conf.iter().any(|a| a.principal == target && a.resource == "group" && a.name == group), "{overlay}: {target} does not consume as {group}");
        }
        let autoscaled: BTreeSet<&str> = of("HorizontalPodAutoscaler").iter().chain(scaled.iter()).map(|h| h["spec"]["scaleTargetRef"]["name"].as_str().unwrap()).collect();
        for svc in ["identity", "product", "orchestrator", "payment", "bank", "bank002", "bank003", "gateway"] {
            assert!(autoscaled.contains(svc), "{overlay}: {svc} is not autoscaled");
        }

        // Each principal of acls.conf is a KafkaUser with exactly those grants.
        for principal in acl_conf.iter().map(|a| a.principal.as_str()).collect::<BTreeSet<_>>() {
            let user = of("KafkaUser").into_iter().find(|u| name_of(u) == principal).unwrap_or_else(|| panic!("{overlay}: no KafkaUser {principal}"));
            // Strimzi spells a prefixed pattern `prefix` (its CRD accepts literal or prefix); kafka-acls.sh `prefixed`.
            let got: BTreeSet<(String, String, String, BTreeSet<String>)> = user["spec"]["authorization"]["acls"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| {
                    let pattern = scalar(&a["resource"]["patternType"]);
                    assert!(pattern == "literal" || pattern == "prefix", "{overlay}: KafkaUser {principal}: patternType {pattern} (Strimzi: literal or prefix)");
                    let pattern = if pattern == "prefix" { "prefixed".to_string() } else { pattern };
                    (scalar(&a["resource"]["type"]), pattern, scalar(&a["resource"]["name"]), strings(&a["operations"]).into_iter().collect())
                })
                .collect();
            let want: BTreeSet<_> = acl_conf.iter().filter(|a| a.principal == principal).map(|a| (a.resource.clone(), a.pattern.clone(), a.name.clone(), a.operations.clone())).collect();
            assert_eq!(got, want, "{overlay}: KafkaUser {principal} differs from acls.conf");
        }

        // Only the gateway is reachable from anywhere; everything else is denied unless allowed.
        let policies = of("NetworkPolicy");
        assert!(
            policies.iter().any(|p| p["spec"]["podSelector"].as_mapping().is_some_and(|m| m.is_empty()) && strings(&p["spec"]["policyTypes"]) == ["Ingress"] && p["spec"].get("ingress").is_none()),
            "{overlay}: no default-deny ingress policy"
        );
        // Egress is restricted for Sagaway's own pods only: a namespace-wide egress deny would cut
        // the operators' pods (brokers to each other, Connect to Kafka and MySQL, Elasticsearch
        // nodes, the Kubernetes API) off, and they are not ours to enumerate.
        for p in &policies {
            if strings(&p["spec"]["policyTypes"]).iter().any(|t| t == "Egress") {
                let selector = &p["spec"]["podSelector"];
                assert!(
                    selector.as_mapping().is_some_and(|m| !m.is_empty()) || p["spec"]["egress"].as_sequence().is_some_and(|r| !r.is_empty()),
                    "{overlay}: {} denies egress to every pod of the namespace (operators' pods included)",
                    name_of(p)
                );
            }
        }
        for d in of("Deployment") {
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            let restricted = policies.iter().any(|p| policy_applies(p, "Egress", labels) && p["spec"]["podSelector"].as_mapping().is_some_and(|m| !m.is_empty()));
            assert!(restricted, "{overlay}: {}'s egress is not restricted", name_of(d));
        }
        // Elasticsearch nodes reach each other (transport, 9300), and the ECK operator their API.
        let es = serde_yaml::from_str::<Value>("{elasticsearch.k8s.elastic.co/cluster-name: sagaway}").unwrap();
        assert!(ingress_allows(&policies, &es, &es, 9300), "{overlay}: Elasticsearch nodes cannot reach each other");
        for p in &policies {
            for rule in p["spec"]["ingress"].as_sequence().into_iter().flatten() {
                if rule.get("from").is_none() {
                    assert_eq!(p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], "gateway", "{overlay}: {} admits everyone", name_of(p));
                }
            }
        }
        // Operators' resources are there: Strimzi (Kafka, Connect, connector), ECK.
        for kind in ["KafkaConnect", "KafkaConnector", "Elasticsearch"] {
            assert_eq!(of(kind).len(), 1, "{overlay}: one {kind}");
        }
    }
}

#[test]
fn kubernetes_runs_every_service_binary_the_three_banks_and_one_database_user_each() {
    // The workspace's service binaries, as compose_runs_every_service_binary_and_the_three_banks finds them.
    let cargo = toml_like::members(&read("Cargo.toml"));
    let binaries: BTreeSet<String> =
        cargo.0.iter().filter(|m| repo().join(m.as_str()).join("src/main.rs").exists() && !["cli", "loadgen", "e2e"].contains(&m.as_str())).cloned().collect();
    assert_eq!(binaries, set(&["identity", "product", "orchestrator", "payment", "bank", "gateway"]), "the workspace's service binaries");
    let users = mysql_users();
    let init = read("deploy/mysql/init.sh");
    // kustomize loads no file outside the base: the StatefulSet's script is a copy (scripts/check-k8s compares them too).
    assert_eq!(read("deploy/k8s/base/mysql-init.sh"), init, "deploy/k8s/base/mysql-init.sh is a copy of deploy/mysql/init.sh");
    let secrets_script = read("scripts/compose-secrets");
    let kafka_labels: Value = serde_yaml::from_str("strimzi.io/cluster: sagaway").unwrap();
    for overlay in ["dev", "prod"] {
        let objects = kustomize(overlay);
        let of = |kind: &str| objects.iter().filter(move |o| kind_of(o) == kind).collect::<Vec<_>>();
        let policies = of("NetworkPolicy");
        let labels_of = |w: &Value| w["spec"]["template"]["metadata"]["labels"].clone();

        // Every service binary runs in a Deployment (the bank in three), and no Deployment runs anything else.
        let mut runs: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for d in of("Deployment") {
            let binary = strings(&d["spec"]["template"]["spec"]["containers"][0]["args"]).first().cloned();
            runs.entry(binary.unwrap_or_else(|| panic!("{overlay}: Deployment {} names its binary in args", name_of(d)))).or_default().push(d);
        }
        for b in &binaries {
            let n = runs.get(b).map(Vec::len).unwrap_or(0);
            let wanted = if b == "bank" { 3 } else { 1 };
            assert_eq!(n, wanted, "{overlay}: {b} runs in {n} Deployment(s), not {wanted}");
        }
        assert_eq!(runs.keys().cloned().collect::<BTreeSet<_>>(), binaries, "{overlay}: Deployments run only service binaries");

        // Banks 001, 002, 003 as compose runs them: each Deployment its own BANK_CODE, port and Service,
        // topic prefix (001 the shared topics, which have KafkaTopics), Kafka principal (its name) and
        // signing key Secret; one directory Secret for all, whose URLs (the Services) are the ones
        // scripts/compose-secrets writes. The gateway names every bank; the gateway and every bank
        // reach every bank; each bank reaches Kafka and identity.
        let gateway = object(&objects, "Deployment", "gateway").unwrap_or_else(|| panic!("{overlay}: the gateway's Deployment"));
        let identity = object(&objects, "Deployment", "identity").unwrap_or_else(|| panic!("{overlay}: identity's Deployment"));
        let mut banks: BTreeMap<String, String> = BTreeMap::new();
        let mut bank_pods: Vec<(String, Value, i64)> = Vec::new();
        for d in runs["bank"].iter().copied() {
            let name = name_of(d);
            let pod = &d["spec"]["template"]["spec"];
            let c = &pod["containers"][0];
            let var = |v: &str| env_value(&objects, c, v).unwrap_or_else(|| panic!("{overlay}: Deployment {name} sets {v}"));
            let code = var("BANK_CODE");
            let port = var("BANK_PORT");
            let port_number: i64 = port.parse().unwrap_or_else(|_| panic!("{overlay}: {name}: BANK_PORT {port}"));
            let prefix = env_value(&objects, c, "TOPIC_PREFIX").unwrap_or_default();
            let wanted = if code == "001" { String::new() } else { format!("b{code}.") };
            assert_eq!(prefix, wanted, "{overlay}: bank {code} ({name}): its topics are {wanted}bank.*");
            for (topic, _) in sagaway_messaging::topics::all().into_iter().filter(|(t, _)| t.starts_with("bank.")) {
                let full = format!("{prefix}{topic}");
                assert!(of("KafkaTopic").iter().any(|t| t["spec"]["topicName"] == full.as_str()), "{overlay}: bank {code}: no KafkaTopic {full}");
            }
            assert_eq!(int(&c["ports"][0]["containerPort"]), port_number, "{overlay}: {name} listens on BANK_PORT");
            let service = object(&objects, "Service", name).unwrap_or_else(|| panic!("{overlay}: no Service {name}"));
            assert_eq!(int(&service["spec"]["ports"][0]["port"]), port_number, "{overlay}: Service {name} is on BANK_PORT");
            let labels = labels_of(d);
            assert!(
                service["spec"]["selector"].as_mapping().is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v))),
                "{overlay}: Service {name} selects the pods of Deployment {name}"
            );
            assert_eq!(var("KAFKA_SASL_USERNAME"), name, "{overlay}: bank {code} is the Kafka principal of its Deployment's name");
            assert!(of("KafkaUser").iter().any(|u| name_of(u) == name), "{overlay}: no KafkaUser {name}");
            assert_eq!(secret_at(pod, c, &var("KAFKA_SASL_PASSWORD_FILE")), Some((name.to_string(), "password".to_string())), "{overlay}: {name} reads its KafkaUser's Secret");
            assert_eq!(secret_at(pod, c, &var("BANK_SIGNING_KEY_FILE")).map(|(s, _)| s), Some(format!("bank-{code}-signing-key")), "{overlay}: bank {code}'s own signing key");
            assert!(c["env"].as_sequence().unwrap().iter().all(|e| e["name"] != "BANK_SIGNING_KEY"), "{overlay}: bank {code}: the key is a file, not a value");
            assert_eq!(secret_at(pod, c, &var("BANK_DIRECTORY_FILE")).map(|(s, _)| s), Some("bank-directory".to_string()), "{overlay}: bank {code} reads the shared directory");
            assert!(of("ScaledObject").iter().any(|s| s["spec"]["scaleTargetRef"]["name"] == name), "{overlay}: {name} is not autoscaled on its lag");
            let url = format!("http://{name}:{port}");
            assert!(secrets_script.contains(&format!("{code} {url}")), "{overlay}: scripts/compose-secrets' directory does not list bank {code} at {url}");
            assert!(banks.insert(code.clone(), url).is_none(), "{overlay}: two Deployments are bank {code}");
            // (into the brokers: Strimzi's own NetworkPolicy of the listener, not in these manifests)
            assert!(egress_allows(&policies, &labels, &kafka_labels, 9092), "{overlay}: {name} may not connect to Kafka");
            assert!(network_allows(&policies, &labels, &labels_of(identity), 3336), "{overlay}: {name} cannot reach identity");
            bank_pods.push((name.to_string(), labels, port_number));
        }
        assert_eq!(banks.keys().cloned().collect::<BTreeSet<_>>(), set(&["001", "002", "003"]), "{overlay}: banks 001, 002 and 003");
        let gateway_banks: BTreeMap<String, String> = env_value(&objects, &gateway["spec"]["template"]["spec"]["containers"][0], "GATEWAY_BANKS")
            .unwrap_or_else(|| panic!("{overlay}: the gateway sets GATEWAY_BANKS"))
            .split(',')
            .map(|p| p.trim().split_once('=').map(|(c, u)| (c.to_string(), u.to_string())).expect("code=url"))
            .collect();
        assert_eq!(gateway_banks, banks, "{overlay}: GATEWAY_BANKS names every bank at its Service");
        for (to, to_labels, port) in &bank_pods {
            assert!(network_allows(&policies, &labels_of(gateway), to_labels, *port), "{overlay}: the gateway cannot reach {to}:{port}");
            for (from, from_labels, _) in bank_pods.iter().filter(|(from, _, _)| from != to) {
                assert!(network_allows(&policies, from_labels, to_labels, *port), "{overlay}: {from} cannot reach {to}:{port} (inter-bank two-phase commit)");
            }
        }

        // Databases: every <PREFIX>_DATABASE_URL names a user of deploy/mysql/init.sh and no password and
        // comes from a ConfigMap (never inline); <PREFIX>_DATABASE_PASSWORD_FILE is the file of that
        // user's own Secret mysql-<user>, mounted in that container. One user per Deployment. Every
        // other *_PASSWORD_FILE is a mounted Secret's file too.
        let mysql = object(&objects, "StatefulSet", "mysql").unwrap_or_else(|| panic!("{overlay}: the MySQL StatefulSet"));
        let mut logins = BTreeSet::new();
        for d in of("Deployment") {
            let name = name_of(d);
            let pod = &d["spec"]["template"]["spec"];
            for c in pod["containers"].as_sequence().unwrap() {
                for e in c["env"].as_sequence().into_iter().flatten() {
                    let var = e["name"].as_str().unwrap();
                    if var.ends_with("_PASSWORD_FILE") {
                        let path = env_value(&objects, c, var).unwrap_or_else(|| panic!("{overlay}: {name} {var} is a path"));
                        assert!(secret_at(pod, c, &path).is_some(), "{overlay}: {name} {var}={path} is not a file of a mounted Secret");
                    }
                    let Some(prefix) = var.strip_suffix("_DATABASE_URL") else { continue };
                    assert!(e.get("value").is_none(), "{overlay}: {name} sets {var} inline (the URLs are a ConfigMap's)");
                    let url = env_value(&objects, c, var).unwrap_or_else(|| panic!("{overlay}: {name} {var} is a ConfigMap's key"));
                    let (user, host, database) = database_url_parts(&url);
                    assert!(!user.contains(':'), "{overlay}: {name} {var} carries a password");
                    assert_eq!(host, "mysql:3306", "{overlay}: {name} {var} is the mysql Service");
                    assert!(users.contains(&(user.clone(), database.clone())), "{overlay}: {name} {var} logs in as {user} to {database}, a pair deploy/mysql/init.sh does not make");
                    let file = env_value(&objects, c, &format!("{prefix}_DATABASE_PASSWORD_FILE")).unwrap_or_else(|| panic!("{overlay}: {name} sets {prefix}_DATABASE_PASSWORD_FILE"));
                    assert_eq!(secret_at(pod, c, &file), Some((format!("mysql-{user}"), "password".to_string())), "{overlay}: {name} reads {user}'s password ({file}) from the Secret mysql-{user}");
                    assert!(logins.insert(user.clone()), "{overlay}: {name}: the user {user} is another Deployment's too (one user per database)");
                    assert!(network_allows(&policies, &labels_of(d), &labels_of(mysql), 3306), "{overlay}: {name} cannot reach MySQL");
                }
            }
        }
        let all: BTreeSet<String> = users.iter().map(|(u, _)| u.clone()).collect();
        assert_eq!(logins, all, "{overlay}: every user of deploy/mysql/init.sh is one Deployment's");
        // No `mysql://user:password@` in any object.
        for o in &objects {
            let text = serde_yaml::to_string(o).unwrap();
            for (i, _) in text.match_indices("mysql://") {
                let rest = &text[i + "mysql://".len()..];
                let url = &rest[..rest.find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`').unwrap_or(rest.len())];
                if let Some((userinfo, _)) = url.split_once('@') {
                    assert!(!userinfo.contains(':'), "{overlay}: {} {}: mysql://{url} carries a password", kind_of(o), name_of(o));
                }
            }
        }

        // MySQL creates those users and Debezium's at its first start with deploy/mysql/init.sh, which
        // reads each password from /run/secrets/mysql_<user>_password: there, the Secret mysql-<user>.
        let pod = &mysql["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let init_mount = c["volumeMounts"].as_sequence().unwrap().iter().find(|m| m["mountPath"] == "/docker-entrypoint-initdb.d");
        let init_volume = init_mount.and_then(|m| pod["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == m["name"]));
        let init_map = init_volume.and_then(|v| object(&objects, "ConfigMap", v["configMap"]["name"].as_str().unwrap_or_default()));
        let scripts: Vec<String> = init_map
            .unwrap_or_else(|| panic!("{overlay}: MySQL mounts a ConfigMap at /docker-entrypoint-initdb.d"))["data"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(k, _)| scalar(k).ends_with(".sh"))
            .map(|(_, v)| scalar(v))
            .collect();
        assert_eq!(scripts, [init.clone()], "{overlay}: MySQL runs deploy/mysql/init.sh, and only that, at initialisation");
        assert!(c["env"].as_sequence().unwrap().iter().all(|e| e["name"] != "SECRETS_DIR"), "{overlay}: init.sh reads /run/secrets");
        for u in users.iter().map(|(u, _)| u.as_str()).chain(["debezium"]) {
            assert_eq!(
                secret_at(pod, c, &format!("/run/secrets/mysql_{u}_password")),
                Some((format!("mysql-{u}"), "password".to_string())),
                "{overlay}: MySQL reads {u}'s password from the Secret mysql-{u}"
            );
        }

        // Debezium's password: the connector reads the Secret mysql-debezium through Strimzi's
        // Kubernetes config provider, which may read it.
        let namespace = objects.iter().find_map(|o| o["metadata"]["namespace"].as_str()).expect("the overlay's namespace");
        let connect = of("KafkaConnect");
        assert_eq!(connect[0]["spec"]["config"]["config.providers.secrets.class"], "io.strimzi.kafka.KubernetesSecretConfigProvider", "{overlay}: Connect's config provider");
        let connectors = of("KafkaConnector");
        let config = &connectors[0]["spec"]["config"];
        assert_eq!(config["database.user"], "debezium", "{overlay}: the connector's database user");
        assert_eq!(config["database.password"], format!("${{secrets:{namespace}/mysql-debezium:password}}").as_str(), "{overlay}: the connector's database password");
        assert!(
            of("Role").iter().any(|r| r["rules"].as_sequence().into_iter().flatten().any(|rule| strings(&rule["resourceNames"]).iter().any(|n| n == "mysql-debezium"))),
            "{overlay}: Connect may not read the Secret mysql-debezium"
        );
        assert!(ingress_allows(&policies, &kafka_connect_labels(), &labels_of(mysql), 3306), "{overlay}: MySQL does not admit Connect");
    }
}

/// The labels Strimzi gives the Kafka Connect pods of the cluster `sagaway-connect`.
fn kafka_connect_labels() -> Value {
    serde_yaml::from_str("strimzi.io/cluster: sagaway-connect\nstrimzi.io/kind: KafkaConnect").unwrap()
}

// ---- every service, the banks, the gateway ------------------------------------------------------

#[test]
fn compose_runs_every_service_binary_and_the_three_banks() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    // The workspace's service binaries: members with a main.rs, but the operator CLI (cli), the
    // load generator (loadgen) and the tests (e2e).
    let cargo = toml_like::members(&read("Cargo.toml"));
    let binaries: BTreeSet<String> =
        cargo.0.iter().filter(|m| repo().join(m.as_str()).join("src/main.rs").exists() && !["cli", "loadgen", "e2e"].contains(&m.as_str())).cloned().collect();
    assert_eq!(binaries, set(&["identity", "product", "orchestrator", "payment", "bank", "gateway"]), "the workspace's service binaries");
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, svc) in services {
        if svc["image"] != "sagaway:latest" {
            continue;
        }
        let name = name.as_str().unwrap().to_string();
        let port = health_port(svc);
        assert!(!port.is_empty(), "{name} has a healthcheck on its port");
        assert!(strings(&svc["healthcheck"]["test"]).iter().any(|t| t.contains(&format!("localhost:{port}/health/ready"))), "{name}'s healthcheck is its readiness");
        runs.entry(binary_of(svc)).or_default().push(name);
    }
    for b in &binaries {
        let n = runs.get(b).map(Vec::len).unwrap_or(0);
        let wanted = if b == "bank" { 3 } else { 1 };
        assert_eq!(n, wanted, "compose runs {b} {n} time(s), not {wanted}: {runs:?}");
    }
    assert_eq!(runs.keys().cloned().collect::<BTreeSet<_>>(), binaries, "compose runs only service binaries");

    // The banks 001, 002, 003 as scripts/stack runs them: each its own port, database, topic prefix
    // (001 the shared topics), Kafka principal and signing key; one directory for all, which
    // scripts/compose-secrets writes with the address each bank has in compose.
    let secrets_script = read("scripts/compose-secrets");
    let (mut codes, mut ports, mut databases) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for b in &runs["bank"] {
        let env = env_of(&compose, b);
        let code = env["BANK_CODE"].clone();
        let port = env["BANK_PORT"].clone();
        assert_eq!(health_port(&compose["services"][b.as_str()]), port, "{b}'s healthcheck asks its BANK_PORT");
        let prefix = env.get("TOPIC_PREFIX").cloned().unwrap_or_default();
        let wanted = if code == "001" { String::new() } else { format!("b{code}.") };
        assert_eq!(prefix, wanted, "bank {code} ({b}): its topics are {wanted}bank.* (bank 001 reads the shared bank.commands)");
        assert_eq!(env["KAFKA_SASL_USERNAME"], *b, "bank {code} is the principal of its service name");
        assert_eq!(env["BANK_SIGNING_KEY_FILE"], format!("/run/secrets/bank_{code}_signing_key"), "bank {code}'s own key");
        assert_eq!(env["BANK_DIRECTORY_FILE"], "/run/secrets/bank_directory", "bank {code} reads the shared directory");
        assert!(!env.contains_key("BANK_SIGNING_KEY"), "bank {code}: the key is a file, not a value");
        assert!(!secrets_of(&compose, b).contains("card_keys"), "bank {code} mounts no card keys");
        assert!(
            secrets_script.contains(&format!("{code} http://{b}:{port}")),
            "scripts/compose-secrets writes bank {code} into the directory at http://{b}:{port}"
        );
        assert_eq!(depends_on(&compose, b, "kafka-init").as_deref(), Some("service_completed_successfully"), "{b} waits for its ACLs");
        codes.insert(code);
        ports.insert(port);
        databases.insert(database_url_parts(&env["BANK_DATABASE_URL"]).2);
    }
    assert_eq!(codes, set(&["001", "002", "003"]), "banks 001, 002 and 003");
    assert_eq!(ports.len(), 3, "one port per bank: {ports:?}");
    assert_eq!(databases, set(&["bank", "bank_002", "bank_003"]), "one database per bank");

    // The gateway: every service and every bank at its compose address, on 8080, the one port a
    // browser needs; its event topics follow from GATEWAY_BANKS (its ACLs are written for them).
    let gw = env_of(&compose, "gateway");
    assert_eq!(gw["GATEWAY_HOST"], "0.0.0.0", "the gateway listens on all interfaces");
    assert_eq!(gw["GATEWAY_PORT"], "8080");
    assert_eq!(strings(&compose["services"]["gateway"]["ports"]), ["8080:8080"], "the gateway publishes 8080");
    for (var, svc, port) in [("IDENTITY_URL", "identity", 3336), ("PRODUCT_URL", "product", 3333), ("ORCHESTRATOR_URL", "orchestrator", 3334), ("PAYMENT_URL", "payment", 3335)] {
        assert_eq!(gw[var], format!("http://{svc}:{port}"), "the gateway reaches {svc}");
    }
    let gateway_banks: BTreeMap<String, String> = gw["GATEWAY_BANKS"]
        .split(',')
        .map(|p| p.trim().split_once('=').map(|(c, u)| (c.to_string(), u.to_string())).expect("code=url"))
        .collect();
    let banks_in_compose: BTreeMap<String, String> = runs["bank"]
        .iter()
        .map(|b| {
            let env = env_of(&compose, b);
            (env["BANK_CODE"].clone(), format!("http://{b}:{}", env["BANK_PORT"]))
        })
        .collect();
    assert_eq!(gateway_banks, banks_in_compose, "GATEWAY_BANKS names every bank at its compose address");
    assert!(!gw.contains_key("GATEWAY_EVENT_TOPICS") && !gw.contains_key("TOPIC_PREFIX"), "the event topics are the defaults the ACLs grant");
    let known = variables_read_in(&["gateway/src", "common/src", "messaging/src"]);
    let config = read("gateway/src/config.rs");
    for var in gw.keys() {
        assert!(known.contains(var) || config.contains(&format!("\"{var}\"")) || var == "RUST_LOG", "the gateway is given {var}, which it does not read");
    }
    for svc in ["kafka-init", "identity", "product", "orchestrator", "payment", "bank", "bank002", "bank003"] {
        assert!(depends_on(&compose, "gateway", svc).is_some(), "the gateway waits for {svc}");
    }

    // No host port is published twice (Kafka UI moved off the gateway's 8080).
    let mut published = BTreeMap::new();
    for (name, svc) in services {
        for p in strings(&svc["ports"]) {
            let host = p.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or(p.clone());
            if let Some(other) = published.insert(host.clone(), name.as_str().unwrap().to_string()) {
                panic!("host port {host} is published by {other} and {:?}", name.as_str());
            }
        }
    }
}

#[test]
fn kafka_acls_of_banks_002_and_003_and_of_the_gateway() {
    let acls = acls();
    let compose = compose();
    let probe = {
        let kafka = read("messaging/src/kafka.rs");
        let decl = "pub const PROBE_TOPIC: &str = \"";
        let i = kafka.find(decl).expect("PROBE_TOPIC") + decl.len();
        kafka[i..i + kafka[i..].find('"').unwrap()].to_string()
    };
    let as_tuples = |principal: &str| -> BTreeSet<(String, String, String, BTreeSet<String>)> {
        acls.iter().filter(|a| a.principal == principal).map(|a| (a.resource.clone(), a.pattern.clone(), a.name.clone(), a.operations.clone())).collect()
    };

    // Banks 002 and 003 run the bank's code under a topic prefix: bank 001's grants (which
    // kafka_acls_grant_each_principal_exactly_what_its_code_uses ties to the code), with the prefix on
    // every topic and group but the (unprefixed) probe topic.
    let bank_source = crate_source("bank");
    assert!(bank_source.contains("&format!(\"{}bank-{name}\", common.topic_prefix)"), "the bank's groups carry the topic prefix");
    assert!(read("common/src/service.rs").contains("wanted.push((kafka::PROBE_TOPIC.to_string(), 1));"), "the probe topic is not prefixed");
    for svc in ["bank002", "bank003"] {
        let env = env_of(&compose, svc);
        let prefix = env["TOPIC_PREFIX"].clone();
        assert!(!prefix.is_empty(), "{svc} has a topic prefix");
        let wanted: BTreeSet<_> = as_tuples("bank")
            .into_iter()
            .map(|(resource, pattern, name, ops)| {
                let name = if resource == "topic" && name == probe { name } else { format!("{prefix}{name}") };
                (resource, pattern, name, ops)
            })
            .collect();
        assert_eq!(as_tuples(svc), wanted, "{svc}: bank's grants on its own topics and groups ({prefix})");
    }

    // The gateway reads the event topics it derives from GATEWAY_BANKS, assigning partitions itself
    // (no group membership, no commits), produces nothing and creates no topic; librdkafka looks up
    // the coordinator of its random group ids, which takes Describe on the group.
    let gateway = crate_source("gateway");
    for evidence in [
        "let bank_prefix = if code == \"001\" { String::new() } else { format!(\"b{code}.\") };",
        "cfg.set(\"group.id\", format!(\"gateway-{}\", uuid::Uuid::new_v4()))",
        "consumer.assign(&tpl)",
    ] {
        assert!(gateway.contains(evidence), "gateway: the source no longer shows `{evidence}`: revisit its ACLs");
    }
    for absent in ["FutureProducer", "kafka::producer", "ensure_topics", ".commit("] {
        assert!(!gateway.contains(absent), "gateway: `{absent}` in its source: its ACLs grant no Write, Create or group Read");
    }
    let constants = topic_constants();
    let mut topics = BTreeSet::from([constants["ORDER_EVENTS"].clone()]);
    for pair in env_of(&compose, "gateway")["GATEWAY_BANKS"].split(',') {
        let code = pair.trim().split('=').next().unwrap();
        let bank_prefix = if code == "001" { String::new() } else { format!("b{code}.") };
        topics.insert(format!("{bank_prefix}{}", constants["BANK_EVENTS"]));
    }
    let mut wanted: BTreeSet<_> = topics.into_iter().map(|t| ("topic".to_string(), "literal".to_string(), t, set(&["Read"]))).collect();
    wanted.insert(("group".to_string(), "prefixed".to_string(), "gateway-".to_string(), set(&["Describe"])));
    assert_eq!(as_tuples("gateway"), wanted, "gateway: Read on the event topics, Describe on its groups");
}

// ---- database users and secrets -----------------------------------------------------------------

#[test]
fn compose_database_urls_name_a_user_and_each_service_reads_its_password_from_its_secret() {
    let compose = compose();
    let users = mysql_users();
    // config::database_url reads <PREFIX>_DATABASE_PASSWORD_FILE for every prefix.
    assert!(read("messaging/src/env.rs").contains("format!(\"{prefix}_DATABASE_PASSWORD_FILE\")"), "messaging/src/env.rs derives the password file's variable");
    let mut logins = BTreeSet::new();
    for (name, svc) in compose["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        if svc["environment"].as_mapping().is_none() {
            continue;
        }
        let env = env_of(&compose, name);
        for (var, url) in env.iter().filter(|(k, _)| k.ends_with("_DATABASE_URL")) {
            let prefix = var.strip_suffix("_DATABASE_URL").unwrap();
            let (user, host, database) = database_url_parts(url);
            assert!(!user.contains(':'), "{name}: {var} carries a password");
            assert_eq!(host, "mysql:3306", "{name}: {var} is the mysql service");
            assert!(users.contains(&(user.clone(), database.clone())), "{name}: {var} logs in as {user} to {database}, a pair deploy/mysql/init.sh does not make");
            let secret = format!("mysql_{user}_password");
            assert_eq!(env.get(&format!("{prefix}_DATABASE_PASSWORD_FILE")), Some(&format!("/run/secrets/{secret}")), "{name} reads {user}'s password from its secret");
            assert!(secrets_of(&compose, name).contains(&secret), "{name} mounts {secret}");
            assert!(logins.insert(user.clone()), "{name}: the user {user} is another service's too (one user per database)");
        }
    }
    let all: BTreeSet<String> = users.iter().map(|(u, _)| u.clone()).collect();
    assert_eq!(logins, all, "every user of deploy/mysql/init.sh is one service's");
    assert_eq!(users.iter().map(|(_, d)| d.clone()).collect::<BTreeSet<_>>().len(), users.len(), "one user per database");

    // MySQL makes the users from the same secrets, by deploy/mysql/init.sh (no password in it).
    let mut wanted: BTreeSet<String> = all.iter().map(|u| format!("mysql_{u}_password")).collect();
    wanted.insert("mysql_debezium_password".to_string());
    assert_eq!(secrets_of(&compose, "mysql"), wanted, "mysql mounts every database user's password and Debezium's");
    let volumes = strings(&compose["services"]["mysql"]["volumes"]);
    assert!(
        volumes.iter().any(|v| v.starts_with("./deploy/mysql/init.sh:/docker-entrypoint-initdb.d/") && v.trim_end_matches(":ro").ends_with(".sh")),
        "mysql runs deploy/mysql/init.sh at initialisation: {volumes:?}"
    );
    assert!(!repo().join("deploy/mysql/init.sql").exists(), "deploy/mysql/init.sql (passwords inline) is gone");
    let init = read("deploy/mysql/init.sh");
    assert!(init.contains("secrets_dir=\"${SECRETS_DIR:-/run/secrets}\"") && init.contains("mysql_$1_password"), "init.sh reads each password from /run/secrets");
    assert!(!init.contains("IDENTIFIED BY 'sagaway'") && !init.contains("IDENTIFIED BY 'dbz'"), "no literal password in init.sh");
    assert!(init.contains("'debezium'@'%'") && init.contains("REPLICATION SLAVE"), "init.sh makes Debezium's user");
    assert!(repo().join("scripts/compose-secrets").exists() && read("scripts/compose-secrets").contains("new_file \"mysql_${u}_password\""), "scripts/compose-secrets makes the MySQL passwords");

    // Connect hands the connector its password through the worker's `dir` provider.
    assert!(secrets_of(&compose, "connect").contains("mysql_debezium_password"), "connect mounts the Debezium user's password");
    let json: serde_json::Value = serde_json::from_str(&read("connect-config/product-cdc.json")).unwrap();
    assert_eq!(json["config"]["database.user"], "debezium");
    assert_eq!(json["config"]["database.password"], "${dir:/run/secrets:mysql_debezium_password}");
    assert_eq!(env_of(&compose, "connect")["CONNECT_CONFIG_PROVIDERS_DIR_CLASS"], "org.apache.kafka.common.config.provider.DirectoryConfigProvider");

    // No `mysql://user:password@` anywhere in the compose files.
    for file in ["docker-compose.yml", "docker-compose.kafka-cluster.yml"] {
        let text = read(file);
        for (i, _) in text.match_indices("mysql://") {
            let rest = &text[i + "mysql://".len()..];
            let url = &rest[..rest.find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`').unwrap_or(rest.len())];
            if let Some((userinfo, _)) = url.split_once('@') {
                assert!(!userinfo.contains(':'), "{file}: mysql://{url} carries a password");
            }
        }
    }
}

#[test]
fn compose_secrets_are_declared_mounted_where_named_and_made_by_compose_secrets() {
    for (setup, model) in [("docker-compose.yml", compose()), ("+ docker-compose.kafka-cluster.yml", compose_with("docker-compose.kafka-cluster.yml"))] {
        let declared: BTreeSet<String> = model["secrets"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()).collect();
        let mut mounted = BTreeSet::new();
        for (name, svc) in model["services"].as_mapping().unwrap() {
            let name = name.as_str().unwrap();
            let own = secrets_of(&model, name);
            for s in &own {
                assert!(declared.contains(s), "{setup}: {name} mounts the undeclared secret {s}");
            }
            mounted.extend(own.iter().cloned());
            // Every secret file the service names (environment, command, entrypoint) is one it mounts:
            // `/run/secrets/<file>`, or `${dir:/run/secrets:<file>}` for Connect's provider (the
            // directory itself, as Kafka UI's `configtree:/run/secrets/`, names no file).
            let mut texts: Vec<String> = Vec::new();
            if svc["environment"].as_mapping().is_some() {
                texts.extend(env_of(&model, name).into_values());
            }
            texts.extend(strings(&svc["command"]));
            texts.extend(strings(&svc["entrypoint"]));
            for t in &texts {
                for sep in ["/run/secrets/", "/run/secrets:"] {
                    for (i, _) in t.match_indices(sep) {
                        let file: String = t[i + sep.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.').collect();
                        if file.is_empty() {
                            continue;
                        }
                        assert!(own.contains(&file), "{setup}: {name} names the secret {file} but does not mount it");
                    }
                }
            }
        }
        assert_eq!(mounted, declared, "{setup}: every declared secret is mounted by some service");
    }

    // scripts/compose-secrets makes every file: the Kafka passwords of acls.conf's principals, the
    // MySQL passwords of init.sh's users, the banks' keys and directory, and the named ones.
    let compose = compose();
    let script = read("scripts/compose-secrets");
    let principals: BTreeSet<String> = acls().into_iter().map(|a| a.principal).chain(["admin".to_string()]).collect();
    let users: BTreeSet<String> = mysql_users().into_iter().map(|(u, _)| u).chain(["debezium".to_string()]).collect();
    for name in compose["secrets"].as_mapping().unwrap().keys() {
        let name = name.as_str().unwrap();
        let file = secret_file(&compose, name);
        assert!(file.starts_with("./deploy/secrets/"), "secret {name}: {file} is in SAGAWAY_SECRETS_DIR");
        let base = file.rsplit('/').next().unwrap();
        let middle = |prefix: &str, suffix: &str| base.strip_prefix(prefix).and_then(|r| r.strip_suffix(suffix)).map(str::to_string);
        let made = if let Some(p) = middle("kafka_", "_password") {
            principals.contains(&p) && (p == "admin" || script.contains("new_file \"kafka_${p}_password\""))
        } else if let Some(u) = middle("mysql_", "_password") {
            users.contains(&u) && script.contains("new_file \"mysql_${u}_password\"")
        } else if let Some(code) = middle("bank_", "_signing_key") {
            // the BANKS table: `BANKS="001 http://…` then one `<code> http://…` line per bank
            script.contains("new_file \"bank_${code}_signing_key\"")
                && (script.contains(&format!("\n{code} http://")) || script.contains(&format!("BANKS=\"{code} http://")))
        } else {
            script.contains(base)
        };
        assert!(made, "scripts/compose-secrets does not make {base} (secret {name})");
    }
}

// ---- monitoring ---------------------------------------------------------------------------------

#[test]
fn compose_mounts_the_monitoring_files_and_prometheus_scrapes_every_service() {
    let compose = compose();
    // Where a host path is mounted in a container (`host:container[:ro]`).
    let mount = |svc: &str, host: &str| -> String {
        strings(&compose["services"][svc]["volumes"])
            .iter()
            .find_map(|v| {
                let mut parts = v.split(':');
                (parts.next() == Some(host)).then(|| parts.next().unwrap_or_default().to_string())
            })
            .unwrap_or_else(|| panic!("{svc} does not mount {host}"))
    };
    for svc in ["prometheus", "grafana"] {
        assert!(compose["services"][svc]["profiles"].as_sequence().is_some_and(|p| p.iter().any(|x| x == "monitoring")), "{svc} is in the profile monitoring");
    }

    // Prometheus: its configuration where the image reads it, and each rule file where the
    // configuration resolves it (relative to the configuration's directory).
    assert_eq!(mount("prometheus", "./deploy/prometheus/prometheus.yml"), "/etc/prometheus/prometheus.yml", "the image's --config.file");
    let config: Value = serde_yaml::from_str(&read("deploy/prometheus/prometheus.yml")).expect("prometheus.yml is YAML");
    let rule_files = strings(&config["rule_files"]);
    assert!(!rule_files.is_empty(), "prometheus.yml loads the alert rules");
    for rule_file in &rule_files {
        assert!(!rule_file.starts_with('/'), "{rule_file}: relative, so the same file works with promtool and in the container");
        assert!(repo().join("deploy/prometheus").join(rule_file).exists(), "deploy/prometheus/{rule_file} exists");
        assert_eq!(mount("prometheus", &format!("./deploy/prometheus/{rule_file}")), format!("/etc/prometheus/{rule_file}"), "{rule_file} is mounted next to prometheus.yml");
    }
    // One job per Sagaway service (named after its binary: the three banks are the job `bank`),
    // scraping each at the port of its healthcheck, and nothing else.
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    for job in config["scrape_configs"].as_sequence().expect("scrape_configs") {
        let job_name = job["job_name"].as_str().unwrap();
        for static_config in job["static_configs"].as_sequence().expect("static_configs") {
            for target in strings(&static_config["targets"]) {
                assert!(targets.insert(target.clone(), job_name.to_string()).is_none(), "{target} is scraped twice");
            }
        }
    }
    let mut sagaway = 0;
    for (name, svc) in compose["services"].as_mapping().unwrap() {
        if svc["image"] != "sagaway:latest" {
            continue;
        }
        sagaway += 1;
        let name = name.as_str().unwrap();
        let target = format!("{name}:{}", health_port(svc));
        let job = targets.get(&target).unwrap_or_else(|| panic!("prometheus does not scrape {target}"));
        assert_eq!(*job, binary_of(svc), "{name} is scraped by the job of its service");
    }
    assert_eq!(targets.len(), sagaway, "prometheus scrapes the Sagaway services only: {targets:?}");
    // Every alert carries a severity and a runbook entry of docs/operations.md.
    let rules: Value = serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml is YAML");
    let operations = read("docs/operations.md");
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let alert = rule["alert"].as_str().expect("alerting rules only");
            alerts += 1;
            assert!(["critical", "warning"].contains(&rule["labels"]["severity"].as_str().unwrap_or_default()), "{alert} has a severity");
            for annotation in ["summary", "description"] {
                assert!(rule["annotations"][annotation].as_str().is_some_and(|a| !a.is_empty()), "{alert} has a {annotation}");
            }
            assert_eq!(rule["annotations"]["runbook_url"].as_str(), Some(format!("docs/operations.md#{}", alert.to_lowercase()).as_str()), "{alert}'s runbook_url");
            assert!(operations.contains(&format!("\n### {alert}\n")), "docs/operations.md has the runbook entry {alert}");
        }
    }
    assert!(alerts >= 8, "alerts.yml has the alerts: {alerts}");
    assert!(read("deploy/prometheus/alerts.test.yml").contains("rule_files:\n  - alerts.yml"), "the rules have unit tests (promtool test rules)");

    // Grafana: the datasource and the dashboard provider where Grafana provisions from, and the
    // dashboards at the provider's path; every dashboard uses that datasource.
    assert_eq!(mount("grafana", "./deploy/grafana/datasource.yml"), "/etc/grafana/provisioning/datasources/datasource.yml");
    assert_eq!(mount("grafana", "./deploy/grafana/dashboards.yml"), "/etc/grafana/provisioning/dashboards/dashboards.yml");
    let provider: Value = serde_yaml::from_str(&read("deploy/grafana/dashboards.yml")).expect("dashboards.yml is YAML");
    let path = provider["providers"][0]["options"]["path"].as_str().expect("the provider's options.path");
    assert_eq!(mount("grafana", "./deploy/grafana/dashboards"), path, "the dashboards are mounted at the provider's path");
    let datasource: Value = serde_yaml::from_str(&read("deploy/grafana/datasource.yml")).expect("datasource.yml is YAML");
    assert_eq!(datasource["datasources"][0]["url"], "http://prometheus:9090", "Grafana reads the compose Prometheus");
    let uid = datasource["datasources"][0]["uid"].as_str().expect("the datasource has a uid").to_string();
    let mut dashboards = 0;
    for entry in std::fs::read_dir(repo().join("deploy/grafana/dashboards")).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{:?}: {e}", entry.path()));
        dashboards += 1;
        for panel in dashboard["panels"].as_array().expect("panels") {
            if let Some(ds) = panel.get("datasource") {
                assert_eq!(ds["uid"], uid.as_str(), "{:?}: panel {} uses the provisioned datasource", entry.path(), panel["id"]);
            }
        }
    }
    assert!(dashboards >= 6, "the dashboards: {dashboards}");
    assert!(read("scripts/check-monitoring").contains("promtool test rules"), "scripts/check-monitoring tests the rules");
}
