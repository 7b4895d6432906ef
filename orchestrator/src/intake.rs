//! `POST /payment`: the front door. Read top-down, this is where an order begins:
//!
//! 0. the caller is the bearer token's subject (checked by the router's guard); a body `user_id`
//!    naming anyone else is 403 `user_mismatch`;
//! 1. validate the body (problem+json 422 naming the field; card number, expiry and CVC checked, or
//!    for an account payment the bank — one of `ORCHESTRATOR_BANKS`, else `unknown_bank` — and the
//!    account id's form; whether the account exists, is the user's and has the funds is the bank's
//!    to say, when the charge asks it: a refusal declines the order);
//! 2. claim the `Idempotency-Key`, if any (replay / 422 / 409, see [`crate::idempotency`]);
//! 3. read the reservation from the product service, as the caller (their token is relayed, so
//!    another user's reservation is simply not found): it must exist, be the user's, be HELD and
//!    unexpired; the amount is the reservation's total, never a client figure;
//! 4. in ONE transaction: the two-minute duplicate guard, the order (card sealed, never in clear; or the account),
//!    its first history entry, and the outbox rows for `order_queue` and `order.events`;
//! 5. answer 202 `{order_id, status, status_url}`. The saga takes it from there
//!    ([`crate::saga`]).

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Datelike;
use sagaway_common::{auth::{self, Caller}, card::{self, CardInput}, http::{ApiJson, Problem}};
use sagaway_messaging::{outbox::{self, Outgoing}, topics};
use sagaway_contract::{
    ids::{OrderId, UserId},
    messages::{AccountRef, MethodRef},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use sagaway_messaging::db::is_retryable_conflict;

use crate::{
    AppState,
    product_client::ReservationInfo,
    error::{ApiError, ApiResult},
    guard,
    idempotency::{self, Claim},
    orders,
    saga::{OrderAccepted, machine::OrderStatus},
};

/// `POST /payment` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub reservation_id: String,
    /// Optional; must equal the token's subject when present. Replaced by it after parsing.
    #[serde(default)]
    pub user_id: Option<String>,
    pub payment_method: PaymentMethod,
}

/// A request that passed [`parse`].
#[derive(Debug)]
pub struct ValidRequest {
    pub reservation_id: String,
    pub user_id: Option<String>,
    pub method: Method,
}

/// `{type: "card", card: {...}}` or `{type: "account", bank, account_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethod {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub card: Option<CardInput>,
    #[serde(default)]
    pub bank: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
}

/// A validated payment method.
#[derive(Debug)]
pub enum Method {
    Card(CardInput),
    Account(AccountRef),
}

/// The `POST /payment` body as the handler takes it, for the document: exactly one payment method
/// (`card`, or `account` at one of `banks`); a card number of 13–19 digits that passes the Luhn
/// check (`format: card-number`), with a 4-digit CVC for American Express (34…/37…) and 3 digits
/// otherwise; an expiry not in the past as of `today` (year, month) and at most 50 years ahead.
pub fn payment_body_schema(banks: &[String], today: (u16, u8)) -> serde_json::Value {
    use serde_json::json;
    let (year, month) = today;
    let number = |pattern: &str| json!({"type": "string", "format": "card-number", "pattern": pattern, "example": "4242424242424242"});
    let brands = json!({"oneOf": [
        {"properties": {"number": number("^3[47][0-9]{13,17}$"), "cvc": {"type": "string", "pattern": "^[0-9]{4}$"}}},
        {"properties": {"number": number("^([0-24-9][0-9]{12,18}|3[0-35-9][0-9]{11,17})$"), "cvc": {"type": "string", "pattern": "^[0-9]{3}$", "example": "123"}}},
    ]});
    let expiry = json!({"anyOf": [
        {"properties": {"exp_year": {"minimum": year + 1}}},
        {"properties": {"exp_year": {"const": year}, "exp_month": {"minimum": month}}},
    ]});
    let card = json!({
        "type": "object", "additionalProperties": false, "required": ["number", "exp_month", "exp_year", "cvc"],
        "properties": {
            "number": {"type": "string"},
            "exp_month": {"type": "integer", "minimum": 1, "maximum": 12},
            "exp_year": {"type": "integer", "minimum": year, "maximum": year + 50},
            "cvc": {"type": "string"},
        },
        "allOf": [brands, expiry],
    });
    let none = json!({"type": "null"});
    let card_method = json!({
        "type": "object", "additionalProperties": false, "required": ["type", "card"],
        "properties": {"type": {"const": "card"}, "card": card, "bank": none, "account_id": none},
    });
    let account_method = json!({
        "type": "object", "additionalProperties": false, "required": ["type", "bank", "account_id"],
        "properties": {
            "type": {"const": "account"},
            "bank": {"type": "string", "enum": banks, "description": "a bank orders may be paid from (ORCHESTRATOR_BANKS)"},
            "account_id": {"type": "string", "format": "uuid", "description": "the account's id at that bank"},
            "card": none,
        },
    });
    json!({
        "type": "object", "additionalProperties": false, "required": ["reservation_id", "payment_method"],
        "properties": {
            "reservation_id": {"type": "string", "format": "uuid"},
            "user_id": {"type": ["string", "null"], "description": "optional: the bearer token's subject; anyone else is 403 user_mismatch"},
            "payment_method": {"oneOf": [card_method, account_method]},
        },
    })
}

