//! HTTP pieces every service mounts the same way.

use std::{
    sync::OnceLock,
    time::Instant,
};

use axum::{
    Json, Router,
    extract::{FromRequest, FromRequestParts, MatchedPath, Request, State, rejection::JsonRejection, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;
use sagaway_messaging::{health::Dependency, request_id, trace};

/// An RFC 9457 problem document. `code` is the stable machine-readable identifier clients switch on;
/// `type` is the same code as a relative URI. Internals never go into `detail` for 5xx answers.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    /// The offending input field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Any extra members (for instance `original_order_id` on a duplicate payment).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            code: code.to_string(),
            detail: detail.into(),
            field: None,
            extra: serde_json::Map::new(),
        }
    }

    /// 422 naming the field that is wrong.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail);
        p.field = Some(field.to_string());
        p
    }

    pub fn not_found(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// A 500 whose cause is logged here and never shown to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an internal error occurred; it has been logged")
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut res = (status, Json(self)).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        res
    }
}

/// `axum::Json`, but every rejection (malformed JSON, wrong types, missing fields, wrong content
/// type) is a problem document naming what is wrong instead of axum's plain-text body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(name_field(json_rejection_problem(rejection), "body")),
        }
    }
}

fn json_rejection_problem(rejection: JsonRejection) -> Problem {
    // serde quotes the offending value; a mistyped card number must not come back (or be logged) in clear.
    let text = sagaway_contract::redact::redact_digit_runs(&rejection.body_text());
    match rejection {
        JsonRejection::JsonDataError(_) => {
            // axum reports "Failed to deserialize ...: <path>: <serde message>"; keep the useful tail.
            let detail = text
                .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                .unwrap_or(&text)
                .to_string();
            let field = detail.split(": ").next().filter(|p| !p.contains(' ')).map(str::to_string);
            let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail);
            p.field = field;
            p
        }
        JsonRejection::JsonSyntaxError(_) => Problem::new(StatusCode::BAD_REQUEST, "malformed_json", text),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body with `Content-Type: application/json`",
        ),
        _ => Problem::new(StatusCode::BAD_REQUEST, "bad_request", text),
    }
}

/// `axum::extract::Query` with problem-document rejections (422 naming the parameter).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let detail = e.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&detail)
                    .to_string();
                Err(name_field(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_query", detail), "query"))
            }
            Err(other) => Err(Problem::new(StatusCode::BAD_REQUEST, "bad_request", other.body_text())),
        }
    }
}

/// Makes every 422 name a field. serde's root-level errors (`missing field`, `unknown field`,
/// `duplicate field`) carry no path, so the name is read from the message; `fallback` names the
/// whole input (e.g. an array where an object belongs). A path like `[1]` names a position, not a field.
fn name_field(mut p: Problem, fallback: &str) -> Problem {
    if p.field.as_deref().is_some_and(|f| f.starts_with('[')) {
        p.field = None;
    }
    if p.field.is_none() && p.status == 422 {
        p.field = field_in_message(&p.detail).or_else(|| Some(fallback.to_string()));
    }
    p
}

fn field_in_message(detail: &str) -> Option<String> {
    ["missing field `", "unknown field `", "duplicate field `"].iter().find_map(|marker| {
        let rest = detail.split(marker).nth(1)?;
        Some(rest[..rest.find('`')?].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::{ProblemResponses, field_in_message, plausible_id};

    #[test]
    fn every_body_or_query_route_documents_its_problem_answers() {
        use utoipa::{Modify, openapi::OpenApi};
        let mut doc: OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
            "paths": {
                "/payment": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                                      "responses": {"202": {"description": "accepted"}, "422": {"description": "its own"}}}},
                "/orders": {"get": {"parameters": [{"name": "limit", "in": "query", "required": false, "schema": {"type": "integer"}}],
                                    "responses": {"200": {"description": "ok"}}}},
                "/health": {"get": {"responses": {"200": {"description": "ok"}}}}
            }
        }))
        .unwrap();
        ProblemResponses.modify(&mut doc);
        let doc = serde_json::to_value(&doc).unwrap();
        let statuses = |path: &str, method: &str| -> Vec<String> { doc["paths"][path][method]["responses"].as_object().unwrap().keys().cloned().collect() };
        assert_eq!(statuses("/payment", "post"), ["202", "400", "415", "422"]);
        assert_eq!(doc["paths"]["/payment"]["post"]["responses"]["422"]["description"], "its own", "a route's own answer is kept");
        assert_eq!(doc["paths"]["/payment"]["post"]["responses"]["415"]["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem");
        assert_eq!(statuses("/orders", "get"), ["200", "400", "422"]);
        assert_eq!(statuses("/health", "get"), ["200"]);
        assert!(doc["components"]["schemas"]["Problem"]["required"].as_array().unwrap().contains(&serde_json::json!("code")));
    }

    #[test]
    fn only_ascii_ids_within_the_length_are_plausible() {
        assert!(plausible_id("merchant-USD", 36) && plausible_id("0b1c2d3e-aaaa-4bbb-8ccc-0123456789ab", 36));
        for bad in ["", "\u{2ebe4}m", "a b", "a/b", "é", &"x".repeat(37)] {
            assert!(!plausible_id(bad, 36), "{bad:?}");
        }
    }

    #[test]
    fn names_fields_from_root_level_serde_errors() {
        assert_eq!(field_in_message("missing field `quantity` at line 1 column 40").as_deref(), Some("quantity"));
        assert_eq!(field_in_message("unknown field `colour`, expected one of `name`, `price`").as_deref(), Some("colour"));
        assert_eq!(field_in_message("expected value at line 1 column 1"), None);
    }
}

