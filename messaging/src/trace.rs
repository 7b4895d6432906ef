//! W3C trace context (`traceparent`) across HTTP and Kafka, so one order is one trace from the
//! gateway through every service and message it causes; spans are exported over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! - HTTP in: [`crate::http`]'s middleware makes each request's `request` span a child of the
//!   caller's `traceparent` (a new trace when there is none or it is malformed).
//! - HTTP out: [`outgoing`] puts the current span's `traceparent` on a request to another service.
//! - Kafka out: [`crate::outbox::enqueue_all`] stamps the current span's `traceparent` on the
//!   messages it writes (unless they carry one).
//! - Kafka in: [`crate::inbox`] handles each message inside a `message` span whose parent is the
//!   message's `traceparent`, and stamps that span's on the messages the handler returns.
//!
//! Without an endpoint the context is still carried (ids are made, nothing is recorded or sent):
//! the traceparent a client sends comes back on every message its request caused.

use std::{collections::HashMap, sync::OnceLock};

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracer, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The HTTP header and the Kafka message header (same name: W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (an OTLP endpoint is configured).
pub fn exporting() -> bool {
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"].iter().any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// The tracer the `tracing` layer records into: exporting over OTLP/HTTP (batched, on its own
/// thread) when an endpoint is configured; otherwise one that only makes ids (root spans are not
/// sampled, so nothing is recorded).
pub fn tracer(service: &'static str) -> SdkTracer {
    let provider = PROVIDER.get_or_init(|| {
        let builder = SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name(service).build());
        let exporter = exporting()
            .then(|| opentelemetry_otlp::SpanExporter::builder().with_http().build())
            .and_then(|built| built.map_err(|e| eprintln!("OTLP span exporter not started: {e}")).ok());
        match exporter {
            Some(exporter) => builder.with_batch_exporter(exporter).build(),
            None => builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff))).build(),
        }
    });
    provider.tracer("sagaway")
}

/// Sends what is still buffered (call once at exit; a no-op when nothing is exported).
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
    }
}

/// Makes `span` a child of the remote `traceparent` (ignored when absent or malformed). Call
/// before the span is first entered.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else { return };
    let carrier = HashMap::from([(TRACEPARENT.to_string(), value.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// A server span named `name` continuing the caller's `traceparent` (for an edge that does not go
/// through [`crate::http`]'s middleware, such as the gateway's proxy).
pub fn server_span(name: &str, traceparent: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!("request", trace_id = tracing::field::Empty, otel.name = %name, otel.kind = "server");
    continue_from(&span, traceparent);
    record_trace_id(&span);
    span
}

/// Writes the trace id of `span` into its `trace_id` field (declared `tracing::field::Empty`), so
/// every log line inside it names the trace.
pub fn record_trace_id(span: &tracing::Span) {
    if let Some(tp) = traceparent_of(span) {
        span.record("trace_id", &tp[3..35]);
    }
}

/// The `traceparent` of `span`, when it belongs to a trace.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The current span's `traceparent`.
pub fn current() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// `headers` with `(TRACEPARENT, traceparent)` added unless they carry one already.
pub fn stamp(headers: &mut Vec<(String, String)>, traceparent: &str) {
    if !headers.iter().any(|(k, _)| k == TRACEPARENT) {
        headers.push((TRACEPARENT.to_string(), traceparent.to_string()));
    }
}

/// `request` carrying the current span's `traceparent` (calls to other services).
pub fn outgoing(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match current() {
        Some(tp) => request.header(TRACEPARENT, tp),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with_tracing<T>(f: impl FnOnce() -> T) -> T {
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn a_span_continues_the_callers_trace_with_its_own_span_id() {
        with_tracing(|| {
            let span = tracing::info_span!("request");
            continue_from(&span, Some(PARENT));
            let tp = traceparent_of(&span).expect("a traceparent");
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!((parts[0], parts[1]), ("00", "4bf92f3577b34da6a3ce929d0e0e4736"), "same trace: {tp}");
            assert_ne!(parts[2], "00f067aa0ba902b7", "a span of its own");
            assert_eq!(parts[3], "01", "the caller's sampling decision is kept");
            // A child (what the handler does inside the request) stays in the trace.
            let child = span.in_scope(|| tracing::info_span!("child"));
            assert!(traceparent_of(&child).unwrap().contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        });
    }

    #[test]
    fn without_a_caller_a_new_trace_starts_and_garbage_is_ignored() {
        with_tracing(|| {
            let span = tracing::info_span!("request");
            continue_from(&span, Some("not-a-traceparent"));
            let tp = traceparent_of(&span).expect("a new trace");
            assert_eq!(tp.len(), 55, "{tp}");
            assert!(!tp.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        });
    }

    #[test]
    fn a_stamped_header_is_not_replaced() {
        let mut h = vec![(TRACEPARENT.to_string(), PARENT.to_string())];
        stamp(&mut h, "00-other-other-01");
        assert_eq!(h, vec![(TRACEPARENT.to_string(), PARENT.to_string())]);
    }
}