/// The 202 answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentAccepted {
    pub order_id: String,
    pub status: String,
    pub status_url: String,
}

/// Accept a payment for a reservation.
#[utoipa::path(post, path = "/payment", request_body(content = Object, description = "the `PaymentRequest` schema (see `crate::document`)"), tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header, description = "Stripe-style idempotency key")),
    responses((status = 202, body = PaymentAccepted),
              (status = 401, description = "no or invalid bearer token"),
              (status = 403, description = "user_id names another user (user_mismatch)"),
              (status = 404, description = "no such reservation of yours"),
              (status = 409, description = "duplicate payment (names original_order_id), key in flight, or reservation not payable"),
              (status = 422, description = "invalid body, or Idempotency-Key reused with another body"),
              (status = 429, description = "per-user rate limit; see Retry-After")),
    security(("bearer" = [])))]
pub async fn create_payment(State(app): State<AppState>, caller: Caller, headers: HeaderMap, ApiJson(body): ApiJson<serde_json::Value>) -> Response {
    // 1. Validate before anything is recorded: invalid requests are never stored under a key.
    let mut request = match parse(&body, &app.config.banks) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    // 0. The caller is the user.
    match auth::acting_user(&caller, request.user_id.as_deref()) {
        Ok(user) => request.user_id = Some(user.into()),
        Err(p) => return (*p).into_response(),
    }
    // The key is the caller's (records are per caller); the body hashed names them too.
    let mut hashed = body.clone();
    hashed["user_id"] = serde_json::Value::String(caller.user_id.to_string());
    let key = match idempotency::key_from(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };

    // 2. Idempotency.
    let mut claim = None;
    if let Some(key) = &key {
        let hashes = idempotency::body_hashes(&app.config.card_key, &hashed);
        match idempotency::claim_matching(&app.pool, caller.user_id.as_str(), key, &hashes, app.config.idempotency_ttl, app.config.idempotency_lock).await {
            Ok(Claim::Fresh(ours)) => claim = Some(ours),
            Ok(Claim::Replay { status, body }) => {
                // A retry after a lost answer (the first attempt's process may have died between
                // its commit and its "payment accepted" line): logged in this request's trace too,
                // so every answer a client got has its line.
                let order_id = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|b| b["order_id"].as_str().map(str::to_string));
                tracing::info!(status = status.as_u16(), order_id = order_id.as_deref().unwrap_or_default(), "payment answered again from its idempotency record");
                return replayed(status, body);
            }
            Err(e) => return e.into_response(),
        }
    }

    // 3–4.
    let (status, body) = match accept(&app, &caller, &request, claim.as_ref()).await {
        Ok(accepted) => (StatusCode::ACCEPTED, serde_json::to_string(&accepted).expect("serialises")),
        Err(e) => {
            let problem = Problem::from(e);
            (problem.status_code(), serde_json::to_string(&problem).expect("serialises"))
        }
    };
    if let Some(claim) = &claim
        && status != StatusCode::ACCEPTED
    {
        // (A 202's answer was stored in the order's own transaction.)
        let stored = if status.is_server_error() {
            idempotency::release(&app.pool, claim).await
        } else {
            idempotency::complete(&app.pool, claim, status, &body).await
        };
        match stored {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the idempotency claim was taken over meanwhile; its new owner answers"),
            Err(e) => tracing::error!(error = %e, "could not record the idempotent response"),
        }
    }
    respond(status, body, false)
}

