//! Live status pushed to clients: the caller's order and bank events, over Server-Sent Events or a
//! WebSocket.
//!
//! - [`cursor`]: a stream's position in the event topics — every event's `id` (pure).
//! - [`hub`]: fan-out to the open streams of each user, bounded per stream.
//! - [`feed`]: the Kafka reader into the hub, and the replay for a resuming stream.
//! - [`stream`]: one client's stream — snapshot or replay, then live events — whatever carries it.
//! - [`sse`]: `GET /api/events` and `GET /api/orders/{id}/events`.
//! - [`tickets`] and [`ws`]: `POST /api/ws/ticket` and the WebSocket at `/api/ws`.

pub mod cursor;
pub mod feed;
pub mod hub;
pub mod sse;
pub mod stream;
pub mod tickets;
pub mod ws;
