//! Invitations to hold a joint account. Nobody becomes a co-holder by being named: opening a joint
//! account (`POST /accounts {"type": "joint", "holders": [...]}`) makes the opener its only holder
//! and sends every other named user an invitation. The invitee sees it in `GET /me/invitations`
//! and answers it (`POST /accounts/{id}/invitations/{user}/accept` or `.../decline`); only the
//! invitee can, and only accepting adds them to `account_holders` (from then on they see and operate
//! the account like its opener). A holder may withdraw a pending invitation
//! (`DELETE /accounts/{id}/invitations/{user}`). Until accepted the invitee cannot see the account,
//! operate it, or be listed among its holders: every check of who may operate an account reads
//! `account_holders`, which a pending invitation never touches.
//!
//! The lifecycle ([`Status`], [`respond`]) and who may answer ([`Responder`]) are pure; the SQL
//! below is their adapter.

use chrono::{DateTime, Utc};
use sagaway_common::http::Problem;
use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool};
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ApiResult},
    rules::account_number,
};

/// Where an invitation stands. PENDING → ACCEPTED | DECLINED | REVOKED; the last three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Accepted,
    Declined,
    Revoked,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Pending, Status::Accepted, Status::Declined, Status::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Accepted => "ACCEPTED",
            Status::Declined => "DECLINED",
            Status::Revoked => "REVOKED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What is done to an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The invitee joins: they become a holder.
    Accept,
    /// The invitee refuses.
    Decline,
    /// A holder withdraws the invitation.
    Revoke,
}

impl Answer {
    pub const ALL: [Answer; 3] = [Answer::Accept, Answer::Decline, Answer::Revoke];

    /// The status this answer leads to.
    pub fn target(self) -> Status {
        match self {
            Answer::Accept => Status::Accepted,
            Answer::Decline => Status::Declined,
            Answer::Revoke => Status::Revoked,
        }
    }

    /// Who may give it.
    pub fn responder(self) -> Responder {
        match self {
            Answer::Accept | Answer::Decline => Responder::Invitee,
            Answer::Revoke => Responder::Holder,
        }
    }
}

/// Who may give an answer: consent is the invitee's alone (not a holder's, not an admin's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responder {
    Invitee,
    Holder,
}

impl Responder {
    /// Whether `caller` may answer the invitation of `invitee` (`caller_holds`: the caller holds the account).
    pub fn allows(self, caller: &str, invitee: &str, caller_holds: bool) -> bool {
        match self {
            Responder::Invitee => caller == invitee,
            Responder::Holder => caller_holds,
        }
    }
}

/// What an answer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The invitation moves to this status (ACCEPTED: the invitee becomes a holder in the same transaction).
    Becomes(Status),
    /// It already is where the answer leads: answering again changes nothing.
    Unchanged,
}

/// An answer that no longer fits: the invitation was already answered otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the invitation is already {}", .0.as_str())]
pub struct AlreadyAnswered(pub Status);

impl AlreadyAnswered {
    /// The problem's `code` (409).
    pub fn code(self) -> &'static str {
        match self.0 {
            Status::Pending => "invitation_pending",
            Status::Accepted => "invitation_accepted",
            Status::Declined => "invitation_declined",
            Status::Revoked => "invitation_revoked",
        }
    }
}

/// The lifecycle: a pending invitation takes any answer; a final one takes only the answer that led
/// to it again (idempotent), and refuses the others.
pub fn respond(status: Status, answer: Answer) -> Result<Outcome, AlreadyAnswered> {
    match status {
        Status::Pending => Ok(Outcome::Becomes(answer.target())),
        done if done == answer.target() => Ok(Outcome::Unchanged),
        done => Err(AlreadyAnswered(done)),
    }
}

/// An invitation as the invitee (and the account's holders) see it. It names the account but shows
/// none of its money.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Invitation {
    pub account_id: String,
    /// This bank's code.
    #[sqlx(default)]
    pub bank: String,
    /// The account's number (`12345678-9`).
    pub number: String,
    /// joint.
    #[serde(rename = "type")]
    pub kind: String,
    pub currency: String,
    /// The invitee.
    pub user_id: String,
    /// The holder who named them.
    pub invited_by: String,
    /// PENDING, ACCEPTED, DECLINED or REVOKED.
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
}

const SELECT_INVITATION: &str = "SELECT i.account_id, a.number, a.kind, a.currency, i.user_id, i.invited_by, i.status, i.created_at, i.decided_at \
     FROM account_invitations i JOIN accounts a ON a.id = i.account_id";

fn view(bank: &str, mut row: Invitation) -> Invitation {
    row.bank = bank.to_string();
    row.number = account_number::display_stored(&row.number);
    row
}