fn parse(body: &serde_json::Value, banks: &[String]) -> ApiResult<ValidRequest> {
    let request: PaymentRequest = serde_path_to_error::deserialize(body).map_err(|e| {
        let field = e.path().to_string();
        let message = sagaway_contract::redact::redact_digit_runs(&e.inner().to_string());
        ApiError::invalid(if field == "." { "body" } else { &field }, message)
    })?;
    if Uuid::parse_str(&request.reservation_id).is_err() {
        return Err(ApiError::invalid("reservation_id", "must be a reservation id (UUID)"));
    }
    let PaymentRequest { reservation_id, user_id, payment_method: m } = request;
    let method = match m.kind.as_str() {
        "card" => {
            for (field, given) in [("payment_method.bank", m.bank.is_some()), ("payment_method.account_id", m.account_id.is_some())] {
                if given {
                    return Err(ApiError::invalid(field, "only for a payment method of type \"account\""));
                }
            }
            let card = m.card.ok_or_else(|| ApiError::invalid("payment_method.card", "a card payment needs the card"))?;
            let now = chrono::Utc::now();
            if let Err(p) = card::validate(&card, (now.year() as u16, now.month() as u8)) {
                return Err(ApiError::Invalid { field: p.field.to_string(), code: p.code, message: p.message.to_string() });
            }
            Method::Card(card)
        }
        "account" => Method::Account(account(m, banks)?),
        _ => return Err(ApiError::invalid("payment_method.type", "must be \"card\" or \"account\"")),
    };
    Ok(ValidRequest { reservation_id, user_id, method })
}

/// An account payment method: a bank this orchestrator knows, and an account id of the form the
/// banks issue (a UUID, kept in its canonical lower-case form).
fn account(m: PaymentMethod, banks: &[String]) -> ApiResult<AccountRef> {
    if m.card.is_some() {
        return Err(ApiError::invalid("payment_method.card", "only for a payment method of type \"card\""));
    }
    let bank = m.bank.ok_or_else(|| ApiError::invalid("payment_method.bank", "an account payment needs the bank's 3-digit code"))?;
    if bank.len() != 3 || !bank.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid("payment_method.bank", "must be a 3-digit bank code"));
    }
    if !banks.contains(&bank) {
        return Err(ApiError::Invalid {
            field: "payment_method.bank".into(),
            code: "unknown_bank",
            message: format!("bank {bank} is not a bank orders can be paid from"),
        });
    }
    let account_id = m.account_id.ok_or_else(|| ApiError::invalid("payment_method.account_id", "an account payment needs the account's id"))?;
    let account_id = match Uuid::parse_str(&account_id) {
        Ok(id) if account_id.len() == 36 => id.to_string(),
        _ => return Err(ApiError::invalid("payment_method.account_id", "must be an account id (a UUID, as the bank answers it)")),
    };
    Ok(AccountRef { bank, account_id })
}

