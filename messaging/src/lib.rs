//! The messaging layer every Sagaway service stands on: Kafka clients, effectively-once
//! consumption and production, the shared tables' migrations, and the context that follows a
//! request through the messages it causes.
//!
//! Business-free: it moves [`sagaway_contract`] messages but decides nothing about orders, stock
//! or money.
//!
//! # Layout
//! - [`kafka`]: producer, consumer and admin clients tuned for the local tansu broker.
//! - [`outbox`], [`inbox`]: effectively-once messaging (transactional outbox + relay;
//!   inbox-deduplicated, batched consumers; bounded in-place retries, then a dead letter).
//! - [`topics`]: the one list of topic names and partition counts.
//! - [`db`]: the MariaDB pool (creating the service's database when missing) and migrations. The
//!   DDL of the tables this layer needs in every service's database (`inbox`, `outbox`,
//!   `consumer_offsets`) is `messaging/migrations/`, linked into each service's migrations.
//! - [`health`]: the dependencies a service's readiness probe asks.
//! - [`retry`]: backoff with jitter for every retrying loop (one schedule, testable without sleeping).
//! - [`request_id`], [`trace`]: the request id and W3C `traceparent` across HTTP and Kafka.
//! - [`env`]: settings from the environment.

pub mod db;
pub mod env;
pub mod health;
pub mod inbox;
pub mod kafka;
pub mod outbox;
pub mod request_id;
pub mod retry;
pub mod topics;
pub mod trace;
