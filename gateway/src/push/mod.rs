//! Live status pushed to clients: the caller's order and bank events as Server-Sent Events.
//!
//! - [`cursor`]: a stream's position in the event topics — every event's `id` (pure).
//! - [`hub`]: fan-out to the open streams of each user, bounded per stream.
//! - [`feed`]: the Kafka reader into the hub, and the replay for a resuming stream.
//! - [`sse`]: `GET /api/events` and `GET /api/orders/{id}/events`.

pub mod cursor;
pub mod feed;
pub mod hub;
pub mod sse;
