//! Which service answers which `/api/…` path, and what the edge asks of the caller first. Pure: the
//! proxy ([`crate::proxy`]) looks a request up here, checks the access, then forwards it.

use http::Method;

/// A service behind the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Identity,
    Product,
    Orchestrator,
    Payment,
    /// A bank, by its code.
    Bank(String),
}

/// What the edge checks before forwarding (the service checks again: this is the first line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    SignedIn,
    Admin,
}

/// Where a request goes: the service, the path on it, and the access the edge requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub upstream: Upstream,
    pub path: String,
    pub access: Access,
}

fn to(upstream: Upstream, path: &str, access: Access) -> Option<Route> {
    Some(Route { upstream, path: path.to_string(), access })
}

/// The route of `method path`, `path` being what follows `/api` (`/orders/42`). `None`: 404.
pub fn route(method: &Method, path: &str) -> Option<Route> {
    use Access::*;
    use Upstream::*;
    if path.split('/').any(|s| s == ".." || s == ".") || path.contains("//") {
        return None;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let read = method == Method::GET || method == Method::HEAD;
    match segments.as_slice() {
        ["auth", ..] => to(Identity, path, Public),
        ["findAll"] => to(Product, path, Public),
        ["products"] | ["products", _] if read => to(Product, path, Public),
        ["products"] | ["products", _] => to(Product, path, Admin),
        ["reserve"] | ["reservations", _] => to(Product, path, SignedIn),
        ["admin", "reindex"] => to(Product, path, Admin),
        ["payment"] | ["orders"] | ["orders", _] => to(Orchestrator, path, SignedIn),
        ["admin", "dlq", ..] => to(Orchestrator, path, Admin),
        ["admin", "outage"] | ["ledger", "summary"] => to(Payment, path, Admin),
        // Each service's Prometheus text, for the operator console (the services serve it unauthenticated
        // on their own ports, which are not exposed outside; through the edge it is an admin's).
        ["admin", "metrics", "product"] => to(Product, "/metrics", Admin),
        ["admin", "metrics", "orchestrator"] => to(Orchestrator, "/metrics", Admin),
        ["admin", "metrics", "payment"] => to(Payment, "/metrics", Admin),
        ["banks", code, rest @ ..] if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty() => {
            let inner = format!("/{}", rest.join("/"));
            match rest {
                // Bank to bank only: never through the edge.
                ["interbank", ..] => None,
                ["admin", ..] => to(Bank(code.to_string()), &inner, Admin),
                _ => to(Bank(code.to_string()), &inner, SignedIn),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Access::*, Upstream::*, *};

    fn r(method: Method, path: &str) -> Option<(Upstream, String, Access)> {
        route(&method, path).map(|r| (r.upstream, r.path, r.access))
    }

    #[test]
    fn every_api_prefix_goes_to_its_service_with_its_access() {
        assert_eq!(r(Method::POST, "/auth/login"), Some((Identity, "/auth/login".into(), Public)));
        assert_eq!(r(Method::GET, "/findAll"), Some((Product, "/findAll".into(), Public)));
        assert_eq!(r(Method::GET, "/products/7"), Some((Product, "/products/7".into(), Public)));
        assert_eq!(r(Method::PATCH, "/products/7"), Some((Product, "/products/7".into(), Admin)));
        assert_eq!(r(Method::POST, "/products"), Some((Product, "/products".into(), Admin)));
        assert_eq!(r(Method::POST, "/reserve"), Some((Product, "/reserve".into(), SignedIn)));
        assert_eq!(r(Method::POST, "/payment"), Some((Orchestrator, "/payment".into(), SignedIn)));
        assert_eq!(r(Method::GET, "/orders"), Some((Orchestrator, "/orders".into(), SignedIn)));
        assert_eq!(r(Method::GET, "/admin/dlq/12"), Some((Orchestrator, "/admin/dlq/12".into(), Admin)));
        assert_eq!(r(Method::POST, "/admin/outage"), Some((Payment, "/admin/outage".into(), Admin)));
        assert_eq!(r(Method::GET, "/admin/metrics/orchestrator"), Some((Orchestrator, "/metrics".into(), Admin)));
        assert_eq!(r(Method::POST, "/banks/002/transfers"), Some((Bank("002".into()), "/transfers".into(), SignedIn)));
        assert_eq!(r(Method::GET, "/banks/001/admin/clearing"), Some((Bank("001".into()), "/admin/clearing".into(), Admin)));
    }

    #[test]
    fn unknown_paths_bank_to_bank_routes_and_traversal_are_not_routed() {
        for (m, p) in [
            (Method::GET, "/"),
            (Method::GET, "/nothing"),
            (Method::POST, "/banks/001/interbank/tx/x/commit"),
            (Method::GET, "/banks/1/accounts"),
            (Method::GET, "/banks/001"),
            (Method::GET, "/orders/../admin/dlq"),
            (Method::GET, "/orders//x"),
            (Method::GET, "/orders/1/2"),
            (Method::GET, "/admin/metrics/identity"),
        ] {
            assert_eq!(r(m.clone(), p), None, "{m} {p}");
        }
    }
}