/// Invites each of `invitees` to hold `account_id` (in the transaction that opens it).
pub async fn invite(conn: &mut MySqlConnection, account_id: &str, invitees: &[String], invited_by: &str, now: DateTime<Utc>) -> sqlx::Result<()> {
    for user in invitees {
        sqlx::query("INSERT INTO account_invitations (account_id, user_id, invited_by, status, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(account_id)
            .bind(user)
            .bind(invited_by)
            .bind(Status::Pending.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The invitations waiting for `user_id`'s answer, oldest first.
pub async fn pending_for(pool: &MySqlPool, bank: &str, user_id: &str) -> sqlx::Result<Vec<Invitation>> {
    let rows: Vec<Invitation> = sqlx::query_as(&format!("{SELECT_INVITATION} WHERE i.user_id = ? AND i.status = ? ORDER BY i.created_at, i.account_id"))
        .bind(user_id)
        .bind(Status::Pending.as_str())
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|r| view(bank, r)).collect())
}

/// The users invited to `account_id` who have not answered yet, in order.
pub async fn pending_of_account(pool: &MySqlPool, account_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT user_id FROM account_invitations WHERE account_id = ? AND status = ? ORDER BY user_id")
        .bind(account_id)
        .bind(Status::Pending.as_str())
        .fetch_all(pool)
        .await
}

/// Applies `answer` from `caller` to the invitation of `invitee` to `account_id`, in one
/// transaction (the invitation row locked): an accepted invitation adds the holder with it.
/// Refused: a caller who may not give this answer (403 `not_the_invitee` for accept/decline; 404 for
/// a revoke by someone not holding the account), no such invitation (404), one already answered
/// otherwise (409).
pub async fn apply(pool: &MySqlPool, bank: &str, caller: &str, account_id: &str, invitee: &str, answer: Answer, now: DateTime<Utc>) -> ApiResult<Invitation> {
    let responder = answer.responder();
    if responder == Responder::Invitee && !responder.allows(caller, invitee, false) {
        return Err(ApiError::Forbidden {
            code: "not_the_invitee",
            field: None,
            detail: "only the invited user can accept or decline an invitation".into(),
        });
    }
    if !sagaway_common::http::plausible_id(account_id, 36) || !sagaway_common::auth::valid_user_id(invitee) {
        return Err(ApiError::NotFound("invitation"));
    }
    let mut tx = pool.begin().await?;
    if responder == Responder::Holder && !super::is_holder(&mut *tx, account_id, caller).await? {
        return Err(ApiError::NotFound("account"));
    }
    let row: Option<Invitation> = sqlx::query_as(&format!("{SELECT_INVITATION} WHERE i.account_id = ? AND i.user_id = ? FOR UPDATE"))
        .bind(account_id)
        .bind(invitee)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(mut row) = row else {
        return Err(ApiError::NotFound("invitation"));
    };
    let status = Status::parse(&row.status).ok_or_else(|| anyhow::anyhow!("invitation status {:?}", row.status))?;
    match respond(status, answer) {
        Err(done) => return Err(Problem::new(http::StatusCode::CONFLICT, done.code(), done.to_string()).with("status", done.0.as_str()).into()),
        Ok(Outcome::Unchanged) => {}
        Ok(Outcome::Becomes(next)) => {
            sqlx::query("UPDATE account_invitations SET status = ?, decided_at = ? WHERE account_id = ? AND user_id = ?")
                .bind(next.as_str())
                .bind(now)
                .bind(account_id)
                .bind(invitee)
                .execute(&mut *tx)
                .await?;
            if next == Status::Accepted {
                sqlx::query("INSERT IGNORE INTO account_holders (account_id, user_id) VALUES (?, ?)").bind(account_id).bind(invitee).execute(&mut *tx).await?;
            }
            row.status = next.as_str().to_string();
            row.decided_at = Some(now);
            tracing::info!(account_id, status = next.as_str(), "account invitation answered");
        }
    }
    tx.commit().await?;
    Ok(view(bank, row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_invitation_takes_any_answer_and_a_final_one_only_its_own() {
        for a in Answer::ALL {
            assert_eq!(respond(Status::Pending, a), Ok(Outcome::Becomes(a.target())));
            for done in [Status::Accepted, Status::Declined, Status::Revoked] {
                let got = respond(done, a);
                if done == a.target() {
                    assert_eq!(got, Ok(Outcome::Unchanged), "{done:?} {a:?}");
                } else {
                    assert_eq!(got, Err(AlreadyAnswered(done)), "{done:?} {a:?}");
                }
            }
        }
        // No answer ever leads back to PENDING: a declined or revoked invitation never makes a holder.
        assert!(Answer::ALL.iter().all(|a| a.target() != Status::Pending));
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("pending"), None);
    }

    #[test]
    fn only_the_invitee_consents_and_only_a_holder_revokes() {
        for a in [Answer::Accept, Answer::Decline] {
            let r = a.responder();
            assert!(r.allows("bob", "bob", false));
            // A holder (the opener), or anyone else, cannot answer for the invitee.
            assert!(!r.allows("alice", "bob", true));
            assert!(!r.allows("mallory", "bob", false));
            // Byte-exact: no case folding.
            assert!(!r.allows("Bob", "bob", false));
        }
        let r = Answer::Revoke.responder();
        assert!(r.allows("alice", "bob", true));
        assert!(!r.allows("bob", "bob", false), "an invitee who holds nothing cannot revoke");
    }
}
