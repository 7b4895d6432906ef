//! The routes the documentation names exist. Every `` `METHOD /path` `` in `docs/*.md`, the README
//! and the crates' READMEs must be answered by some service: a path of a service's OpenAPI
//! document (which `auth::every_route_in_the_source_is_in_the_openapi_documents` keeps complete),
//! of the gateway's own document, or, under `/api/`, a path the gateway forwards to one of them.
//! A doc that promises a route nobody serves (a `GET /products` list, say) fails here.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Routes of programs that are not ours, which the docs name on purpose (Kafka Connect's REST API).
const EXTERNAL: &[&str] = &["/connectors"];

/// Every `METHOD /path` a doc names, with where it was found.
fn named_routes(root: &Path) -> Vec<(String, String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.push(root.join("README.md"));
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let readme = entry.path().join("README.md");
        if readme.is_file() {
            files.push(readme);
        }
    }
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root).unwrap().display().to_string();
        // Code spans only: a route is named as `GET /path`, never in running prose.
        for span in text.split('`').skip(1).step_by(2) {
            let mut words = span.split_whitespace();
            let (Some(method), Some(path)) = (words.next(), words.next()) else { continue };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) {
                continue;
            }
            // `:3336/auth/login` (a port) and `localhost:8080/api/…` (a host) name a path too.
            let path = match path.find('/') {
                Some(i) if i > 0 && path[..i].contains(':') => &path[i..],
                _ => path,
            };
            if !path.starts_with('/') {
                continue;
            }
            let path = path.split(['?', '#']).next().unwrap();
            out.push((name.clone(), method.to_string(), path.to_string()));
        }
    }
    out
}

/// `/admin/metrics/{product,orchestrator}` stands for two paths.
fn expand(path: &str) -> Vec<String> {
    if let (Some(open), Some(close)) = (path.find('{'), path.find('}'))
        && open < close
        && path[open..close].contains(',')
    {
        return path[open + 1..close]
            .split(',')
            .flat_map(|alt| expand(&format!("{}{}{}", &path[..open], alt.trim(), &path[close + 1..])))
            .collect();
    }
    vec![path.to_string()]
}

/// Path segments, a parameter (`{id}`, `<id>`, `…`) as `None`.
fn segments(path: &str) -> Vec<Option<String>> {
    path.trim_end_matches('/')
        .split('/')
        .skip(1)
        .map(|s| {
            let param = (s.starts_with('{') && s.ends_with('}')) || (s.starts_with('<') && s.ends_with('>')) || s == "…";
            (!param).then(|| s.to_string())
        })
        .collect()
}

/// A documented path matches a served template when every segment agrees (a parameter on either
/// side matches any segment).
fn matches(doc: &[Option<String>], served: &[Option<String>]) -> bool {
    doc.len() == served.len() && doc.iter().zip(served).all(|(d, s)| d.is_none() || s.is_none() || d == s)
}

fn served_paths(doc: &Value, method: &str) -> Vec<Vec<Option<String>>> {
    doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, ops)| ops.get(method.to_lowercase()).is_some())
        .map(|(path, _)| segments(path))
        .collect()
}

#[test]
fn every_route_the_docs_name_is_served() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let banks = vec!["001".to_string()];
    let services: Vec<(&str, Value)> = vec![
        ("product", serde_json::to_value(<product::ApiDoc as utoipa::OpenApi>::openapi()).unwrap()),
        ("orchestrator", orchestrator::document(&banks)),
        ("payment", serde_json::to_value(<payment::ApiDoc as utoipa::OpenApi>::openapi()).unwrap()),
        ("bank", serde_json::to_value(<bank::ApiDoc as utoipa::OpenApi>::openapi()).unwrap()),
        ("identity", serde_json::to_value(<identity::ApiDoc as utoipa::OpenApi>::openapi()).unwrap()),
    ];
    let gateway = gateway::api_doc::document(&banks);
    // What every service serves beside its document's paths (sagaway_common::http).
    let common: Vec<Vec<Option<String>>> =
        ["/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs"].iter().map(|p| segments(p)).collect();
    let served_by_a_service = |method: &str, path: &str| {
        let doc = segments(path);
        common.iter().any(|s| matches(&doc, s)) || services.iter().any(|(_, d)| served_paths(d, method).iter().any(|s| matches(&doc, s)))
    };
    let served_by_the_gateway = |method: &str, path: &str| {
        let doc = segments(path);
        if served_paths(&gateway, method).iter().any(|s| matches(&doc, s)) || path == "/" {
            return true;
        }
        // Forwarded: what the route table sends upstream must be served there.
        let Some(rest) = path.strip_prefix("/api") else { return false };
        let rest = rest.replace("{code}", "001").replace("<code>", "001");
        let method: http::Method = method.parse().unwrap();
        gateway::routes::route(&method, &rest).is_some_and(|r| served_by_a_service(method.as_str(), &r.path))
    };
    let mut missing = Vec::new();
    let named = named_routes(&root);
    for (file, method, path) in &named {
        for path in expand(path) {
            if EXTERNAL.iter().any(|e| path.starts_with(e)) {
                continue;
            }
            // docs/gateway.md names the edge's routes without their `/api` prefix.
            let ok = served_by_a_service(method, &path)
                || served_by_the_gateway(method, &path)
                || served_by_the_gateway(method, &format!("/api{path}"));
            if !ok {
                missing.push(format!("{file}: `{method} {path}`"));
            }
        }
    }
    assert!(named.len() > 50, "the docs were read: {} routes named", named.len());
    assert!(missing.is_empty(), "the docs name routes no service serves:\n{}", missing.join("\n"));
}

#[test]
fn the_route_reader_sees_what_it_should() {
    assert_eq!(expand("/admin/metrics/{product,payment}"), vec!["/admin/metrics/product", "/admin/metrics/payment"]);
    assert!(matches(&segments("/orders/{id}"), &segments("/orders/{order_id}")));
    assert!(matches(&segments("/orders/<id>/events"), &segments("/orders/{id}/events")));
    assert!(!matches(&segments("/products"), &segments("/products/{id}")));
    assert!(!matches(&segments("/orders/{id}"), &segments("/orders/{id}/events")));
}
