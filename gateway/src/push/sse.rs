//! `GET /api/events` (the caller's orders and bank operations/transfers) and
//! `GET /api/orders/{id}/events` (one order) as Server-Sent Events.
//!
//! A stream subscribes to the hub first, then:
//! - without `Last-Event-ID`: sends a `snapshot` (the orders as the orchestrator shows them now),
//!   then the live events — minus those the snapshot already shows (an event published between the
//!   subscription and the snapshot is in both);
//! - with `Last-Event-ID`: replays the caller's events between that cursor and the subscription
//!   point from Kafka, then the live events: nothing missed, nothing twice — across a gateway
//!   restart too. An id it cannot resume from (garbage, another configuration, expired events)
//!   gets `resync`: start over without `Last-Event-ID`.
//!
//! Events: `order` (`{order_id, status, reason?, at}`), `bank` (`{type, id, account_id, status,
//! reason?, at}`), `snapshot` (`{orders: […]}` or `{order: …}`), `resync` (`{reason}`: the client
//! fell behind, or cannot resume). Each carries the stream's cursor as its `id`. A comment line is
//! sent when idle (heartbeat). At most `GATEWAY_MAX_STREAMS_PER_USER` streams per user (429).

use std::{collections::HashMap, convert::Infallible, sync::atomic::Ordering};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use sagaway_common::{auth::Caller, http::Problem};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    cursor::Cursor,
    feed::{self, ReplayError},
    hub::Event,
};
use crate::Gateway;

/// Which events a stream carries.
#[derive(Debug, Clone)]
enum Filter {
    All,
    Order(String),
}

/// The caller's orders and bank events.
pub async fn events(State(gw): State<Gateway>, caller: Caller, headers: HeaderMap) -> Response {
    open(gw, caller, &headers, Filter::All).await
}

/// One order of the caller's.
pub async fn order_events(State(gw): State<Gateway>, caller: Caller, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Problem::not_found("order_not_found", "no such order").into_response();
    }
    open(gw, caller, &headers, Filter::Order(id)).await
}

/// What kind of event a topic carries (by its name).
fn kind_of(topic: &str) -> &'static str {
    if topic.ends_with("order.events") { "order" } else { "bank" }
}

async fn open(gw: Gateway, caller: Caller, headers: &HeaderMap, filter: Filter) -> Response {
    if !gw.hub.ready.load(Ordering::Acquire) {
        return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the event feed is starting; retry shortly").into_response();
    }
    let subscription = match gw.hub.subscribe(&caller.user_id, gw.config.max_streams_per_user, gw.config.stream_buffer) {
        Ok(s) => s,
        Err(_) => {
            return Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {} event streams per user; close one first", gw.config.max_streams_per_user),
            )
            .into_response();
        }
    };
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    // For a single order, its snapshot first: a 404 is an answer, not a stream.
    let snapshot = match (&filter, &last) {
        (Filter::Order(id), None) => match fetch(&gw, &caller, &format!("/orders/{id}")).await {
            Ok(Some(order)) => Some(json!({"order": order})),
            Ok(None) => return Problem::not_found("order_not_found", "no such order").into_response(),
            Err(r) => return r,
        },
        (Filter::All, None) => match fetch(&gw, &caller, "/orders").await {
            Ok(orders) => Some(json!({"orders": orders.unwrap_or(json!([]))})),
            Err(r) => return r,
        },
        _ => None,
    };
    let (out, rx) = mpsc::channel::<SseEvent>(64);
    let (shutdown, heartbeat) = (gw.shutdown.clone(), gw.config.heartbeat);
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = run(gw, caller, filter, last, snapshot, subscription, out) => {}
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat)).into_response()
}

