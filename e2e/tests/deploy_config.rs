//! Checks of the deployment files that can be made without Docker: docker-compose.yml is complete
//! and consistent with what the services read, every variable the services read is documented, and
//! the standalone and distributed Connect configurations describe the same connector.

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
    for dir in ["common/src", "product/src", "orchestrator/src", "payment/src"] {
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
    for svc in ["PRODUCT", "ORCHESTRATOR", "PAYMENT"] {
        for suffix in ["HOST", "PORT", "DATABASE_URL", "DB_MAX_CONNECTIONS"] {
            vars.insert(format!("{svc}_{suffix}"));
        }
    }
    vars
}

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
    let vars = variables_read_by_services();
    assert!(vars.len() > 20, "the scan found the services' variables: {vars:?}");
    let undocumented: Vec<_> = vars
        .iter()
        .filter(|v| {
            let generic = ["HOST", "PORT", "DATABASE_URL", "DB_MAX_CONNECTIONS"].iter().any(|s| v.ends_with(s) && docs.contains(&format!("`<SVC>_{s}`")));
            !docs.contains(&format!("`{v}`")) && !generic
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
            assert_eq!(dep.1["condition"], "service_healthy", "{name} → {dep_name} must wait for health");
        }
    }
    for (svc, port) in [("product", 3333), ("orchestrator", 3334), ("payment", 3335)] {
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
        assert!(ports.contains(&format!("{port}:{port}")), "{svc} publishes {port}");
        assert!(s["healthcheck"]["test"].as_sequence().unwrap().iter().any(|t| t.as_str().is_some_and(|t| t.contains(&format!(":{port}/health/ready")))));
        for var in env.keys() {
            assert!(known.contains(var) || var == "RUST_LOG", "{svc} sets {var}, which no service reads");
        }
    }
    assert_eq!(services["product"]["environment"]["PRODUCT_SEARCH_BACKEND"], "elasticsearch");
    for profile_svc in ["prometheus", "grafana", "kafka-ui"] {
        assert!(services[profile_svc]["profiles"].as_sequence().is_some_and(|p| !p.is_empty()), "{profile_svc} is optional");
    }
    let prometheus = read("deploy/prometheus.yml");
    for target in ["product:3333", "orchestrator:3334", "payment:3335"] {
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
    // Where they may differ: how to reach the database, and where the schema history lives
    // (a file for standalone, a Kafka topic for a distributed cluster).
    let environment = |k: &str| k == "database.hostname" || k == "database.port" || k.starts_with("schema.history.internal");
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
}
