//! Fan-out of events to the open streams of their user, in one process. The feed publishes every
//! event of the topics here, in offset order per partition; each stream has a bounded queue, and a
//! stream whose queue is full is cut off (it will send `resync`) instead of growing without bound.
//!
//! The hub also knows, per (topic, partition), the next offset it will publish: a stream that
//! subscribes gets every event from that point on, and that point as its starting [`Cursor`] — so a
//! snapshot taken after subscribing plus the events after the cursor miss nothing, and a resume
//! replays exactly the events between the client's cursor and this one.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::sync::mpsc;

use super::cursor::Cursor;

/// One event of one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub topic: usize,
    pub partition: i32,
    pub offset: i64,
    /// The message key: the user it concerns.
    pub user: String,
    pub payload: serde_json::Value,
}

/// A stream's live side: its queue and whether it was cut off for falling behind.
pub struct Subscription {
    pub rx: mpsc::Receiver<Arc<Event>>,
    /// Where the live events start.
    pub start: Cursor,
    pub lagged: Arc<AtomicBool>,
    hub: Arc<Hub>,
    user: String,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.user, self.id);
    }
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Arc<Event>>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    positions: Cursor,
    streams: HashMap<String, Vec<Subscriber>>,
}

#[derive(Default)]
pub struct Hub {
    state: Mutex<State>,
    next_id: AtomicU64,
    /// Whether the feed has its starting positions (the gateway is ready).
    pub ready: AtomicBool,
}

/// A user already has the most streams allowed.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyStreams;

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Where the feed starts, before any event is published.
    pub fn start_at(&self, positions: Cursor) {
        self.state.lock().expect("hub lock").positions = positions;
        self.ready.store(true, Ordering::Release);
    }

    /// The next offset to be published, per (topic, partition).
    pub fn positions(&self) -> Cursor {
        self.state.lock().expect("hub lock").positions.clone()
    }

    /// Opens a stream for `user` (at most `max` per user), with a queue of `buffer` events.
    pub fn subscribe(self: &Arc<Self>, user: &str, max: usize, buffer: usize) -> Result<Subscription, TooManyStreams> {
        let (tx, rx) = mpsc::channel(buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock().expect("hub lock");
        let streams = state.streams.entry(user.to_string()).or_default();
        if streams.len() >= max {
            return Err(TooManyStreams);
        }
        streams.push(Subscriber { id, tx, lagged: lagged.clone() });
        metrics::gauge!("gateway_open_streams").increment(1.0);
        Ok(Subscription { rx, start: state.positions.clone(), lagged, hub: self.clone(), user: user.to_string(), id })
    }

    fn unsubscribe(&self, user: &str, id: u64) {
        let mut state = self.state.lock().expect("hub lock");
        if let Some(list) = state.streams.get_mut(user) {
            let before = list.len();
            list.retain(|s| s.id != id);
            if list.len() < before {
                metrics::gauge!("gateway_open_streams").decrement(1.0);
            }
            if list.is_empty() {
                state.streams.remove(user);
            }
        }
    }

    /// Publishes one event to its user's streams (the feed calls this in offset order).
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        let mut state = self.state.lock().expect("hub lock");
        state.positions.advance(event.topic, event.partition, event.offset);
        let Some(list) = state.streams.get_mut(&event.user) else { return };
        list.retain(|s| match s.tx.try_send(event.clone()) {
            Ok(()) => {
                metrics::counter!("gateway_events_pushed_total").increment(1);
                true
            }
            // Behind by a whole queue, or gone: cut off (a lagging stream then sends `resync`).
            Err(mpsc::error::TrySendError::Full(_)) => {
                s.lagged.store(true, Ordering::Release);
                metrics::gauge!("gateway_open_streams").decrement(1.0);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::gauge!("gateway_open_streams").decrement(1.0);
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, offset: i64) -> Event {
        Event { topic: 0, partition: 0, offset, user: user.into(), payload: serde_json::json!({"n": offset}) }
    }

    #[tokio::test]
    async fn each_user_gets_their_own_events_in_order_and_the_cap_holds() {
        let hub = Hub::new();
        hub.start_at(Cursor([((0, 0), 5)].into()));
        let mut a = hub.subscribe("ana", 2, 16).unwrap();
        let _a2 = hub.subscribe("ana", 2, 16).unwrap();
        assert_eq!(hub.subscribe("ana", 2, 16).err(), Some(TooManyStreams));
        let mut b = hub.subscribe("bia", 2, 16).unwrap();
        assert_eq!(a.start.encode(), "0:0:5");
        for (user, offset) in [("ana", 5), ("bia", 6), ("ana", 7)] {
            hub.publish(event(user, offset));
        }
        assert_eq!(a.rx.recv().await.unwrap().offset, 5);
        assert_eq!(a.rx.recv().await.unwrap().offset, 7);
        assert_eq!(b.rx.recv().await.unwrap().offset, 6);
        assert!(a.rx.try_recv().is_err() && b.rx.try_recv().is_err(), "nobody gets another user's events");
        assert_eq!(hub.positions().encode(), "0:0:8");
        drop(b);
        assert!(hub.subscribe("bia", 1, 16).is_ok(), "a closed stream frees its place");
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_cut_off_not_buffered() {
        let hub = Hub::new();
        hub.start_at(Cursor::default());
        let mut slow = hub.subscribe("ana", 5, 2).unwrap();
        for offset in 0..5 {
            hub.publish(event("ana", offset));
        }
        assert!(slow.lagged.load(Ordering::Acquire));
        assert_eq!(slow.rx.recv().await.unwrap().offset, 0);
        assert_eq!(slow.rx.recv().await.unwrap().offset, 1);
        assert!(slow.rx.recv().await.is_none(), "closed after what fitted");
    }
}
