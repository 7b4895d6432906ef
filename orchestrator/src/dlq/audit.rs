//! The `dlq_audit` trail: every operation (reads included) with who ran it, when, what it was
//! given and what happened to each dead letter it touched.

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
    /// `list`, `show`, `replay`, `abandon` or `purge`.
    pub operation: String,
    pub dry_run: bool,
    /// The request as given (ids, filter, limit, rate).
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    pub outcomes: Vec<Outcome>,
}

/// Appends an entry; returns its id.
pub async fn record(
    conn: &mut MySqlConnection,
    operator: &str,
    operation: &str,
    dry_run: bool,
    request: &serde_json::Value,
    outcomes: &[Outcome],
) -> sqlx::Result<u64> {
    let ids: Vec<u64> = outcomes.iter().map(|o| o.dead_letter_id).collect();
    let done = sqlx::query("INSERT INTO dlq_audit (operator, operation, dry_run, request, dead_letter_ids, outcomes) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(operator)
        .bind(operation)
        .bind(dry_run)
        .bind(request.to_string())
        .bind(serde_json::to_string(&ids).expect("ids serialise"))
        .bind(serde_json::to_string(outcomes).expect("outcomes serialise"))
        .execute(conn)
        .await?;
    Ok(done.last_insert_id())
}

/// Entries, newest first; only those touching `dead_letter_id` when given.
pub async fn list(conn: &mut MySqlConnection, dead_letter_id: Option<u64>, limit: u32) -> sqlx::Result<Vec<AuditEntry>> {
    let rows = match dead_letter_id {
        Some(id) => sqlx::query(
            "SELECT id, operator, at, operation, dry_run, request, outcomes FROM dlq_audit \
             WHERE JSON_CONTAINS(dead_letter_ids, ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(id.to_string())
        .bind(limit),
        None => sqlx::query("SELECT id, operator, at, operation, dry_run, request, outcomes FROM dlq_audit ORDER BY id DESC LIMIT ?").bind(limit),
    }
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| AuditEntry {
            id: r.get("id"),
            operator: r.get("operator"),
            at: r.get("at"),
            operation: r.get("operation"),
            dry_run: r.get::<i8, _>("dry_run") != 0,
            request: serde_json::from_str(&r.get::<String, _>("request")).unwrap_or(serde_json::Value::Null),
            outcomes: serde_json::from_str(&r.get::<String, _>("outcomes")).unwrap_or_default(),
        })
        .collect())
}