/// GETs `path` on the orchestrator as the caller: `Ok(None)` on 404.
async fn fetch(gw: &Gateway, caller: &Caller, path: &str) -> Result<Option<Value>, Response> {
    let url = format!("{}{path}", gw.config.upstreams.orchestrator);
    let res = gw.http.get(&url).header("authorization", caller.bearer()).timeout(gw.config.request_timeout).send().await;
    match res {
        Ok(r) if r.status() == StatusCode::NOT_FOUND => Ok(None),
        Ok(r) if r.status().is_success() => Ok(r.json().await.ok()),
        Ok(r) => Err(Problem::new(StatusCode::BAD_GATEWAY, "upstream_error", format!("the orchestrator answered {} for the snapshot", r.status())).into_response()),
        Err(_) => Err(Problem::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", "the orchestrator did not answer; try again").into_response()),
    }
}

/// The statuses a snapshot already shows, per order (a multiset: an event matching one is dropped once).
fn shown(snapshot: &Value) -> HashMap<(String, String), usize> {
    let mut seen = HashMap::new();
    let orders: Vec<&Value> = match (snapshot.get("orders"), snapshot.get("order")) {
        (Some(Value::Array(list)), _) => list.iter().collect(),
        (_, Some(order)) => vec![order],
        _ => vec![],
    };
    for o in orders {
        let id = o["id"].as_str().unwrap_or_default().to_string();
        for h in o["history"].as_array().into_iter().flatten() {
            *seen.entry((id.clone(), h["status"].as_str().unwrap_or_default().to_string())).or_insert(0) += 1;
        }
    }
    seen
}

async fn run(
    gw: Gateway,
    caller: Caller,
    filter: Filter,
    last: Option<String>,
    snapshot: Option<Value>,
    mut subscription: super::hub::Subscription,
    out: mpsc::Sender<SseEvent>,
) {
    let topics = &gw.config.event_topics;
    let send = |event: SseEvent| {
        let out = out.clone();
        async move { out.send(event).await.is_ok() }
    };
    let resync = |reason: &str| SseEvent::default().event("resync").data(json!({"reason": reason}).to_string());
    let mut cursor = subscription.start.clone();
    let mut already: HashMap<(String, String), usize> = HashMap::new();
    match (last, snapshot) {
        (Some(text), _) => {
            let Some(from) = Cursor::decode(&text, topics.len()) else {
                send(resync("unknown_last_event_id")).await;
                return;
            };
            match feed::replay(&gw.config.kafka_brokers, topics, &from, &subscription.start, &caller.user_id).await {
                Ok(events) => {
                    let mut position = from.clone();
                    for e in events {
                        position.advance(e.topic, e.partition, e.offset);
                        if let Some(sse) = render(&gw, &filter, &e, &position)
                            && !send(sse).await
                        {
                            return;
                        }
                    }
                }
                Err(ReplayError::Broker(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "replay failed");
                    send(resync("replay_failed")).await;
                    return;
                }
                Err(e) => {
                    send(resync(&e.to_string())).await;
                    return;
                }
            }
        }
        (None, Some(snapshot)) => {
            already = shown(&snapshot);
            if !send(SseEvent::default().event("snapshot").id(cursor.encode()).data(snapshot.to_string())).await {
                return;
            }
        }
        (None, None) => {}
    }
    while let Some(event) = subscription.rx.recv().await {
        cursor.advance(event.topic, event.partition, event.offset);
        if kind_of(&topics[event.topic]) == "order" {
            let key = (event.payload["order_id"].as_str().unwrap_or_default().to_string(), event.payload["status"].as_str().unwrap_or_default().to_string());
            if let Some(n) = already.get_mut(&key)
                && *n > 0
            {
                *n -= 1;
                continue;
            }
        }
        if let Some(sse) = render(&gw, &filter, &event, &cursor)
            && !send(sse).await
        {
            return;
        }
    }
    if subscription.lagged.load(Ordering::Acquire) {
        send(resync("behind")).await;
    }
}

/// The SSE event for `e` if the stream's filter wants it.
fn render(gw: &Gateway, filter: &Filter, e: &Event, cursor: &Cursor) -> Option<SseEvent> {
    let kind = kind_of(&gw.config.event_topics[e.topic]);
    if let Filter::Order(id) = filter
        && (kind != "order" || e.payload["order_id"].as_str() != Some(id))
    {
        return None;
    }
    let data = if kind == "order" {
        json!({"order_id": e.payload["order_id"], "status": e.payload["status"], "reason": e.payload.get("reason").cloned().unwrap_or(Value::Null), "at": e.payload["at"]})
    } else {
        e.payload.clone()
    };
    Some(SseEvent::default().event(kind).id(cursor.encode()).data(data.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_shows_each_status_it_lists_once() {
        let s = json!({"orders": [{"id": "o1", "history": [{"status": "ACCEPTED"}, {"status": "RESERVATION_LOCKED"}]}]});
        let seen = shown(&s);
        assert_eq!(seen.get(&("o1".into(), "ACCEPTED".into())), Some(&1));
        assert_eq!(seen.get(&("o1".into(), "PAID".into())), None);
        assert_eq!(shown(&json!({"order": {"id": "o2", "history": [{"status": "ACCEPTED"}]}})).len(), 1);
    }
}