/// Steps 3–4: reservation checks, then the order and its outbox rows in one transaction.
async fn accept(app: &AppState, caller: &Caller, r: &ValidRequest, claim: Option<&idempotency::Claimed>) -> ApiResult<PaymentAccepted> {
    let reservation = app
        .product
        .reservation(&r.reservation_id, &caller.bearer())
        .await
        .map_err(ApiError::ProductUnavailable)?
        .ok_or_else(|| ApiError::ReservationNotFound(r.reservation_id.clone()))?;
    if reservation.user_id != caller.user_id {
        return Err(ApiError::ReservationNotOwned(r.reservation_id.clone()));
    }
    let expired = reservation.expires_at <= chrono::Utc::now();
    if reservation.status != "HELD" || expired {
        let status = if expired && reservation.status == "HELD" { "EXPIRED".to_string() } else { reservation.status };
        return Err(ApiError::ReservationNotPayable { reservation_id: r.reservation_id.clone(), status });
    }

    // Racing inserts of the same new guard row can deadlock in InnoDB; the victim simply runs
    // again and then finds the winner.
    let mut attempt = 0;
    let order_id = loop {
        attempt += 1;
        match record_order(app, &caller.user_id, r, &reservation, claim).await {
            Err(ApiError::Database(e)) if attempt < 8 && is_retryable_conflict(&e) => continue,
            other => break other?,
        }
    };
    app.relay.notify();
    let method = match &r.method {
        Method::Card(_) => "card",
        Method::Account(_) => "account",
    };
    metrics::counter!("payments_accepted_total", "method" => method).increment(1);
    tracing::info!(%order_id, user_id = %caller.user_id, reservation_id = %r.reservation_id, method, "payment accepted");
    Ok(accepted_answer(&order_id))
}

/// Step 4: the duplicate guard, the order, its history and outbox rows, in one transaction.
/// With an Idempotency-Key, its answer is recorded in the same transaction: a crash after the
/// commit can never leave an accepted order behind a key that still looks unanswered (whose retry
/// would then meet the duplicate rule instead of the replay).
async fn record_order(app: &AppState, user_id: &UserId, r: &ValidRequest, reservation: &ReservationInfo, claim: Option<&idempotency::Claimed>) -> ApiResult<OrderId> {
    let order_id = OrderId::new();
    let sealed;
    let method = match &r.method {
        Method::Card(input) => {
            sealed = card::seal(&app.config.card_key, &order_id, input);
            MethodRef::Card(&sealed)
        }
        Method::Account(account) => MethodRef::Account(account),
    };
    let mut tx = app.pool.begin().await?;

    if let guard::Guard::HeldBy(original_order_id) = guard::take(&mut tx, user_id, reservation.product_id, &order_id, app.config.duplicate_window).await? {
        tx.rollback().await?;
        metrics::counter!("payments_rejected_duplicate_total").increment(1);
        return Err(ApiError::DuplicatePayment { original_order_id });
    }
    let new_order = orders::NewOrder {
        id: &order_id,
        user_id,
        reservation_id: &r.reservation_id,
        product_id: reservation.product_id,
        quantity: reservation.quantity,
        amount: reservation.total_price,
        currency: &app.config.currency,
        method,
    };
    orders::insert(&mut tx, &new_order).await?;
    let cfg = &app.config.common;
    let event = orders::record_accepted(&mut tx, &order_id, user_id, &cfg.topic(topics::ORDER_EVENTS)).await?;
    let queued = Outgoing::json(
        cfg.topic(topics::ORDER_QUEUE),
        user_id,
        "order_accepted",
        &OrderAccepted { order_id: order_id.clone(), user_id: user_id.clone() },
    );
    outbox::enqueue_all(&mut tx, &[queued, event]).await?; // one multi-row INSERT
    if let Some(claim) = claim {
        let answer = accepted_answer(&order_id);
        let body = serde_json::to_string(&answer).expect("serialises");
        if !idempotency::complete(&mut *tx, claim, StatusCode::ACCEPTED, &body).await? {
            // We stalled past the lock timeout and another request took the key over: it decides.
            tx.rollback().await?;
            return Err(ApiError::IdempotencyKeyInFlight);
        }
    }
    tx.commit().await?;
    Ok(order_id)
}

fn accepted_answer(order_id: &str) -> PaymentAccepted {
    PaymentAccepted { status_url: format!("/orders/{order_id}"), order_id: order_id.to_string(), status: OrderStatus::Accepted.as_str().to_string() }
}

fn replayed(status: StatusCode, body: String) -> Response {
    respond(status, body, true)
}

fn respond(status: StatusCode, body: String, replayed: bool) -> Response {
    let content_type = if status.is_success() { "application/json" } else { "application/problem+json" };
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if replayed {
        res.headers_mut().insert(idempotency::REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    res
}