/// What `/health/ready` checks: the service's database and, for services that use one, the Kafka
/// broker (each a [`Dependency`] of the messaging layer, which knows how to ask it).
#[derive(Clone)]
pub struct Readiness {
    pub service: &'static str,
    pub dependencies: Vec<Dependency>,
}

/// `/health/live`, `/health/ready` and `/metrics`, plus request metrics for every route of `app`.
pub fn with_operations(app: Router, readiness: Readiness) -> Router {
    let handle = metrics_handle();
    let ops = Router::new()
        .route("/health/live", get(|| async { Json(json!({"status": "live"})) }))
        .route("/health/ready", get(ready))
        .with_state(readiness)
        .route("/metrics", get(move || std::future::ready(handle.render())));
    app.merge(ops).layer(axum::middleware::from_fn(track_http))
}

/// `/health/ready`: `{"service", "status": "ready"|"not_ready", "checks": {"database": "up"|"down",
/// "broker": "up"|"down"}}` (no `broker` for a service without Kafka), 503 when not ready. Why a dependency is down goes to the log only: the
/// probe is unauthenticated, and error text (hosts, ports, users, driver messages) is an internal.
async fn ready(State(r): State<Readiness>) -> Response {
    let results = futures::future::join_all(r.dependencies.iter().map(Dependency::check)).await;
    let mut checks = serde_json::Map::new();
    for (dependency, result) in r.dependencies.iter().zip(&results) {
        let state = match result {
            Ok(()) => "up",
            Err(e) => {
                tracing::warn!(service = r.service, dependency = dependency.name(), error = %e, "readiness check failed");
                "down"
            }
        };
        checks.insert(dependency.name().to_string(), json!(state));
    }
    let ok = results.iter().all(Result::is_ok);
    let body = json!({
        "service": r.service,
        "status": if ok { "ready" } else { "not_ready" },
        "checks": checks,
    });
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod readiness_tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use axum::{extract::State, http::StatusCode};
    use serde_json::{Value, json};

    use super::{Readiness, ready};

    /// Log lines written while a test runs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn not_ready_names_each_dependency_and_logs_the_error_instead_of_answering_it() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        // Nothing listens on port 1: both dependencies are down.
        let pool = sagaway_messaging::db::lazy("mysql://sagaway:s3cret@127.0.0.1:1/product", Duration::from_millis(500)).unwrap();
        let kafka = Arc::new(sagaway_messaging::kafka::producer("127.0.0.1:1").unwrap());
        let dependencies = vec![super::Dependency::Database(pool), super::Dependency::Broker(kafka)];
        let res = ready(State(Readiness { service: "product", dependencies })).await;

        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({"service": "product", "status": "not_ready", "checks": {"database": "down", "broker": "down"}}),
            "only a status per dependency, no error text"
        );
        let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        for dependency in ["dependency=\"database\"", "dependency=\"broker\""] {
            let line = logged.lines().find(|l| l.contains(dependency)).unwrap_or_else(|| panic!("no log line for {dependency}: {logged}"));
            assert!(line.contains("readiness check failed") && line.contains("error="), "{line}");
        }
    }
}

