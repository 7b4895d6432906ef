//! Transfers with other banks: two-phase commit between banks that sign every request they send
//! each other. The rules are pure ([`crate::rules::interbank`]: the coordinator's and the
//! participant's state machines; [`crate::rules::interbank_auth`]: signing); this module is their
//! adapters. `docs/banks.md` has the protocol, a sequence diagram and every failure case.
//!
//! # Layout
//! - [`coordinator`]: the durable log of the transfers this bank started, and the driver that sends
//!   prepares and the decision until every leg has acknowledged it (across restarts: [`recovery`]).
//!   Legs held at this bank get their messages in-process, in the coordinator's own transaction.
//! - [`participant`]: a leg held here — its record and the money it moves (a hold, a pending
//!   credit, then settle/release or post/drop), one database transaction per message.
//! - [`auth`]: checks a signed request (signature, clock skew, nonce kept in `interbank_nonces`).
//! - [`peers`]: the HTTP client to other banks; every request signed with this bank's key.
//! - [`api`]: `/interbank/*` (signed requests from banks) and `GET /me/balances` (customers).
//! - [`balances`]: the caller's accounts in every bank, totals per currency.
//! - [`recovery`]: the loop that drives unfinished transfers again and lets legs in doubt ask.

pub mod api;
pub mod auth;
pub mod balances;
pub mod coordinator;
pub mod participant;
pub mod peers;
pub mod recovery;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::rules::interbank::{Decision, InquiryAnswer, Reply, Vote};

/// The answer to `prepare`: `READY`, or `ABORT` and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VoteBody {
    /// READY or ABORT.
    pub vote: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&Vote> for VoteBody {
    fn from(v: &Vote) -> Self {
        match v {
            Vote::Ready => Self { vote: "READY".into(), reason: None },
            Vote::Abort { reason } => Self { vote: "ABORT".into(), reason: Some(reason.clone()) },
        }
    }
}

impl VoteBody {
    pub fn parse(&self) -> Option<Vote> {
        match self.vote.as_str() {
            "READY" => Some(Vote::Ready),
            "ABORT" => Some(Vote::Abort { reason: self.reason.clone().unwrap_or_else(|| "aborted".into()) }),
            _ => None,
        }
    }
}

/// The body of `commit` and `abort`: which leg.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegBody {
    pub leg: usize,
}

/// The acknowledgement of `commit` / `abort`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AckBody {
    /// COMMIT or ABORT.
    pub ack: String,
}

/// The coordinator's answer to a leg in doubt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionBody {
    /// COMMIT, ABORT, or absent while the transfer is still PREPARING (keep holding, ask again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
}

/// The problem code of `GET /interbank/tx/{tx_id}` answered 410: the coordinator issued the
/// transfer and has lost its record (keep holding; an operator settles it).
pub const TRANSFER_LOST: &str = "transfer_lost";

/// `GET /interbank/tx/{tx_id}`: 200 with the decision (or none yet), or 410 `transfer_lost`.
impl axum::response::IntoResponse for InquiryAnswer {
    fn into_response(self) -> axum::response::Response {
        let decision = match self {
            InquiryAnswer::Decided(d) => Some(decision_text(d).to_string()),
            InquiryAnswer::Undecided => None,
            InquiryAnswer::Lost => {
                return sagaway_common::http::Problem::new(
                    http::StatusCode::GONE,
                    TRANSFER_LOST,
                    "this bank issued the transfer but has no record of it: do not presume it aborted; keep the leg in doubt for an operator",
                )
                .into_response();
            }
        };
        axum::Json(DecisionBody { decision }).into_response()
    }
}

/// The recipient check: the account's id at its bank, and its currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecipientBody {
    pub account_id: String,
    pub currency: String,
    /// The holder's user id, masked.
    pub holder: String,
}

pub fn decision_text(d: Decision) -> &'static str {
    match d {
        Decision::Commit => "COMMIT",
        Decision::Abort => "ABORT",
    }
}

pub fn parse_decision(text: &str) -> Option<Decision> {
    match text {
        "COMMIT" => Some(Decision::Commit),
        "ABORT" => Some(Decision::Abort),
        _ => None,
    }
}

/// A participant's reply as the coordinator reads it.
pub fn reply_of_ack(text: &str) -> Option<Reply> {
    parse_decision(text).map(Reply::Ack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_and_decisions_round_trip_and_garbage_is_refused() {
        for v in [Vote::Ready, Vote::Abort { reason: "insufficient_funds".into() }] {
            assert_eq!(VoteBody::from(&v).parse(), Some(v));
        }
        assert_eq!(VoteBody { vote: "MAYBE".into(), reason: None }.parse(), None);
        for d in [Decision::Commit, Decision::Abort] {
            assert_eq!(parse_decision(decision_text(d)), Some(d));
        }
        assert_eq!(parse_decision("commit"), None);
    }
}
