//! What each `/admin/dlq` route does with the database, audited: the reads (list, show, the audit
//! log) and the replay / abandon / resolve / purge loops, one transaction per dead letter (per chunk for
//! purges) with its audit item inside it. No HTTP here: [`super::api`] parses and checks the
//! request ([`OperationRequest`]), calls one of these, and answers with what it returns.

use std::collections::BTreeMap;

use sagaway_common::rate::TokenBucket;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::MySqlConnection;
use utoipa::ToSchema;

use super::{Outcome, PENDING, abandon, audit, purge, replay, resolve, store};
use crate::{AppState, orders, saga::SagaContext};

/// A dead letter with its payload, its order's current status, and its audit trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub dead_letter: store::DeadLetter,
    /// The order's status now (absent when the message named no known order).
    pub order_status: Option<String>,
    /// Operations on this dead letter, newest first.
    pub audit: Vec<audit::AuditEntry>,
}

/// Which dead letters an operation applies to: `ids`, or a `filter`, or `all: true`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationRequest {
    #[serde(default, deserialize_with = "sagaway_contract::json::optional_integrals")]
    pub ids: Option<Vec<u64>>,
    pub filter: Option<store::Filter>,
    /// Every dead letter in the default status (PENDING for replay, abandon and resolve; all but PURGED for purge).
    #[serde(default)]
    pub all: bool,
    /// At most this many (oldest first).
    #[serde(default, deserialize_with = "sagaway_contract::json::optional_integral")]
    pub limit: Option<u32>,
    /// Replay, resolve and purge: say what would happen, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Purge only: also purge PENDING dead letters whose order is already settled (terminal) or unknown.
    #[serde(default)]
    pub force: bool,
    /// Replay only: at most this many per second (token bucket).
    pub rate: Option<f64>,
    /// Resolve only (and required there): why the letter needs nothing more — what was done by
    /// hand. Kept in the letter's `status_reason` and the audit trail.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What an operation did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperationResult {
    /// The `dlq_audit` entry recording it.
    pub audit_id: u64,
    pub operation: String,
    pub dry_run: bool,
    /// Outcome → how many dead letters had it.
    pub summary: BTreeMap<String, usize>,
    pub outcomes: Vec<Outcome>,
}

/// Dead letters purged per transaction.
const PURGE_CHUNK: usize = 100;

/// A page of dead letters matching `filter`; the look is audited with what was `asked`.
pub async fn list(app: &AppState, who: &str, filter: &store::Filter, page: u32, per_page: u32, asked: &Value) -> sqlx::Result<(i64, Vec<store::DeadLetter>)> {
    let mut conn = app.pool.acquire().await?;
    let found = store::list(&mut conn, filter, &app.config.common.topic_prefix, page, per_page).await?;
    audit::record(&mut conn, who, "list", asked, &[]).await?;
    Ok(found)
}

/// Dead letter `id` with its order's status and its audit trail (`None`: there is none; the look
/// is audited either way).
pub async fn show(app: &AppState, who: &str, id: u64) -> sqlx::Result<Option<DeadLetterDetail>> {
    let mut conn = app.pool.acquire().await?;
    let found = store::load(&mut conn, id).await?;
    let outcome = Outcome::new(id, if found.is_some() { "shown" } else { "not_found" }, "");
    audit::record(&mut conn, who, "show", &json!({"id": id}), &[outcome]).await?;
    let Some(dead_letter) = found else { return Ok(None) };
    let order_status = match &dead_letter.order_id {
        Some(o) => orders::load(&mut conn, o).await?.map(|o| o.status),
        None => None,
    };
    let audit = audit::list(&mut conn, Some(id), None, 100).await?;
    Ok(Some(DeadLetterDetail { dead_letter, order_status, audit }))
}

/// Audit entries (of one dead letter, if given) older than `before`, newest first.
pub async fn audit_log(app: &AppState, dead_letter_id: Option<u64>, before: Option<u64>, limit: u32) -> sqlx::Result<Vec<audit::AuditEntry>> {
    let mut conn = app.pool.acquire().await?;
    audit::list(&mut conn, dead_letter_id, before, limit).await
}

/// Replays the selected (PENDING by default) dead letters, paced by `rate`; a dry run rolls each back.
pub async fn replay(app: &AppState, who: &str, req: &OperationRequest) -> sqlx::Result<OperationResult> {
    let t = SagaContext::new(&app.config);
    let mut conn = app.pool.acquire().await?;
    let ids = resolve_ids(req, &mut conn, Some(PENDING), &app.config.common.topic_prefix).await?;
    let audit_id = audit::begin(&mut conn, who, "replay", req.dry_run, &json!(req)).await?;
    let mut bucket = req.rate.filter(|_| !req.dry_run).map(TokenBucket::new);
    let mut outcomes = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(b) = bucket.as_mut() {
            b.acquire().await;
        }
        let mut tx = app.pool.begin().await?;
        let (outcome, enqueued) = replay::replay_one(&mut tx, &t, id, req.dry_run).await?;
        if req.dry_run {
            tx.rollback().await?;
            audit::item(&mut conn, audit_id, &outcome).await?;
        } else {
            audit::item(&mut tx, audit_id, &outcome).await?;
            tx.commit().await?;
        }
        if enqueued {
            app.relay.notify();
        }
        outcomes.push(outcome);
    }
    finish(&mut conn, audit_id, who, "replay", req, outcomes).await
}

