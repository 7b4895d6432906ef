//! Spans are exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (issue 16): a
//! receiver on 127.0.0.1 gets the request span with the caller's trace id and the service's name.
//! Its own test binary: the tracer provider is process-wide and read from the environment once.

use std::{sync::Arc, time::Duration};

use axum::{Router, body::Bytes, extract::State, routing::post};
use tokio::sync::Mutex;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_span_reaches_the_otlp_endpoint_with_the_callers_trace_id() {
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let app = Router::new()
        .route("/v1/traces", post(|State(r): State<Arc<Mutex<Vec<Bytes>>>>, body: Bytes| async move { r.lock().await.push(body) }))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // SAFETY: set before any thread of this test process reads the environment for it.
    unsafe { std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")) };
    sagaway_common::telemetry::init_with_default("otlp-test", "warn");
    assert!(sagaway_messaging::trace::exporting());
    {
        let span = sagaway_messaging::trace::server_span("POST /payment", Some(&format!("00-{TRACE_ID}-00f067aa0ba902b7-01")));
        let _entered = span.enter();
    }
    tokio::task::spawn_blocking(sagaway_messaging::trace::flush).await.unwrap();

    let trace_id = hex::decode(TRACE_ID).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let bodies = received.lock().await.clone();
        let has = |needle: &[u8]| bodies.iter().any(|b| b.windows(needle.len()).any(|w| w == needle));
        if has(&trace_id) && has(b"otlp-test") && has(b"POST /payment") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no exported span with the trace id, the service and the span name: {} bodies", bodies.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
