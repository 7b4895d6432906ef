//! Plumbing shared by the three Sagaway services (product, orchestrator, payment).
//!
//! Nothing here knows about orders, stock or money: it is the part every service needs the same way.
//!
//! # Layout
//! - [`auth`]: bearer tokens (JWT checked against the issuer's JWKS), the [`auth::Caller`], admin-only routes.
//! - [`card`]: card validation, the card keys (HKDF subkeys of versioned master keys), keyed
//!   fingerprints and AES-GCM sealing (no PAN/CVC in clear anywhere; no CVC after the first charge).
//! - [`config`]: settings read from the environment, each with a default that works on the local stack.
//! - [`telemetry`]: JSON `tracing` logs; the sampler of database-backed gauges.
//! - [`trace`]: W3C `traceparent` across HTTP and Kafka; spans over OTLP when configured.
//! - [`http`]: `/health/live`, `/health/ready`, `/metrics`, `application/problem+json` errors, the
//!   JSON body extractor that turns every rejection into a problem, and graceful shutdown on signals.
//! - [`db`]: the MariaDB pool (creating the service's database when missing) and migrations.
//! - [`kafka`]: producer, consumer and admin clients tuned for the local tansu broker.
//! - [`idempotency`]: `Idempotency-Key` records (claim, replay, owner tokens, purge).
//! - [`outbox`], [`inbox`]: effectively-once messaging (transactional outbox + relay; inbox-deduplicated consumers).
//! - [`messages`]: the saga command/reply contract between the services.
//! - [`money`]: exact amounts (parse, format, serde).
//! - [`request_id`]: the id that follows a request through the services and the messages it causes.
//! - [`paging`]: the one cursor convention for lists that only grow (`limit`, `cursor`, `next_cursor`).
//! - [`rate`]: a token bucket (dead-letter replays are paced with it, server and CLI).
//! - [`retry`]: backoff with jitter for every retrying loop (one schedule, testable without sleeping).
//! - [`topics`]: the one list of topic names and partition counts.
//! - [`service`]: the start-up and shutdown sequence all three services follow.

pub mod auth;
#[cfg(feature = "testing")]
pub mod auth_testing;
pub mod card;
pub mod config;
pub mod db;
pub mod http;
pub mod idempotency;
pub mod inbox;
pub mod kafka;
pub mod messages;
pub mod money;
pub mod outbox;
pub mod paging;
pub mod rate;
pub mod request_id;
pub mod retry;
pub mod service;
pub mod topics;
pub mod telemetry;
pub mod trace;
