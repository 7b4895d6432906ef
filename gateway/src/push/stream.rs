//! One client's stream of events, whatever carries it (Server-Sent Events in [`super::sse`], a
//! WebSocket in [`super::ws`]): the caller's orders and bank operations/transfers, or one order.
//!
//! A stream subscribes to the hub first, then:
//! - without `Last-Event-ID`: sends a `snapshot` (the orders as the orchestrator shows them now,
//!   and — on the all-events stream — the caller's accounts at every bank that answers within the
//!   request timeout, the others named in `unavailable_banks`), then the live events — minus those the snapshot already shows (an event published between the
//!   subscription and the snapshot is in both);
//! - with `Last-Event-ID`: replays the caller's events between that cursor and the subscription
//!   point from Kafka, then the live events: nothing missed, nothing twice — across a gateway
//!   restart too. An id it cannot resume from (garbage, another configuration, expired events)
//!   gets `resync`: start over without `Last-Event-ID`.
//!
//! Events: `order` (`{order_id, status, reason?, at}`), `bank` (`{type, id, account_id, status,
//! reason?, at}`), `snapshot` (`{orders: […], accounts: […], unavailable_banks: […]}` or `{order: …}`), `resync` (`{reason}`: the client
//! fell behind, or cannot resume), `auth_expired` (`{reason: "token_expired"}`: the token the
//! stream was opened with expired; the stream ends, and the client opens a new one with a fresh
//! token and this event's `id` as `Last-Event-ID`). Each carries the stream's cursor as its `id`.
//! At most `GATEWAY_MAX_STREAMS_PER_USER` streams per user (429), SSE and WebSocket together.
//!
//! A resume is bounded: at most `GATEWAY_REPLAYS_PER_MINUTE` per user (429 `too_many_resumes`
//! beyond), at most `GATEWAY_REPLAY_CONCURRENCY` reading Kafka at once, and none reads more than
//! `GATEWAY_REPLAY_MAX_EVENTS` events (further behind gets `resync` with `too_far_behind`).

use std::{collections::HashMap, sync::atomic::Ordering};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
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
pub enum Filter {
    All,
    Order(String),
}

impl Filter {
    /// One order's stream, if `id` can be an order id (`None`: answer 404).
    pub fn order(id: String) -> Option<Self> {
        (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')).then_some(Filter::Order(id))
    }
}

/// One event for the client, before the transport writes it.
#[derive(Debug, Clone)]
pub struct Push {
    pub event: &'static str,
    pub id: Option<String>,
    pub data: Value,
}

impl Push {
    fn resync(reason: &str) -> Self {
        Push { event: "resync", id: None, data: json!({"reason": reason}) }
    }

    /// The stream's last event: its token expired (`id`: where to resume with a fresh one).
    pub fn auth_expired(cursor: &Cursor) -> Self {
        Push { event: AUTH_EXPIRED, id: Some(cursor.encode()), data: json!({"reason": "token_expired"}) }
    }
}

/// The event (and the WebSocket close reason) of a stream whose token expired.
pub const AUTH_EXPIRED: &str = "auth_expired";

/// When the token `caller` was verified with expires (its `exp`, already checked by the verifier):
/// the stream it opens ends then. `None` only for a token without a readable `exp`, which the
/// verifier does not accept.
pub fn token_expiry(caller: &Caller) -> Option<std::time::SystemTime> {
    use base64::Engine;
    let bearer = caller.bearer();
    let payload = bearer.strip_prefix("Bearer ")?.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    (exp.is_finite() && exp >= 0.0).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(exp))
}

/// How long from now until `at` (zero when it is past).
fn until(at: std::time::SystemTime) -> std::time::Duration {
    at.duration_since(std::time::SystemTime::now()).unwrap_or_default()
}

/// What kind of event a topic carries (by its name).
fn kind_of(topic: &str) -> &'static str {
    if topic.ends_with("order.events") { "order" } else { "bank" }
}

