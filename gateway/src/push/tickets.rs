//! Single-use tickets for the WebSocket handshake: a browser cannot put an `Authorization` header
//! on a WebSocket, and a long-lived token must not travel in a URL (it ends up in logs). A signed-in
//! client asks `POST /api/ws/ticket` for a ticket — 32 random bytes, valid for 30 s, good for one
//! handshake at this gateway — and opens `/api/ws?ticket=…`.
//!
//! Kept in this process's memory: behind several gateway replicas the handshake must reach the
//! replica that issued the ticket (sticky sessions), or the client asks for a new ticket.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use sagaway_common::auth::Caller;

/// How long a ticket may wait for its handshake.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30);
/// The most tickets waiting at once (each user can hold a few; a flood is refused, not stored).
const MAX_WAITING: usize = 100_000;

#[derive(Default)]
pub struct Tickets {
    waiting: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl Tickets {
    /// A fresh ticket for `caller`, or `None` when too many are waiting.
    pub fn issue(&self, caller: Caller, now: Instant) -> Option<String> {
        let ticket = hex(&rand_bytes());
        let mut waiting = self.waiting.lock().expect("tickets lock");
        waiting.retain(|_, (_, at)| now.duration_since(*at) < TICKET_LIFETIME);
        if waiting.len() >= MAX_WAITING {
            return None;
        }
        waiting.insert(ticket.clone(), (caller, now));
        Some(ticket)
    }

    /// The caller a ticket was issued to, once: taken out whether or not it is still valid.
    pub fn redeem(&self, ticket: &str, now: Instant) -> Option<Caller> {
        let (caller, at) = self.waiting.lock().expect("tickets lock").remove(ticket)?;
        (now.duration_since(at) < TICKET_LIFETIME).then_some(caller)
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    for chunk in b.chunks_mut(16) {
        chunk.copy_from_slice(&uuid::Uuid::new_v4().into_bytes());
    }
    b
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        sagaway_common::auth::caller_from_claims(&serde_json::json!({"sub": "ana", "roles": ["customer"]}), "roles", "t").unwrap()
    }

    #[test]
    fn a_ticket_works_once_and_not_after_its_lifetime() {
        let tickets = Tickets::default();
        let now = Instant::now();
        let t = tickets.issue(caller(), now).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(tickets.redeem(&t, now).map(|c| c.user_id.to_string()), Some("ana".to_string()));
        assert!(tickets.redeem(&t, now).is_none(), "single use");
        let late = tickets.issue(caller(), now).unwrap();
        assert!(tickets.redeem(&late, now + TICKET_LIFETIME).is_none(), "expired");
        assert!(tickets.redeem("made-up", now).is_none());
    }
}