/// Abandons the selected (PENDING by default) dead letters: their parked orders are compensated.
pub async fn abandon(app: &AppState, who: &str, req: &OperationRequest) -> sqlx::Result<OperationResult> {
    let t = SagaContext::new(&app.config);
    let mut conn = app.pool.acquire().await?;
    let ids = resolve_ids(req, &mut conn, Some(PENDING), &app.config.common.topic_prefix).await?;
    let audit_id = audit::begin(&mut conn, who, "abandon", false, &json!(req)).await?;
    let mut outcomes = Vec::with_capacity(ids.len());
    for id in ids {
        let mut tx = app.pool.begin().await?;
        let (outcome, enqueued) = abandon::abandon_one(&mut tx, &t, id).await?;
        audit::item(&mut tx, audit_id, &outcome).await?;
        tx.commit().await?;
        if enqueued {
            app.relay.notify();
        }
        outcomes.push(outcome);
    }
    finish(&mut conn, audit_id, who, "abandon", req, outcomes).await
}

/// Resolves the selected (PENDING by default) dead letters with the request's reason; a dry run
/// rolls each back.
pub async fn resolve(app: &AppState, who: &str, req: &OperationRequest) -> sqlx::Result<OperationResult> {
    let t = SagaContext::new(&app.config);
    let reason = req.reason.as_deref().unwrap_or_default().trim().to_string();
    let mut conn = app.pool.acquire().await?;
    let ids = resolve_ids(req, &mut conn, Some(PENDING), &app.config.common.topic_prefix).await?;
    let audit_id = audit::begin(&mut conn, who, "resolve", req.dry_run, &json!(req)).await?;
    let mut outcomes = Vec::with_capacity(ids.len());
    for id in ids {
        let mut tx = app.pool.begin().await?;
        let (outcome, enqueued) = resolve::resolve_one(&mut tx, &t, id, who, &reason, req.dry_run).await?;
        if req.dry_run {
            tx.rollback().await?;
            audit::item(&mut conn, audit_id, &outcome).await?;
        } else {
            audit::item(&mut tx, audit_id, &outcome).await?;
            tx.commit().await?;
        }
        if enqueued {
            app.relay.notify();
        }
        outcomes.push(outcome);
    }
    finish(&mut conn, audit_id, who, "resolve", req, outcomes).await
}

/// Purges the selected dead letters (resolved ones; PENDING only with `force`).
pub async fn purge(app: &AppState, who: &str, req: &OperationRequest) -> sqlx::Result<OperationResult> {
    let mut conn = app.pool.acquire().await?;
    let ids = resolve_ids(req, &mut conn, None, &app.config.common.topic_prefix).await?;
    let audit_id = audit::begin(&mut conn, who, "purge", req.dry_run, &json!(req)).await?;
    let mut outcomes = Vec::with_capacity(ids.len());
    // Purges touch only the dead-letter store, so they commit in chunks (one fsync per chunk, not
    // per letter); each letter's audit item still commits with its purge.
    for chunk in ids.chunks(PURGE_CHUNK) {
        let mut tx = app.pool.begin().await?;
        for &id in chunk {
            let outcome = purge::purge_one(&mut tx, id, req.force, req.dry_run).await?;
            audit::item(&mut tx, audit_id, &outcome).await?;
            outcomes.push(outcome);
        }
        tx.commit().await?;
    }
    finish(&mut conn, audit_id, who, "purge", req, outcomes).await
}

/// The ids an operation works on, in order: the given ones (deduplicated), or those its filter
/// (with `default_status` when it names none) selects; at most `limit`.
async fn resolve_ids(req: &OperationRequest, conn: &mut MySqlConnection, default_status: Option<&str>, prefix: &str) -> sqlx::Result<Vec<u64>> {
    if let Some(ids) = &req.ids {
        let mut seen = std::collections::HashSet::new();
        let mut ids: Vec<u64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        if let Some(limit) = req.limit {
            ids.truncate(limit as usize);
        }
        return Ok(ids);
    }
    let mut filter = req.filter.clone().unwrap_or_default();
    if filter.status.is_none() {
        filter.status = default_status.map(str::to_string);
    }
    store::select_ids(conn, &filter, prefix, req.limit).await
}

/// Stamps the end of an audited operation and sums up its outcomes.
async fn finish(conn: &mut MySqlConnection, audit_id: u64, who: &str, operation: &str, req: &OperationRequest, outcomes: Vec<Outcome>) -> sqlx::Result<OperationResult> {
    audit::finish(conn, audit_id).await?;
    let mut summary = BTreeMap::new();
    for o in &outcomes {
        *summary.entry(o.outcome.clone()).or_insert(0) += 1;
    }
    tracing::info!(operator = who, operation, dry_run = req.dry_run, ?summary, audit_id, "dlq operation");
    Ok(OperationResult { audit_id, operation: operation.to_string(), dry_run: req.dry_run, summary, outcomes })
}
