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
                // Its Prometheus text is the operators' (on its own port), not a customer's.
                ["metrics", ..] => None,
                ["admin", ..] => to(Bank(code.to_string()), &inner, Admin),
                _ => to(Bank(code.to_string()), &inner, SignedIn),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
            (Method::GET, "/banks/001/metrics"),
        ] {
            assert_eq!(r(m.clone(), p), None, "{m} {p}");
        }
    }

    /// What a request path comes to at the edge: normalised, routed, and the upstream URL built.
    /// `Err` is a 400, `Ok(None)` a 404.
    fn edge(method: &Method, raw: &str) -> Result<Option<(Route, String)>, crate::path::PathError> {
        let n = crate::path::normalise(raw)?;
        let Some((api, rest)) = n.segments.split_first() else { return Ok(None) };
        if api != "api" {
            return Ok(None);
        }
        let Some(route) = route(method, &format!("/{}", rest.join("/"))) else { return Ok(None) };
        let url = crate::proxy::upstream_url("http://upstream:1", &route.path, None).expect("a routed path is forwarded as it is");
        Ok(Some((route, url.path().to_string())))
    }

    /// What a lenient upstream makes of a path: every escape decoded (`%2F` too), `\` read as `/`,
    /// dot-segments resolved — the most any URL parser or server behind the gateway resolves.
    fn resolved_by_upstream(path: &str) -> Vec<Vec<u8>> {
        let decoded = decode(path);
        let mut out: Vec<Vec<u8>> = Vec::new();
        for seg in decoded.split(|b| *b == b'/' || *b == b'\\').skip(1) {
            match seg {
                b"." => {}
                b".." => {
                    out.pop();
                }
                s => out.push(s.to_vec()),
            }
        }
        out
    }

    /// Every escape decoded (a broken one left as it is).
    fn decode(text: &str) -> Vec<u8> {
        let bytes = text.as_bytes();
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
            if bytes[i] == b'%'
                && let (Some(h), Some(l)) = (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
            {
                decoded.push(h << 4 | l);
                i += 3;
                continue;
            }
            decoded.push(bytes[i]);
            i += 1;
        }
        decoded
    }

    /// The route of segments as an upstream resolved them (escaped again, each byte, canonically).
    fn route_of_resolved(method: &Method, segments: &[Vec<u8>]) -> Option<(Upstream, Access, Vec<Vec<u8>>)> {
        let canon: Vec<String> = segments.iter().map(|s| crate::path::normalise(&format!("/{}", encode_all_but_unreserved(s))).unwrap().path()[1..].to_string()).collect();
        let (api, rest) = canon.split_first()?;
        if api != "api" {
            return None;
        }
        route(method, &format!("/{}", rest.join("/"))).map(|r| (r.upstream, r.access, resolved_by_upstream(&r.path)))
    }

    fn encode_all_but_unreserved(bytes: &[u8]) -> String {
        bytes.iter().map(|&b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
    }

    const WORDS: &[&str] = &[
        "api", "auth", "login", "findAll", "products", "7", "reserve", "reservations", "admin", "reindex", "payment", "orders", "dlq", "outage",
        "ledger", "summary", "metrics", "product", "orchestrator", "banks", "001", "002", "interbank", "tx", "commit", "accounts", "transfers",
        "events", "ws", "health", "x", "a~b", "é",
    ];

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![Just(Method::GET), Just(Method::POST), Just(Method::PATCH), Just(Method::DELETE)]
    }

    /// A word with each character written as itself or as an escape (lower- or upper-case hex);
    /// a character that is not unreserved keeps its (one) escape, as it is not the same as itself.
    fn spelled(word: &'static str) -> impl Strategy<Value = String> {
        let bytes = word.as_bytes().to_vec();
        proptest::collection::vec(0u8..3, bytes.len()).prop_map(move |how| {
            bytes
                .iter()
                .zip(how)
                .map(|(&b, h)| {
                    let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
                    match (unreserved, h) {
                        (true, 0) => (b as char).to_string(),
                        (true, 1) | (false, _) => format!("%{b:02x}"),
                        _ => format!("%{b:02X}"),
                    }
                })
                .collect()
        })
    }

    /// One segment of a path written to mislead: an encoded word, maybe after a detour that a
    /// dot-segment takes back (`x/%2e%2e/`) or a `.` (`%2E/`).
    fn misleading(word: &'static str) -> impl Strategy<Value = String> {
        let dot = prop_oneof![Just("."), Just("%2e"), Just("%2E")];
        let dots = prop_oneof![Just(".."), Just("%2e%2e"), Just(".%2E"), Just("%2E."), Just("%2e%2E")];
        let detour = prop_oneof![
            3 => Just(String::new()),
            1 => (proptest::sample::select(WORDS), dots).prop_map(|(w, d)| format!("{w}/{d}/")),
            1 => dot.prop_map(|d| format!("{d}/")),
        ];
        (detour, spelled(word)).prop_map(|(d, w)| format!("{d}{w}"))
    }

    fn plain_path() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::collection::vec(proptest::sample::select(WORDS), 0..5).prop_map(|mut v| {
            v.insert(0, "api");
            v
        })
    }

    /// Paths of anything: words, separators raw and escaped, dot-segments raw and escaped, stray `%`.
    fn anything() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => proptest::sample::select(WORDS).prop_map(str::to_string),
            3 => Just("/".to_string()),
            1 => proptest::sample::select(&[".", "..", "%2e", "%2E%2e", ".%2e", "%2f", "%2F", "%5c", "%5C", "\\", "%", "%4", "%zz", "%25", "%252e", "%00", "%41", ";", "%3B", "%3F", "%23"][..]).prop_map(str::to_string),
        ];
        let start = prop_oneof![4 => Just("/api/"), 1 => Just("/")];
        (start, proptest::collection::vec(piece, 0..14)).prop_map(|(start, v)| format!("{start}{}", v.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// However a path is spelled — each character escaped or not, detours taken back by
        /// dot-segments — it is classified as its plain form is.
        #[test]
        fn a_path_is_routed_as_its_plain_spelling_however_it_is_encoded(
            m in method(),
            (plain, raw) in plain_path().prop_flat_map(|words| {
                let spelled: Vec<_> = words.iter().map(|w| misleading(w)).collect();
                (Just(words), spelled)
            }),
        ) {
            let plain = format!("/{}", plain.join("/"));
            let raw = format!("/{}", raw.join("/"));
            let expected = edge(&m, &plain).expect("a plain path is valid");
            prop_assert_eq!(edge(&m, &raw).expect("an escaped path is valid"), expected, "{} vs {}", raw, plain);
        }

        /// Whatever reaches an upstream resolves, there, to the route the table chose: the same
        /// service and access, the same path — and what the table refuses is reached by no path.
        #[test]
        fn the_upstream_resolves_exactly_the_path_the_table_classified(m in method(), raw in anything()) {
            match edge(&m, &raw) {
                Err(_) => {
                    let lower = raw.to_ascii_lowercase();
                    let separator = lower.contains("%2f") || lower.contains("%5c") || raw.contains('\\');
                    let broken = crate::path::normalise(&raw.replace("%2f", "").replace("%2F", "").replace("%5c", "").replace("%5C", "").replace('\\', "")).is_err();
                    prop_assert!(separator || broken, "{} refused for no reason", raw);
                }
                Ok(None) => {}
                Ok(Some((route, forwarded))) => {
                    // The segments the table looked at, read literally (each escape decoded, nothing
                    // resolved), are the segments the upstream resolves the forwarded URL to.
                    let upstream = resolved_by_upstream(&forwarded);
                    let classified: Vec<Vec<u8>> = route.path.split('/').skip(1).map(decode).collect();
                    prop_assert_eq!(&upstream, &classified, "{}: the upstream resolves another path than the table classified", raw);
                    let again = route_of_resolved(&m, &[b"api".to_vec()].into_iter().chain(upstream).collect::<Vec<_>>());
                    prop_assert!(again.is_some(), "{}: the upstream's path is one the table refuses", raw);
                    let (upstream_service, access, _) = again.unwrap();
                    prop_assert_eq!((upstream_service, access), (route.upstream.clone(), route.access), "{}", raw);
                }
            }
        }

        /// Normalising is done once: a normal path is its own normal form, and it keeps no escape
        /// that decodes to a separator or dot-segment.
        #[test]
        fn a_normal_path_is_its_own_normal_form(raw in anything()) {
            if let Ok(n) = crate::path::normalise(&raw) {
                let path = n.path();
                prop_assert_eq!(crate::path::normalise(&path).map(|n| n.path()), Ok(path.clone()));
                prop_assert_eq!(resolved_by_upstream(&path).len(), n.segments.len().max(1), "{} hides a separator or a dot-segment", path);
            }
        }
    }
}
