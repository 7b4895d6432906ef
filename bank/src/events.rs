//! Status changes: each goes into `status_history` and, as an event, to `bank.events` (keyed by the
//! user it concerns) through the outbox, in the transaction of the change itself.

use chrono::{DateTime, SecondsFormat, Utc};
use sagaway_messaging::outbox::Outgoing;
use serde::Serialize;
use sqlx::MySqlConnection;

/// One status change.
pub struct Change<'a> {
    /// `operation`, `transfer` or `payment`.
    pub kind: &'static str,
    pub id: &'a str,
    pub account_id: &'a str,
    pub user_id: &'a str,
    pub status: &'static str,
    pub reason: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// The JSON of a `bank.events` message.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub account_id: &'a str,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    pub at: String,
}

/// Records `change` in the history and returns its event, for the caller to put in the outbox
/// (HTTP paths) or hand back to the consumer loop (which does).
pub async fn record(conn: &mut MySqlConnection, events_topic: &str, change: &Change<'_>) -> sqlx::Result<Outgoing> {
    sqlx::query("INSERT INTO status_history (subject_id, status, reason, at) VALUES (?, ?, ?, ?)")
        .bind(change.id)
        .bind(change.status)
        .bind(change.reason)
        .bind(change.at)
        .execute(&mut *conn)
        .await?;
    let event = Event {
        kind: change.kind,
        id: change.id,
        account_id: change.account_id,
        status: change.status,
        reason: change.reason,
        at: change.at.to_rfc3339_opts(SecondsFormat::Micros, true),
    };
    Ok(Outgoing::json(events_topic, change.user_id, &format!("{}_{}", change.kind, change.status.to_ascii_lowercase()), &event))
}

/// One entry of a status history as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

pub async fn history<'c>(conn: impl sqlx::Executor<'c, Database = sqlx::MySql>, subject_id: &str) -> sqlx::Result<Vec<HistoryEntry>> {
    sqlx::query_as("SELECT status, reason, at FROM status_history WHERE subject_id = ? ORDER BY id").bind(subject_id).fetch_all(conn).await
}
