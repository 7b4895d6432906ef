//! The admin HTTP API under `/admin/dlq` (admin role required; see [`crate::router`]). Every call is
//! audited with the operator's user id, the bearer token's subject (an `X-Operator` header, which
//! anyone could write, is ignored). Errors are problem documents; bad input is a 4xx.

// Handlers answer a `Problem` directly; its size only matters on the (cold) error path.
#![allow(clippy::result_large_err)]

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use sagaway_common::{
    auth::Caller,
    http::{ApiJson, ApiQuery, Problem},
    paging,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::{
    audit,
    operations::{self, DeadLetterDetail, OperationRequest, OperationResult},
    store,
};
use crate::{AppState, error::ApiError};

const MAX_IDS: usize = 10_000;

type DlqResult<T> = Result<T, Problem>;

/// A database error (its detail is logged, not answered).
fn db<E>(e: E) -> Problem
where
    ApiError: From<E>,
{
    ApiError::from(e).into()
}

fn invalid(field: &str, message: impl Into<String>) -> Problem {
    ApiError::invalid(field, message).into()
}

/// The dead-letter routes (mounted behind the admin guard by [`crate::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/dlq", get(list))
        .route("/admin/dlq/audit", get(audit_log))
        .route("/admin/dlq/replay", post(replay))
        .route("/admin/dlq/abandon", post(abandon))
        .route("/admin/dlq/resolve", post(resolve))
        .route("/admin/dlq/purge", post(purge))
        .route("/admin/dlq/{id}", get(show))
}

/// `GET /admin/dlq` parameters: the filter plus paging.
#[derive(Debug, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[param(min_length = 1, max_length = 255)]
    pub order_id: Option<String>,
    #[param(min_length = 1, max_length = 255)]
    pub error_class: Option<String>,
    /// Source topic, with or without the topic prefix.
    #[param(min_length = 1, max_length = 255)]
    pub topic: Option<String>,
    /// PENDING, REPLAYED, ABANDONED, RESOLVED or PURGED (default: all but PURGED).
    #[param(pattern = "^(PENDING|REPLAYED|ABANDONED|RESOLVED|PURGED)$")]
    pub status: Option<String>,
    /// The service that gave up (`payment`, `orchestrator`, `product`, `bank`).
    #[param(min_length = 1, max_length = 255)]
    pub service: Option<String>,
    /// `true`: only letters carrying a compensation step (release, refund, void); `false`: the others.
    pub compensation: Option<bool>,
    /// RFC 3339: failing at or after.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339: failing at or before (before `since`: nothing matches).
    pub until: Option<DateTime<Utc>>,
    /// 1-based (default 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub per_page: Option<u32>,
}

/// A page of dead letters.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterPage {
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
    pub items: Vec<store::DeadLetter>,
}

/// Dead letters matching the filter, oldest first (payloads left out; see `show`).
#[utoipa::path(get, path = "/admin/dlq", tag = "dlq", params(ListParams),
    responses((status = 200, body = DeadLetterPage), (status = 422, description = "invalid filter or paging")))]
pub async fn list(State(app): State<AppState>, caller: Caller, ApiQuery(p): ApiQuery<ListParams>) -> DlqResult<Json<DeadLetterPage>> {
    let who = caller.user_id.clone();
    let page = p.page.unwrap_or(1);
    let per_page = p.per_page.unwrap_or(50);
    if page == 0 || page > 1_000_000 {
        return Err(invalid("page", "must be between 1 and 1000000"));
    }
    if !(1..=500).contains(&per_page) {
        return Err(invalid("per_page", "must be between 1 and 500"));
    }
    let filter = store::Filter {
        order_id: p.order_id.clone(),
        error_class: p.error_class.clone(),
        topic: p.topic.clone(),
        status: p.status.clone(),
        service: p.service.clone(),
        compensation: p.compensation,
        since: p.since,
        until: p.until,
    };
    filter.validate()?;
    let (total, items) = operations::list(&app, &who, &filter, page, per_page, &json!(p)).await.map_err(db)?;
    Ok(Json(DeadLetterPage { total, page, per_page, items }))
}

