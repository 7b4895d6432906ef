//! The reverse proxy: `/api/<path>` → the service [`crate::routes`] names, bodies streamed both
//! ways, a deadline per request, the caller's token checked at the edge first, and a request id
//! (`x-request-id`, taken from the caller when well-formed, made up otherwise) passed on and
//! returned.

use std::time::Instant;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::TryStreamExt;
use sagaway_common::{auth::bearer_token, http::Problem};
use sagaway_messaging::trace;
use tracing::Instrument;

use crate::{
    Gateway,
    routes::{self, Access, Upstream},
};

pub const REQUEST_ID: &str = sagaway_messaging::request_id::HEADER;

/// Headers that belong to one hop, never forwarded (RFC 9110 §7.6.1), and `host`.
const HOP_BY_HOP: &[&str] = &["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host"];

/// The caller's request id if it is a sane one (1–128 visible ASCII characters), else a fresh UUID.
pub fn request_id(headers: &HeaderMap) -> String {
    sagaway_messaging::request_id::or_new(headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()))
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// `X-Forwarded-For` as the gateway sends it upstream: the address the request came from, and
/// nothing a client wrote. The gateway is the edge: a client that writes the header itself must not
/// pass for another address at a service that trusts the gateway (identity's login throttling per
/// client address, `IDENTITY_TRUSTED_PROXIES`).
pub fn forwarded_for(peer: std::net::IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).expect("an address is a header value")
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Forwards one `/api/…` request (the router's fallback under `/api`).
pub async fn forward(State(gw): State<Gateway>, req: Request) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers());
    // The path was normalised before routing ([`crate::app`]); normalising it again here is
    // idempotent, and keeps this function right when it is mounted without that layer.
    let segments = match crate::path::normalise(req.uri().path()) {
        Ok(n) => n.segments,
        Err(e) => return with_id(Problem::new(StatusCode::BAD_REQUEST, "invalid_path", e.to_string()).into_response(), &id),
    };
    let path = match segments.split_first() {
        Some((api, rest)) if api == "api" => format!("/{}", rest.join("/")),
        _ => return with_id(Problem::not_found("not_found", format!("no route for {} {}", req.method(), req.uri().path())).into_response(), &id),
    };
    let Some(route) = routes::route(req.method(), &path) else {
        return with_id(Problem::not_found("not_found", format!("no route for {} /api{path}", req.method())).into_response(), &id);
    };
    if let Err(refused) = check(&gw, route.access, req.headers()).await {
        return with_id(refused, &id);
    }
    let base = match &route.upstream {
        Upstream::Identity => gw.config.upstreams.identity.clone(),
        Upstream::Product => gw.config.upstreams.product.clone(),
        Upstream::Orchestrator => gw.config.upstreams.orchestrator.clone(),
        Upstream::Payment => gw.config.upstreams.payment.clone(),
        Upstream::Bank(code) => match gw.config.upstreams.banks.get(code) {
            Some(url) => url.clone(),
            None => return with_id(Problem::not_found("unknown_bank", format!("no bank {code} behind this gateway")).into_response(), &id),
        },
    };
    let Some(url) = upstream_url(&base, &route.path, req.uri().query()) else {
        tracing::warn!(request_id = %id, path = %route.path, "an upstream URL would not keep the routed path");
        return with_id(Problem::new(StatusCode::BAD_REQUEST, "invalid_path", "the path cannot be forwarded as it is").into_response(), &id);
    };
    let service = upstream_name(&route.upstream);
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    headers.remove(X_FORWARDED_FOR);
    if let Some(peer) = peer {
        headers.insert(HeaderName::from_static(X_FORWARDED_FOR), forwarded_for(peer));
    }
    headers.insert(HeaderName::from_static(REQUEST_ID), HeaderValue::from_str(&id).expect("a checked request id"));
    // The gateway's span continues the client's trace; the service's spans are its children.
    let span = trace::server_span(&format!("proxy {service}"), parts.headers.get(trace::TRACEPARENT).and_then(|v| v.to_str().ok()));
    headers.remove(trace::TRACEPARENT);
    if let Some(tp) = trace::traceparent_of(&span).and_then(|tp| HeaderValue::from_str(&tp).ok()) {
        headers.insert(trace::TRACEPARENT, tp);
    }
    let outbound = gw
        .http
        .request(parts.method.clone(), url)
        .headers(headers)
        .timeout(gw.config.request_timeout)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    let upstream = match outbound.send().instrument(span).await {
        Ok(r) => r,
        Err(e) => {
            let (status, code) = if e.is_timeout() { (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout") } else { (StatusCode::BAD_GATEWAY, "upstream_unavailable") };
            tracing::warn!(request_id = %id, service, error = %e, "upstream failed");
            metrics::counter!("gateway_upstream_errors_total", "service" => service).increment(1);
            return with_id(Problem::new(status, code, format!("the {service} service did not answer; try again")).into_response(), &id);
        }
    };
    let status = upstream.status();
    let mut response = Response::builder().status(status.as_u16());
    if let Some(h) = response.headers_mut() {
        copy_headers(upstream.headers(), h);
    }
    let body = Body::from_stream(upstream.bytes_stream().map_err(std::io::Error::other));
    let response = response.body(body).unwrap_or_else(|_| Problem::internal(&"building the response").into_response());
    metrics::histogram!("gateway_proxy_seconds", "service" => service).record(started.elapsed().as_secs_f64());
    tracing::debug!(request_id = %id, service, method = %parts.method, path, status = status.as_u16(), "proxied");
    with_id(response, &id)
}

/// The service's URL for a routed (normalised) `path`: the base's scheme and authority with this
/// path, checked to be the one the URL parser keeps — `None` if it would resolve anything (a
/// dot-segment, a separator) differently from what the route table classified.
pub fn upstream_url(base: &str, path: &str, query: Option<&str>) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(base).ok()?;
    if url.cannot_be_a_base() {
        return None;
    }
    let full = format!("{}{path}", url.path().trim_end_matches('/'));
    url.set_path(&full);
    url.set_query(query);
    (url.path() == full).then_some(url)
}

/// The edge's first line: a valid token for signed-in routes, and the admin role for admin ones.
async fn check(gw: &Gateway, access: Access, headers: &HeaderMap) -> Result<(), Response> {
    if access == Access::Public {
        return Ok(());
    }
    let token = bearer_token(headers.get(header::AUTHORIZATION)).map_err(IntoResponse::into_response)?;
    let caller = gw.verifier.verify(token).await.map_err(IntoResponse::into_response)?;
    if access == Access::Admin && !caller.is_admin() {
        return Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", "this route needs the admin role").into_response());
    }
    Ok(())
}

fn with_id(mut response: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert(HeaderName::from_static(REQUEST_ID), v);
    }
    response
}

pub fn upstream_name(u: &Upstream) -> &'static str {
    match u {
        Upstream::Identity => "identity",
        Upstream::Product => "product",
        Upstream::Orchestrator => "orchestrator",
        Upstream::Payment => "payment",
        Upstream::Bank(_) => "bank",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_made_up_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(request_id(&h), "has space");
        assert_eq!(request_id(&HeaderMap::new()).len(), 36);
    }
}

#[cfg(test)]
mod forwarded_for_tests {
    use super::*;

    #[test]
    fn the_forwarded_address_is_the_peers() {
        assert_eq!(forwarded_for("203.0.113.7".parse().unwrap()), "203.0.113.7");
        assert_eq!(forwarded_for("2001:db8::1".parse().unwrap()), "2001:db8::1");
    }
}
