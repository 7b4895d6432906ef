//! Single-use tickets for the WebSocket handshake: a browser cannot put an `Authorization` header
//! on a WebSocket, and a long-lived token must not travel in a URL (it ends up in logs). A signed-in
//! client asks `POST /api/ws/ticket` for a ticket — 32 random bytes, valid for 30 s, good for one
//! handshake at this gateway — and opens `/api/ws?ticket=…`.
//!
//! Bounded per user and in all: a user holds at most [`Limits::tickets_per_user`] unredeemed
//! tickets and is issued at most [`Limits::tickets_per_minute`] (429 beyond, with `Retry-After`),
//! so no single account can fill the pool of [`Limits::tickets_total`]. Every ticket lives the
//! same 30 s, so the issue order is the expiry order: expired tickets leave from the front of a
//! queue — each issue or redeem does O(1) work (amortised), never a scan of the pool.
//!
//! Kept in this process's memory: behind several gateway replicas the handshake must reach the
//! replica that issued the ticket (sticky sessions), or the client asks for a new ticket.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sagaway_common::{auth::Caller, rate::PerUser};

use crate::config::Limits;

/// How long a ticket may wait for its handshake.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30);

/// Why no ticket was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The user already holds the most unredeemed tickets allowed (429).
    UserFull,
    /// The user asked too often; the next is admitted after this (429 with `Retry-After`).
    Rate(Duration),
    /// The pool is full (503).
    Busy,
}

struct Waiting {
    caller: Caller,
    at: Instant,
}

#[derive(Default)]
struct Pool {
    waiting: HashMap<String, Waiting>,
    /// Every ticket issued in the last lifetime, oldest first (redeemed ones too, until they expire).
    order: VecDeque<(Instant, String)>,
    /// Unredeemed, unexpired tickets per user.
    held: HashMap<String, usize>,
}

impl Pool {
    fn release(&mut self, user: &str) {
        if let Some(n) = self.held.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(user);
            }
        }
    }

    /// Drops the expired tickets from the front; how many entries it looked at.
    fn expire(&mut self, now: Instant) -> usize {
        let mut looked = 0;
        while let Some((at, _)) = self.order.front() {
            looked += 1;
            if now.duration_since(*at) < TICKET_LIFETIME {
                break;
            }
            let (_, ticket) = self.order.pop_front().expect("a front");
            if let Some(w) = self.waiting.remove(&ticket) {
                self.release(&w.caller.user_id);
            }
        }
        looked
    }
}

pub struct Tickets {
    pool: Mutex<Pool>,
    rate: Arc<PerUser>,
    per_user: usize,
    total: usize,
    #[cfg(test)]
    looked: std::sync::atomic::AtomicUsize,
}

impl Default for Tickets {
    fn default() -> Self {
        Self::new(&Limits::default())
    }
}

impl Tickets {
    pub fn new(limits: &Limits) -> Self {
        let per_second = f64::from(limits.tickets_per_minute) / 60.0;
        let burst = u32::try_from(limits.tickets_per_user).unwrap_or(u32::MAX);
        Self {
            pool: Mutex::default(),
            rate: PerUser::new(per_second, burst),
            per_user: limits.tickets_per_user,
            total: limits.tickets_total,
            #[cfg(test)]
            looked: Default::default(),
        }
    }

    /// A fresh ticket for `caller`, or why not.
    pub fn issue(&self, caller: Caller, now: Instant) -> Result<String, Refused> {
        let ticket = hex(&rand_bytes());
        let mut pool = self.pool.lock().expect("tickets lock");
        let _looked = pool.expire(now);
        #[cfg(test)]
        self.looked.fetch_add(_looked, std::sync::atomic::Ordering::Relaxed);
        if pool.held.get(caller.user_id.as_str()).copied().unwrap_or(0) >= self.per_user {
            return Err(Refused::UserFull);
        }
        if pool.order.len() >= self.total {
            return Err(Refused::Busy);
        }
        self.rate.check(&caller.user_id).map_err(Refused::Rate)?;
        *pool.held.entry(caller.user_id.to_string()).or_insert(0) += 1;
        pool.order.push_back((now, ticket.clone()));
        pool.waiting.insert(ticket.clone(), Waiting { caller, at: now });
        Ok(ticket)
    }