/// An OpenAPI modifier that documents what every route of these services may answer besides its
/// own statuses, as RFC 9457 problems (the `Problem` schema): a route with a JSON body 400
/// (malformed JSON), 415 (not `application/json`) and 422 (a field invalid); a route with query
/// parameters 400 and 422. Use as `#[openapi(modifiers(&ProblemResponses, …))]`.
pub struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            ContentBuilder, ObjectBuilder, Ref, ResponseBuilder, Type,
            path::ParameterIn,
            schema::{Schema, SchemaType},
        };
        let string = || ObjectBuilder::new().schema_type(SchemaType::Type(Type::String));
        let problem = ObjectBuilder::new()
            .description(Some("An RFC 9457 problem document; `code` is the stable identifier to switch on, `field` names the offending input."))
            .property("type", string())
            .property("title", string())
            .property("status", ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)))
            .property("code", string())
            .property("detail", string())
            .property("field", string())
            .required("type")
            .required("title")
            .required("status")
            .required("code")
            .required("detail")
            .build();
        openapi.components.get_or_insert_with(Default::default).schemas.insert("Problem".into(), Schema::Object(problem).into());
        let answer = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content("application/problem+json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten() {
                let has_body = op.request_body.is_some();
                let has_query = op.parameters.iter().flatten().any(|p| p.parameter_in == ParameterIn::Query);
                let mut add = |status: &str, what: &str| {
                    op.responses.responses.entry(status.into()).or_insert_with(|| answer(what).into());
                };
                if has_body {
                    add("400", "the body is not well-formed JSON (problem+json)");
                    add("415", "the body is not sent as `application/json` (problem+json)");
                    add("422", "a field is missing or invalid; `field` names it (problem+json)");
                } else if has_query {
                    add("400", "the query string is malformed (problem+json)");
                    add("422", "a query parameter is invalid; `field` names it (problem+json)");
                }
            }
        }
    }
}

/// A utoipa document as JSON, for [`api_reference`] (where a service may then set schemas that
/// utoipa's types cannot hold: `oneOf` with `const`, `allOf` beside `properties`).
/// Every `Idempotency-Key` header it documents gets the rule [`crate::idempotency::key_from`]
/// enforces (1–255 visible ASCII characters).
pub fn document_json(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(doc).expect("an OpenAPI document serialises");
    let key = serde_json::json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]{1,255}$"});
    if let Some(paths) = doc["paths"].as_object_mut() {
        for operation in paths.values_mut().filter_map(|p| p.as_object_mut()).flat_map(|p| p.values_mut()) {
            for param in operation.get_mut("parameters").and_then(|p| p.as_array_mut()).into_iter().flatten() {
                if param["in"] == "header" && param["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("idempotency-key")) {
                    param["schema"] = key.clone();
                }
            }
        }
    }
    doc
}

/// A service's contract, public: `/openapi.json` (built per request by `doc`, so a part that
/// depends on the date stays true) and the browsable reference at `/docs/` (Swagger UI, its files
/// compiled into the binary: no CDN). The UI fetches `../openapi.json`, relative, so it also works
/// under the gateway's `/api/<service>/` prefix.
pub fn api_reference<S: Clone + Send + Sync + 'static>(doc: impl Fn() -> serde_json::Value + Clone + Send + Sync + 'static) -> Router<S> {
    let ui = utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("../openapi.json"));
    Router::new().route("/openapi.json", get(move || std::future::ready(Json(doc())))).merge(ui)
}

/// Whether `id` (a path segment) could be an id the platform issued: 1–`max` ASCII letters,
/// digits, `-` or `_`. Anything else names nothing: answer 404 without asking the database (a
/// non-ASCII id compared with a latin1 column is a collation error there, not a miss).
pub fn plausible_id(id: &str, max: usize) -> bool {
    (1..=max).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Every metric name starts with this (`sagaway_http_requests_total`): one namespace to select
/// on in Prometheus, whatever else the host exports. Code names metrics without it.
pub const METRIC_PREFIX: &str = "sagaway";

/// The process-wide Prometheus recorder (installed once, shared by every app in a test process),
/// behind a layer that puts [`METRIC_PREFIX`] before every name.
pub fn metrics_handle() -> PrometheusHandle {
    use metrics_exporter_prometheus::Matcher;
    use metrics_util::layers::{Layer, PrefixLayer};
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                .expect("static buckets are valid")
                // Matched after the prefix layer, so on the name's end.
                .set_buckets_for_metric(Matcher::Suffix("consumer_batch_size".into()), &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(PrefixLayer::new(METRIC_PREFIX).layer(recorder))
                .expect("the metrics recorder is installed once per process");
            handle
        })
        .clone()
}

async fn track_http(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    // The request id: the caller's (the gateway's) or a new one; in every log line of the request,
    // on every message it writes to the outbox, and on the answer.
    let id = request_id::or_new(req.headers().get(request_id::HEADER).and_then(|v| v.to_str().ok()));
    // The span continues the caller's trace (W3C `traceparent`), or starts one.
    let span = tracing::info_span!("request", request_id = %id, trace_id = tracing::field::Empty, otel.name = %format!("{method} {route}"), otel.kind = "server");
    trace::continue_from(&span, req.headers().get(trace::TRACEPARENT).and_then(|v| v.to_str().ok()));
    trace::record_trace_id(&span);
    let mut res = request_id::scope(id.clone(), next.run(req)).instrument(span).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        res.headers_mut().insert(request_id::HEADER, v);
    }
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// Serves `router` (with health and metrics added) until `shutdown` is cancelled, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    readiness: Readiness,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let app = with_operations(router, readiness);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server")
}

/// Resolves on SIGTERM or Ctrl-C: what `axum::serve(...).with_graceful_shutdown` waits for.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; draining");
}
