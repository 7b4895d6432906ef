//! Dead-letter tooling: what operators use to see why messages were given up and to replay,
//! abandon or purge them. The dead-lettering itself happens where a message fails (the payment
//! processor after its retry budget, any [`sagaway_messaging::inbox::ConsumerLoop`] for a malformed
//! message); this module reads the results. Runbook: docs/dlq-runbook.md.
//!
//! - [`recorder`]: consumes `payment_dlq` and `bank.dlq` and records every record in `dead_letters`.
//! - [`kind`]: what a letter is (the compensation step it carries) and what replaying or resolving
//!   it may do to its order — pure.
//! - [`store`]: the `dead_letters` rows, filters and paging.
//! - [`audit`]: the `dlq_audit` trail (who, when, what, outcome per dead letter).
//! - [`replay`]: back onto the original topic through the outbox, the order FAILED → PAYMENT_PENDING.
//! - [`abandon`]: compensate the parked order (→ COMPENSATED).
//! - [`resolve`]: mark it handled (RESOLVED) with the operator's reason; a compensation step the
//!   order waits on is settled (the order may end COMPENSATED).
//! - [`purge`]: drop the payload, mark PURGED.
//! - [`operations`]: what each admin route does with the database, audited (no HTTP).
//! - [`api`]: `/admin/dlq/...` over HTTP (the `sagaway dlq ...` CLI, crate `sagaway-cli`, is a client of it).
//! - the token bucket behind `rate` is [`sagaway_common::rate`].

pub mod abandon;
pub mod api;
pub mod audit;
pub mod kind;
pub mod operations;
pub mod purge;
pub mod recorder;
pub mod replay;
pub mod resolve;
pub mod store;

use serde::Serialize;
use utoipa::ToSchema;

pub const PENDING: &str = "PENDING";
pub const REPLAYED: &str = "REPLAYED";
pub const ABANDONED: &str = "ABANDONED";
pub const RESOLVED: &str = "RESOLVED";
pub const PURGED: &str = "PURGED";
pub const STATUSES: [&str; 5] = [PENDING, REPLAYED, ABANDONED, RESOLVED, PURGED];

/// Header a replayed message carries: the id of the dead letter it replays.
pub const REPLAY_OF: &str = "dlq.replay_of";

/// Marker [`sagaway_contract::redact::redact_digit_runs`] leaves where it cut digits out.
pub const REDACTED: &str = "[redacted]";

/// What an operation did (or, in a dry run, would do) to one dead letter.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Outcome {
    pub dead_letter_id: u64,
    /// `replayed`, `would_replay`, `abandoned`, `resolved`, `would_resolve`, `purged`,
    /// `would_purge`, `skipped` (a recorded no-op) or `not_found`.
    pub outcome: String,
    /// Why, in words (for skips: what made it a no-op).
    pub detail: String,
}

impl Outcome {
    pub fn new(dead_letter_id: u64, outcome: &str, detail: impl Into<String>) -> Self {
        Self { dead_letter_id, outcome: outcome.to_string(), detail: detail.into() }
    }

    pub fn skipped(dead_letter_id: u64, detail: impl Into<String>) -> Self {
        Self::new(dead_letter_id, "skipped", detail)
    }
}
