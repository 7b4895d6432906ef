//! `GET /api/events` (the caller's orders and bank operations/transfers) and
//! `GET /api/orders/{id}/events` (one order) as Server-Sent Events ([`super::stream`] says what a
//! stream carries). `Last-Event-ID` resumes; a comment line is sent when idle (heartbeat).

use std::convert::Infallible;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use sagaway_common::{auth::Caller, http::Problem};

use super::stream::{self, Filter, Push};
use crate::Gateway;

/// The caller's orders and bank events.
pub async fn events(State(gw): State<Gateway>, caller: Caller, headers: HeaderMap) -> Response {
    respond(gw, caller, &headers, Filter::All).await
}

/// One order of the caller's.
pub async fn order_events(State(gw): State<Gateway>, caller: Caller, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match Filter::order(id) {
        Some(filter) => respond(gw, caller, &headers, filter).await,
        None => Problem::not_found("order_not_found", "no such order").into_response(),
    }
}

async fn respond(gw: Gateway, caller: Caller, headers: &HeaderMap, filter: Filter) -> Response {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let heartbeat = gw.config.heartbeat;
    match stream::open(gw, caller, last, filter).await {
        Ok(rx) => {
            let events = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (Ok::<_, Infallible>(to_sse(p)), rx)) });
            Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat)).into_response()
        }
        Err(r) => r,
    }
}

fn to_sse(p: Push) -> SseEvent {
    let e = SseEvent::default().event(p.event).data(p.data.to_string());
    match p.id {
        Some(id) => e.id(id),
        None => e,
    }
}
