//! The service plumbing every Sagaway HTTP service shares: settings, tokens, HTTP, start-up.
//!
//! Nothing here knows about orders, stock or money: it is the part every service needs the same
//! way. The contract (ids, statuses, messages, money) is `sagaway_contract`; Kafka, the
//! outbox/inbox and the shared tables are `sagaway_messaging`.
//!
//! # Layout
//! - [`auth`]: bearer tokens (JWT checked against the issuer's JWKS), the [`auth::Caller`], admin-only routes.
//! - [`card`]: card validation, the card keys (HKDF subkeys of versioned master keys), keyed
//!   fingerprints and AES-GCM sealing (no PAN/CVC in clear anywhere; no CVC after the first charge).
//! - [`guards`]: what a service puts in front of its routers (token checks, the per-user rate limit).
//! - [`config`]: settings read from the environment, each with a default that works on the local stack.
//! - [`telemetry`]: JSON `tracing` logs; the sampler of database-backed gauges.
//! - [`http`]: `/health/live`, `/health/ready`, `/metrics`, `application/problem+json` errors, the
//!   JSON body extractor that turns every rejection into a problem, and graceful shutdown on signals.
//! - [`idempotency`]: `Idempotency-Key` records (claim, replay, owner tokens, purge).
//! - [`paging`]: the one cursor convention for lists that only grow (`limit`, `cursor`, `next_cursor`).
//! - [`rate`]: a token bucket (dead-letter replays are paced with it, server and CLI).
//! - [`service`]: the start-up sequence the services follow (database, topics, listener).

pub mod auth;
#[cfg(feature = "testing")]
pub mod auth_testing;
pub mod card;
pub mod config;
pub mod guards;
pub mod http;
pub mod idempotency;
pub mod paging;
pub mod rate;
pub mod service;
pub mod telemetry;