    /// The caller a ticket was issued to, once: taken out whether or not it is still valid.
    pub fn redeem(&self, ticket: &str, now: Instant) -> Option<Caller> {
        let mut pool = self.pool.lock().expect("tickets lock");
        pool.expire(now);
        let w = pool.waiting.remove(ticket)?;
        pool.release(&w.caller.user_id);
        (now.duration_since(w.at) < TICKET_LIFETIME).then_some(w.caller)
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
    use std::sync::atomic::Ordering;

    use super::*;

    fn caller(sub: &str) -> Caller {
        sagaway_common::auth::caller_from_claims(&serde_json::json!({"sub": sub, "roles": ["customer"]}), "roles", "t").unwrap()
    }

    fn limits(per_user: usize, per_minute: u32, total: usize) -> Limits {
        Limits { tickets_per_user: per_user, tickets_per_minute: per_minute, tickets_total: total, ..Limits::default() }
    }

    #[test]
    fn a_ticket_works_once_and_not_after_its_lifetime() {
        let tickets = Tickets::default();
        let now = Instant::now();
        let t = tickets.issue(caller("ana"), now).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(tickets.redeem(&t, now).map(|c| c.user_id.to_string()), Some("ana".to_string()));
        assert!(tickets.redeem(&t, now).is_none(), "single use");
        let late = tickets.issue(caller("ana"), now).unwrap();
        assert!(tickets.redeem(&late, now + TICKET_LIFETIME).is_none(), "expired");
        assert!(tickets.redeem("made-up", now).is_none());
    }

    #[test]
    fn no_single_user_can_fill_the_pool() {
        let tickets = Tickets::new(&limits(3, 60_000_000, 10));
        let now = Instant::now();
        let mine: Vec<_> = (0..50).map(|_| tickets.issue(caller("greedy"), now)).collect();
        assert_eq!(mine.iter().filter(|t| t.is_ok()).count(), 3, "the per-user cap");
        assert!(mine[3..].iter().all(|t| *t == Err(Refused::UserFull)));
        // Everyone else still gets theirs, until the pool itself is full.
        for n in 0..7 {
            assert!(tickets.issue(caller(&format!("u{n}")), now).is_ok(), "user {n}");
        }
        assert_eq!(tickets.issue(caller("late"), now), Err(Refused::Busy));
        // A redeemed ticket frees its holder's place; an expired one frees it too.
        let t = mine[0].clone().unwrap();
        assert!(tickets.redeem(&t, now).is_some());
        assert_eq!(tickets.issue(caller("greedy"), now), Err(Refused::Busy), "the pool counts the last lifetime's issues");
        assert!(tickets.issue(caller("greedy"), now + TICKET_LIFETIME).is_ok(), "expired tickets leave the pool and the user's count");
    }

    #[test]
    fn a_user_is_issued_tickets_at_a_bounded_rate() {
        let tickets = Tickets::new(&limits(2, 1, 1000));
        let now = Instant::now();
        for _ in 0..2 {
            let t = tickets.issue(caller("fast"), now).unwrap();
            tickets.redeem(&t, now).unwrap();
        }
        match tickets.issue(caller("fast"), now) {
            Err(Refused::Rate(wait)) => assert!(wait > Duration::from_secs(50), "{wait:?}"),
            other => panic!("a third ticket within the minute: {other:?}"),
        }
        assert!(tickets.issue(caller("other"), now).is_ok(), "one user's rate is theirs alone");
    }

    #[test]
    fn issuing_looks_at_the_expired_front_only_not_the_whole_pool() {
        let tickets = Tickets::new(&limits(1, 1000, 1_000_000));
        let start = Instant::now();
        for n in 0..20_000 {
            tickets.issue(caller(&format!("u{n}")), start).unwrap();
        }
        tickets.looked.store(0, Ordering::Relaxed);
        let later = start + Duration::from_secs(1);
        for n in 0..1000 {
            tickets.issue(caller(&format!("v{n}")), later).unwrap();
        }
        assert!(tickets.looked.load(Ordering::Relaxed) <= 1000, "each issue looks at one entry when nothing expired");
        tickets.looked.store(0, Ordering::Relaxed);
        tickets.issue(caller("w"), start + TICKET_LIFETIME).unwrap();
        assert_eq!(tickets.looked.load(Ordering::Relaxed), 20_001, "the expired ones once each, then the first live one");
        assert!(tickets.issue(caller("u1"), start + TICKET_LIFETIME).is_ok(), "their holders are free again");
    }
}
