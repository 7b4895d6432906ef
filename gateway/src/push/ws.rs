//! The WebSocket at `/api/ws`: the same events as `GET /api/events`, one JSON text frame each
//! (`{"event": "order", "id": "…", "data": {…}}`). Authenticated at the handshake by a single-use
//! ticket (`POST /api/ws/ticket`, [`super::tickets`]) in the query — never the token; resumes with
//! `?last_event_id=<id>` like SSE's `Last-Event-ID`. The server pings when idle. When the token the
//! ticket was issued for expires, the last frame is `auth_expired` and the socket closes with code
//! 4401, reason `auth_expired`. A client frame larger than `GATEWAY_WS_MAX_MESSAGE_BYTES` closes it.

use std::time::Instant;

use axum::{
    Json,
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
};
use sagaway_common::{
    auth::Caller,
    http::{ApiQuery, Problem},
    rate::too_many_requests,
};
use serde::Deserialize;
use serde_json::json;

use super::{
    stream::{self, AUTH_EXPIRED, Filter, Push},
    tickets::{Refused, TICKET_LIFETIME},
};
use crate::Gateway;

/// A ticket for one WebSocket handshake at this gateway, valid 30 s.
pub async fn ticket(State(gw): State<Gateway>, caller: Caller) -> Response {
    match gw.tickets.issue(caller, Instant::now()) {
        Ok(ticket) => (StatusCode::CREATED, Json(json!({"ticket": ticket, "expires_in": TICKET_LIFETIME.as_secs()}))).into_response(),
        Err(Refused::UserFull) => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_tickets",
            format!("at most {} unused tickets per user; use one (or let it expire) first", gw.config.limits.tickets_per_user),
        )
        .into_response(),
        Err(Refused::Rate(wait)) => too_many_requests("rate_limited", "too many tickets asked for by this user; retry after Retry-After", wait),
        Err(Refused::Busy) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many tickets waiting; retry shortly").into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct Handshake {
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    last_event_id: Option<String>,
}

/// The upgrade: the ticket is redeemed first (401 if missing, used or expired), then the stream is
/// opened (its own refusals — 429, 503 — answer the handshake), then the socket carries it.
pub async fn socket(State(gw): State<Gateway>, ApiQuery(h): ApiQuery<Handshake>, upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Response {
    // A plain GET (no Upgrade headers) is not a handshake: say so as a problem, and keep the ticket.
    let Ok(upgrade) = upgrade else {
        return Problem::new(StatusCode::UPGRADE_REQUIRED, "websocket_required", "GET /api/ws is a WebSocket handshake (Connection: upgrade, Upgrade: websocket)")
            .into_response();
    };
    let Some(caller) = gw.tickets.redeem(&h.ticket, Instant::now()) else {
        return Problem::new(StatusCode::UNAUTHORIZED, "invalid_ticket", "a WebSocket needs a fresh ticket from POST /api/ws/ticket (single use, 30 s)").into_response();
    };
    let heartbeat = gw.config.heartbeat;
    let limit = gw.config.limits.ws_max_message;
    let rx = match stream::open(gw, caller, h.last_event_id, Filter::All).await {
        Ok(rx) => rx,
        Err(r) => return r,
    };
    // The client sends nothing but control frames: a small limit (a bigger frame closes the socket, 1009).
    upgrade.max_frame_size(limit).max_message_size(limit).on_upgrade(move |socket| carry(socket, rx, heartbeat))
}

/// The close code of a stream whose token expired (application range, RFC 6455 §7.4.2: like HTTP 401).
pub const CLOSE_AUTH_EXPIRED: u16 = 4401;

async fn carry(mut socket: WebSocket, mut rx: tokio::sync::mpsc::Receiver<Push>, heartbeat: std::time::Duration) {
    let mut ping = tokio::time::interval(heartbeat);
    ping.tick().await;
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(p) = event else { break };
                let frame = json!({"event": p.event, "id": p.id, "data": p.data}).to_string();
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    return;
                }
                if p.event == AUTH_EXPIRED {
                    let close = CloseFrame { code: CLOSE_AUTH_EXPIRED, reason: AUTH_EXPIRED.into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                // The client closed, or the connection broke: the stream ends (its subscription with it).
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {} // pings are answered by the library; anything else is ignored
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