fn parse_id(raw: &str) -> DlqResult<u64> {
    raw.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| invalid("id", "must be a positive integer"))
}

/// One dead letter, with its payload (redacted of card numbers; a charge's card is only sealed).
#[utoipa::path(get, path = "/admin/dlq/{id}", tag = "dlq", params(("id" = u64, Path, description = "dead letter id", minimum = 1)),
    responses((status = 200, body = DeadLetterDetail), (status = 404, description = "no such dead letter"), (status = 422, description = "malformed id")))]
pub async fn show(State(app): State<AppState>, caller: Caller, Path(raw): Path<String>) -> DlqResult<Json<DeadLetterDetail>> {
    let who = caller.user_id.clone();
    let id = parse_id(&raw)?;
    let detail = operations::show(&app, &who, id).await.map_err(db)?;
    Ok(Json(detail.ok_or_else(|| Problem::not_found("dead_letter_not_found", format!("dead letter {id} does not exist")))?))
}

impl OperationRequest {
    fn validate(&self, operation: &str) -> DlqResult<()> {
        if let Some(ids) = &self.ids {
            if ids.is_empty() || ids.len() > MAX_IDS {
                return Err(invalid("ids", format!("must hold 1-{MAX_IDS} ids")));
            }
            if ids.contains(&0) {
                return Err(invalid("ids", "ids are positive integers"));
            }
            if self.filter.is_some() || self.all {
                return Err(invalid("ids", "give ids, a filter or all: true — not several"));
            }
        }
        if let Some(f) = &self.filter {
            f.validate()?;
            if f.is_empty() {
                return Err(invalid("filter", "an empty filter selects everything; say all: true instead"));
            }
            if self.all {
                return Err(invalid("all", "give a filter or all: true, not both"));
            }
        }
        if self.ids.is_none() && self.filter.is_none() && !self.all {
            return Err(invalid("ids", "select dead letters: ids, a filter, or all: true"));
        }
        if self.limit.is_some_and(|l| l == 0 || l > 100_000) {
            return Err(invalid("limit", "must be between 1 and 100000"));
        }
        if operation == "abandon" && self.dry_run {
            return Err(invalid("dry_run", "only replay, resolve and purge take it, not abandon"));
        }
        match (&self.reason, operation) {
            (None, "resolve") => return Err(invalid("reason", "say why the dead letter needs nothing more (1-255 characters)")),
            (Some(r), "resolve") if r.trim().is_empty() || r.chars().count() > 255 => {
                return Err(invalid("reason", "must be 1-255 characters, not blank"));
            }
            (Some(_), op) if op != "resolve" => return Err(invalid("reason", format!("only resolve takes it, not {op}"))),
            _ => {}
        }
        if operation != "replay" && self.rate.is_some() {
            return Err(invalid("rate", format!("only replay takes it, not {operation}")));
        }
        if operation != "purge" && self.force {
            return Err(invalid("force", format!("only purge takes it, not {operation}")));
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0 && r <= 10_000.0)
        {
            return Err(invalid("rate", "must be a number of operations per second in (0, 10000]"));
        }
        Ok(())
    }
}

/// Replays dead letters onto their original topics (PENDING ones only; terminal orders are
/// recorded no-ops). `dry_run` changes nothing; `rate` paces the replays.
#[utoipa::path(post, path = "/admin/dlq/replay", tag = "dlq", request_body = OperationRequest,
    responses((status = 200, body = OperationResult), (status = 422, description = "invalid selection")))]
pub async fn replay(State(app): State<AppState>, caller: Caller, ApiJson(req): ApiJson<OperationRequest>) -> DlqResult<Json<OperationResult>> {
    req.validate("replay")?;
    Ok(Json(operations::replay(&app, &caller.user_id, &req).await.map_err(db)?))
}

/// Abandons dead letters: their parked (FAILED) orders are compensated (→ COMPENSATED).
#[utoipa::path(post, path = "/admin/dlq/abandon", tag = "dlq", request_body = OperationRequest,
    responses((status = 200, body = OperationResult), (status = 422, description = "invalid selection")))]
