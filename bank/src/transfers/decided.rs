//! The end of an inter-bank transfer as this bank records it once the banks have decided. Apart
//! from [`super::interbank`] (which starts transfers through the coordinator) so the coordinator
//! can call it without a cycle.

use chrono::{DateTime, Utc};
use sagaway_messaging::outbox::Outgoing;
use sqlx::MySqlConnection;

use super::rows::{SELECT_TRANSFER, TransferRow};
use crate::{
    events::{self, Change},
    rules::{interbank::Decision, states::TransferStatus},
};

/// The banks decided inter-bank transfer `id`: PROCESSING → SETTLED (commit) or FAILED (abort,
/// with the reason), in the coordinator's transaction. Returns the events to put in the outbox.
pub async fn decided(
    conn: &mut MySqlConnection,
    events_topic: &str,
    id: &str,
    decision: Decision,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Outgoing>> {
    let row: Option<TransferRow> = sqlx::query_as(&format!("{SELECT_TRANSFER} WHERE id = ? FOR UPDATE")).bind(id).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(vec![]) };
    let from = TransferStatus::parse(&row.status).ok_or_else(|| sqlx::Error::Protocol(format!("transfer {id}: status {:?}", row.status)))?;
    let target = match decision {
        Decision::Commit => TransferStatus::Settled,
        Decision::Abort => TransferStatus::Failed,
    };
    let to = from.move_to(target).map_err(|e| sqlx::Error::Protocol(format!("transfer {id}: {e}")))?;
    let reason = (to == TransferStatus::Failed).then(|| reason.unwrap_or("aborted"));
    sqlx::query("UPDATE transfers SET status = ?, reason = ?, updated_at = ? WHERE id = ?")
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let event = events::record(
        conn,
        events_topic,
        &Change { kind: "transfer", id, account_id: &row.from_account, user_id: &row.user_id, status: to.as_str(), reason, at: now },
    )
    .await?;
    Ok(vec![event])
}
