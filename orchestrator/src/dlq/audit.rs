//! The `dlq_audit` trail: every operation (reads included) with who ran it, when, what it was
//! given, and what happened to each dead letter it touched.
//!
//! An operation is audited as it runs: [`begin`] commits the operation row first, then each
//! dead letter's outcome is written by [`item`] inside the transaction that acts on it, so what
//! committed is always audited — even when the operation dies part-way — and an operation over
//! any number of dead letters fits. [`finish`] stamps the end.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{MySqlConnection, Row};
use utoipa::ToSchema;

use super::Outcome;

/// One audited operation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: u64,
    pub operator: String,
    pub at: DateTime<Utc>,
    /// When it ended; absent while running, or if it died part-way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// `list`, `show`, `replay`, `abandon` or `purge`.
    pub operation: String,
    pub dry_run: bool,
    /// The request as given (ids, filter, limit, rate).
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    pub outcomes: Vec<Outcome>,
}

/// Records the start of an operation (autocommit); returns its id.
pub async fn begin(conn: &mut MySqlConnection, operator: &str, operation: &str, dry_run: bool, request: &serde_json::Value) -> sqlx::Result<u64> {
    let done = sqlx::query("INSERT INTO dlq_audit (operator, operation, dry_run, request) VALUES (?, ?, ?, ?)")
        .bind(operator)
        .bind(operation)
        .bind(dry_run)
        .bind(request.to_string())
        .execute(conn)
        .await?;
    Ok(done.last_insert_id())
}

/// Records what happened to one dead letter — call it in the transaction that did it.
pub async fn item(conn: &mut MySqlConnection, audit_id: u64, outcome: &Outcome) -> sqlx::Result<()> {
    let detail: String = outcome.detail.chars().take(1024).collect();
    sqlx::query("INSERT INTO dlq_audit_items (audit_id, dead_letter_id, outcome, detail) VALUES (?, ?, ?, ?)")
        .bind(audit_id)
        .bind(outcome.dead_letter_id)
        .bind(&outcome.outcome)
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stamps the end of an operation.
pub async fn finish(conn: &mut MySqlConnection, audit_id: u64) -> sqlx::Result<()> {
    sqlx::query("UPDATE dlq_audit SET finished_at = NOW(6) WHERE id = ?").bind(audit_id).execute(conn).await?;
    Ok(())
}

/// A whole read operation (list, show) at once.
pub async fn record(
    conn: &mut MySqlConnection,
    operator: &str,
    operation: &str,
    request: &serde_json::Value,
    outcomes: &[Outcome],
) -> sqlx::Result<u64> {
    let id = begin(conn, operator, operation, false, request).await?;
    for o in outcomes {
        item(conn, id, o).await?;
    }
    finish(conn, id).await?;
    Ok(id)
}

/// Entries, newest first; only those touching `dead_letter_id` when given.
/// Up to `limit` entries older than entry `before` (all when `None`), newest first.
pub async fn list(conn: &mut MySqlConnection, dead_letter_id: Option<u64>, before: Option<u64>, limit: u32) -> sqlx::Result<Vec<AuditEntry>> {
    let before = before.unwrap_or(u64::MAX);
    const COLUMNS: &str = "SELECT id, operator, at, finished_at, operation, dry_run, request, outcomes FROM dlq_audit";
    let (by_letter, all) = (
        format!(
            "{COLUMNS} WHERE (id IN (SELECT audit_id FROM dlq_audit_items WHERE dead_letter_id = ?) \
             OR JSON_CONTAINS(dead_letter_ids, ?)) AND id < ? ORDER BY id DESC LIMIT ?"
        ),
        format!("{COLUMNS} WHERE id < ? ORDER BY id DESC LIMIT ?"),
    );
    let rows = match dead_letter_id {
        Some(id) => sqlx::query(&by_letter).bind(id).bind(id.to_string()).bind(before).bind(limit),
        None => sqlx::query(&all).bind(before).bind(limit),
    }
    .fetch_all(&mut *conn)
    .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        let id: u64 = r.get("id");
        // Entries from before per-item auditing carry their outcomes as JSON.
        let legacy: Option<String> = r.get("outcomes");
        let outcomes = match legacy {
            Some(json) => serde_json::from_str(&json).unwrap_or_default(),
            // Asked about one dead letter: only its outcome (an operation may have touched thousands).
            None => sqlx::query(
                "SELECT dead_letter_id, outcome, detail FROM dlq_audit_items WHERE audit_id = ? AND (? IS NULL OR dead_letter_id = ?) ORDER BY id",
            )
                .bind(id)
                .bind(dead_letter_id)
                .bind(dead_letter_id)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|i| Outcome { dead_letter_id: i.get("dead_letter_id"), outcome: i.get("outcome"), detail: i.get("detail") })
                .collect(),
        };
        entries.push(AuditEntry {
            id,
            operator: r.get("operator"),
            at: r.get("at"),
            finished_at: r.get("finished_at"),
            operation: r.get("operation"),
            dry_run: r.get::<i8, _>("dry_run") != 0,
            request: serde_json::from_str(&r.get::<String, _>("request")).unwrap_or(serde_json::Value::Null),
            outcomes,
        });
    }
    Ok(entries)
}