pub async fn abandon(State(app): State<AppState>, caller: Caller, ApiJson(req): ApiJson<OperationRequest>) -> DlqResult<Json<OperationResult>> {
    req.validate("abandon")?;
    Ok(Json(operations::abandon(&app, &caller.user_id, &req).await.map_err(db)?))
}

/// Resolves dead letters: marks them handled (RESOLVED) with the operator's `reason` (required).
/// Nothing is published. A compensation step its order still waits on (a release or refund that
/// was given up on) is marked settled by hand, and the order ends COMPENSATED once nothing else is
/// awaited; a parked order's charge letter is skipped (replay or abandon it). `dry_run` says what
/// would happen.
#[utoipa::path(post, path = "/admin/dlq/resolve", tag = "dlq", request_body = OperationRequest,
    responses((status = 200, body = OperationResult), (status = 422, description = "invalid selection or no reason")))]
pub async fn resolve(State(app): State<AppState>, caller: Caller, ApiJson(req): ApiJson<OperationRequest>) -> DlqResult<Json<OperationResult>> {
    req.validate("resolve")?;
    Ok(Json(operations::resolve(&app, &caller.user_id, &req).await.map_err(db)?))
}

/// Purges settled dead letters from the store (payload erased, marked PURGED): REPLAYED,
/// ABANDONED and RESOLVED ones; a PENDING one only with `force` once its order is settled (a PENDING letter of
/// a running or parked order is what an operator still needs to act on). `dry_run` says what would
/// happen. Records on the Kafka topic itself stay until retention removes them.
#[utoipa::path(post, path = "/admin/dlq/purge", tag = "dlq", request_body = OperationRequest,
    responses((status = 200, body = OperationResult), (status = 422, description = "invalid selection")))]
pub async fn purge(State(app): State<AppState>, caller: Caller, ApiJson(req): ApiJson<OperationRequest>) -> DlqResult<Json<OperationResult>> {
    req.validate("purge")?;
    Ok(Json(operations::purge(&app, &caller.user_id, &req).await.map_err(db)?))
}

#[derive(Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only entries that touched this dead letter.
    #[param(minimum = 1)]
    pub dead_letter_id: Option<i64>,
    /// At most this many, newest first (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page: `audit.<id>`.
    #[param(pattern = r"^(audit\.[0-9]{1,18})?$")]
    pub cursor: Option<String>,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<audit::AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

const AUDIT_CURSOR: &str = "audit";

/// The audit trail, newest first, a page at a time.
#[utoipa::path(get, path = "/admin/dlq/audit", tag = "dlq", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 422, description = "invalid parameters")))]
pub async fn audit_log(State(app): State<AppState>, ApiQuery(p): ApiQuery<AuditParams>) -> DlqResult<Json<AuditPage>> {
    let limit = paging::limit(p.limit, 100, 1000)?;
    if p.dead_letter_id.is_some_and(|id| id < 1) {
        return Err(invalid("dead_letter_id", "must be a positive integer"));
    }
    let before = paging::decode(AUDIT_CURSOR, p.cursor.as_deref())?
        .map(|key| paging::numeric_key(&key))
        .transpose()?;
    let rows = operations::audit_log(&app, p.dead_letter_id.map(|id| id as u64), before, limit + 1).await.map_err(db)?;
    let (items, next_cursor) = paging::page(rows, limit, |e| e.id.to_string(), AUDIT_CURSOR);
    Ok(Json(AuditPage { items, next_cursor }))
}