/// Opens a stream for `caller` (resuming from `last`, the client's `Last-Event-ID`): its events
/// arrive on the returned channel until the client goes, falls behind, or the gateway stops. An
/// answer instead of a stream (503 starting, 429 too many, 404 no such order, 502) is `Err`.
pub async fn open(gw: Gateway, caller: Caller, last: Option<String>, filter: Filter) -> Result<mpsc::Receiver<Push>, Response> {
    if !gw.hub.ready.load(Ordering::Acquire) {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the event feed is starting; retry shortly").into_response());
    }
    let Some(expires) = token_expiry(&caller) else {
        return Err(sagaway_common::auth::AuthError::Invalid("the token has no expiry (exp)".into()).into_response());
    };
    if last.is_some()
        && let Err(wait) = gw.replays.rate.check(&caller.user_id)
    {
        return Err(sagaway_common::rate::too_many_requests("too_many_resumes", "too many resumes with Last-Event-ID for this user; retry after Retry-After", wait));
    }
    let subscription = match gw.hub.subscribe(&caller.user_id, gw.config.max_streams_per_user, gw.config.stream_buffer) {
        Ok(s) => s,
        Err(_) => {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {} event streams per user; close one first", gw.config.max_streams_per_user),
            )
            .into_response());
        }
    };
    // For a single order, its snapshot first: a 404 is an answer, not a stream.
    let snapshot = match (&filter, &last) {
        (Filter::Order(id), None) => match fetch(&gw, &caller, &format!("/orders/{id}")).await {
            Ok(Some(order)) => Some(json!({"order": order})),
            Ok(None) => return Err(Problem::not_found("order_not_found", "no such order").into_response()),
            Err(r) => return Err(r),
        },
        (Filter::All, None) => {
            let (orders, (accounts, unavailable)) = tokio::join!(fetch(&gw, &caller, "/orders"), bank_accounts(&gw, &caller));
            match orders {
                // The newest page of the caller's orders (`GET /orders` answers `{items, next_cursor}`).
                Ok(page) => {
                    let orders = page.and_then(|mut p| p.get_mut("items").map(Value::take)).unwrap_or(json!([]));
                    Some(json!({"orders": orders, "accounts": accounts, "unavailable_banks": unavailable}))
                }
                Err(r) => return Err(r),
            }
        }
        _ => None,
    };
    let (out, rx) = mpsc::channel::<Push>(64);
    let shutdown = gw.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = run(gw, caller, filter, last, snapshot, subscription, out, expires) => {}
        }
    });
    Ok(rx)
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

/// The caller's accounts at every bank, asked in parallel (each with its `bank` code), and the banks
/// that did not answer in time: a bank being away does not keep the stream from opening.
async fn bank_accounts(gw: &Gateway, caller: &Caller) -> (Vec<Value>, Vec<String>) {
    let asks = gw.config.upstreams.banks.iter().map(|(code, url)| async move {
        let res = gw.http.get(format!("{url}/accounts")).header("authorization", caller.bearer()).timeout(gw.config.request_timeout).send().await;
        let list = match res {
            Ok(r) if r.status().is_success() => r.json::<Vec<Value>>().await.ok(),
            _ => None,
        };
        (code.clone(), list)
    });
    let mut accounts = Vec::new();
    let mut unavailable = Vec::new();
    for (code, list) in futures::future::join_all(asks).await {
        match list {
            Some(list) => accounts.extend(list.into_iter().map(|mut a| {
                if let Some(obj) = a.as_object_mut() {
                    obj.entry("bank").or_insert_with(|| Value::String(code.clone()));
                }
                a
            })),
            None => unavailable.push(code),
        }
    }
    (accounts, unavailable)
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

// One stream's whole state, handed over once from `open`.
#[allow(clippy::too_many_arguments)]
async fn run(
    gw: Gateway,
    caller: Caller,
    filter: Filter,
    last: Option<String>,
    snapshot: Option<Value>,
    mut subscription: super::hub::Subscription,
    out: mpsc::Sender<Push>,
    expires: std::time::SystemTime,
) {
    let expiry = tokio::time::sleep(until(expires));
    tokio::pin!(expiry);
    let topics = &gw.config.event_topics;
    let send = |event: Push| {
        let out = out.clone();
        async move { out.send(event).await.is_ok() }
    };
    let resync = Push::resync;
    let mut cursor = subscription.start.clone();
    let mut already: HashMap<(String, String), usize> = HashMap::new();
    match (last, snapshot) {
        (Some(text), _) => {
            let Some(from) = Cursor::decode(&text, topics.len()) else {
                send(resync("unknown_last_event_id")).await;
                return;
            };
            let replayed = {
                let _slot = gw.replays.slots.acquire().await;
                feed::replay(&gw.config.kafka_brokers, topics, &from, &subscription.start, &caller.user_id, gw.config.limits.replay_max_events).await
            };
            match replayed {
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
            if !send(Push { event: "snapshot", id: Some(cursor.encode()), data: snapshot }).await {
                return;
            }
        }
        (None, None) => {}
    }
    loop {
        let event = tokio::select! {
            event = subscription.rx.recv() => event,
            _ = &mut expiry => {
                send(Push::auth_expired(&cursor)).await;
                return;
            }
        };
        let Some(event) = event else { break };
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

/// The event for `e` if the stream's filter wants it.
fn render(gw: &Gateway, filter: &Filter, e: &Event, cursor: &Cursor) -> Option<Push> {
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
    Some(Push { event: kind, id: Some(cursor.encode()), data })
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