/// The request bodies of replay, abandon, resolve and purge as each route takes them: a selection
/// that is exactly one of `ids`, a non-empty `filter` or `all: true`, plus the options that
/// operation accepts (`dry_run` replay, resolve and purge, `rate` replay, `force` purge, `reason`
/// resolve, where it is required). [`OperationRequest`] is one type for all four; its rules ([`OperationRequest::validate`]) are spelt out here so that
/// a request the document allows is a request the handler takes.
pub fn operation_body_schema(operation: &str) -> serde_json::Value {
    let string = json!({"type": "string", "minLength": 1, "maxLength": 255});
    let filter = json!({
        "type": "object", "additionalProperties": false, "minProperties": 1,
        "description": "Dead letters matching every given field.",
        "properties": {
            "order_id": string, "error_class": string, "topic": string, "service": string,
            "status": {"type": "string", "enum": ["PENDING", "REPLAYED", "ABANDONED", "RESOLVED", "PURGED"]},
            "compensation": {"type": "boolean"},
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
        },
    });
    let ids = json!({"type": "array", "minItems": 1, "maxItems": MAX_IDS, "items": {"type": "integer", "minimum": 1, "maximum": u64::MAX}});
    let flag = |allowed: bool| if allowed { json!({"type": "boolean"}) } else { json!({"type": "boolean", "const": false}) };
    let mut options = serde_json::Map::new();
    options.insert("limit".into(), json!({"type": ["integer", "null"], "minimum": 1, "maximum": 100_000, "description": "At most this many (oldest first)."}));
    options.insert("dry_run".into(), flag(operation != "abandon"));
    options.insert("force".into(), flag(operation == "purge"));
    if operation == "resolve" {
        options.insert(
            "reason".into(),
            json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "\\S", "description": "Why it needs nothing more (what was done by hand)."}),
        );
    } else {
        options.insert("reason".into(), json!({"type": "null"}));
    }
    options.insert(
        "rate".into(),
        if operation == "replay" {
            json!({"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 10_000, "description": "At most this many per second."})
        } else {
            json!({"type": "null"})
        },
    );
    let branch = |selector: &str, schema: serde_json::Value| {
        let mut properties = options.clone();
        for other in ["ids", "filter"] {
            properties.insert(other.into(), json!({"type": "null"}));
        }
        properties.insert("all".into(), json!({"type": "boolean", "const": false}));
        properties.insert(selector.into(), schema);
        let required = if operation == "resolve" { json!([selector, "reason"]) } else { json!([selector]) };
        json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties})
    };
    json!({"oneOf": [branch("ids", ids), branch("filter", filter), branch("all", json!({"type": "boolean", "const": true}))]})
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn the_admin_api_is_in_the_openapi_document() {
        let doc = serde_json::to_value(crate::ApiDoc::openapi()).unwrap();
        for path in ["/admin/dlq", "/admin/dlq/{id}", "/admin/dlq/replay", "/admin/dlq/abandon", "/admin/dlq/resolve", "/admin/dlq/purge", "/admin/dlq/audit"] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert!(doc["components"]["schemas"]["OperationRequest"].is_object());
    }

    /// Resolve takes (and needs) a reason that says what was done by hand; no other operation
    /// takes one; the document says the same.
    #[test]
    fn resolve_needs_a_reason_and_only_resolve_takes_one() {
        use super::OperationRequest;
        let req = |reason: Option<&str>| OperationRequest { ids: Some(vec![1]), reason: reason.map(str::to_string), ..Default::default() };
        let field = |r: Result<(), sagaway_common::http::Problem>| serde_json::to_value(r.expect_err("refused")).unwrap()["field"].clone();
        assert!(req(Some("refunded by hand")).validate("resolve").is_ok());
        assert!(OperationRequest { dry_run: true, ..req(Some("x")) }.validate("resolve").is_ok(), "a dry run is allowed");
        for bad in [None, Some(""), Some("   ")] {
            assert_eq!(field(req(bad).validate("resolve")), "reason", "{bad:?}");
        }
        assert_eq!(field(req(Some(&"x".repeat(256))).validate("resolve")), "reason");
        for op in ["replay", "abandon", "purge"] {
            assert_eq!(field(req(Some("why")).validate(op)), "reason", "{op}");
            assert!(req(None).validate(op).is_ok(), "{op}");
        }
        let schema = super::operation_body_schema("resolve");
        for branch in schema["oneOf"].as_array().unwrap() {
            assert!(branch["required"].as_array().unwrap().contains(&serde_json::json!("reason")), "{branch}");
        }
        assert_eq!(super::operation_body_schema("replay")["oneOf"][0]["properties"]["reason"], serde_json::json!({"type": "null"}));
    }
}
