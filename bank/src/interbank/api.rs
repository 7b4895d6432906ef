//! The HTTP side: `/interbank/*`, called by other banks (every request signed: [`signed`] refuses
//! anything else with 401 before a handler runs), and `GET /me/balances`, called by customers.

use axum::{
    Extension, Json,
    body::{Body, Bytes},
    extract::{Path, Query, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use sagaway_common::{auth::Caller, http::Problem};
use serde::Deserialize;

use super::{AckBody, DecisionBody, LegBody, RecipientBody, VoteBody, auth, balances, coordinator, decision_text, participant};
use crate::{
    AppState, accounts,
    error::ApiResult,
    rules::{
        account_number::AccountNumber,
        interbank::{Illegal, ParticipantInput, PrepareRequest, Reply},
        interbank_auth::Request as Signed,
        mask,
    },
};

/// The bank that signed the request (set by [`signed`]).
#[derive(Debug, Clone)]
pub struct PeerBank(pub String);

/// The largest body a bank sends another (a prepare is well under 2 KiB).
const MAX_BODY: usize = 64 * 1024;

/// Refuses every request that is not signed by a bank of the directory (401, `code` says why:
/// unsigned, malformed, unknown_bank, bad_signature, stale, replayed); passes the rest on with
/// [`PeerBank`].
pub async fn signed(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "an inter-bank request body is at most 64 KiB").into_response();
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    let signed = Signed { method: parts.method.as_str(), path: &path, body: &bytes };
    let directory = app.peers.directory();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    match auth::authenticate(&app.pool, &directory, app.config.interbank.skew, auth::unix_now(), &signed, header).await {
        Ok(bank) => {
            parts.extensions.insert(PeerBank(bank));
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Err(auth::AuthError::Refused(refusal)) => {
            tracing::warn!(code = refusal.code(), %refusal, path, "inter-bank request refused");
            Problem::new(StatusCode::UNAUTHORIZED, refusal.code(), format!("inter-bank request refused: {refusal}")).into_response()
        }
        Err(auth::AuthError::Database(e)) => Problem::internal(&e).into_response(),
    }
}

fn conflict(illegal: &Illegal) -> Response {
    Problem::new(StatusCode::CONFLICT, "protocol_conflict", illegal.to_string()).into_response()
}

fn bad_request(detail: impl Into<String>) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_message", detail).into_response()
}

fn valid_tx_id(tx_id: &str) -> bool {
    uuid::Uuid::parse_str(tx_id).is_ok() && tx_id.len() == 36
}

/// Recipient check: the customer account with this number at this bank.
#[utoipa::path(get, path = "/interbank/accounts/{number}", tag = "interbank", params(("number" = String, Path)),
    responses((status = 200, body = RecipientBody), (status = 401, description = "not signed by a known bank"), (status = 404, description = "no such account")))]
pub async fn recipient(State(app): State<AppState>, Path(number): Path<String>) -> ApiResult<Response> {
    let Ok(number) = AccountNumber::parse(&number) else {
        return Ok(Problem::not_found("account_not_found", "no such account").into_response());
    };
    let Some(row) = accounts::by_number_in(&app.pool, &number).await? else {
        return Ok(Problem::not_found("account_not_found", "no such account").into_response());
    };
    Ok(Json(RecipientBody { account_id: row.id, currency: row.currency, holder: mask::holder(&row.owner_user) }).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderParams {
    pub holder: String,
}

/// The customer accounts a user holds at this bank, for the consolidated balances of the bank that
/// asks (`GET /me/balances` there). The asking bank vouches for the user: it authenticated them, and
/// its signature covers the query naming them. No user token is sent or accepted here: a bank never
/// hands a customer's token to another.
#[utoipa::path(get, path = "/interbank/accounts", tag = "interbank", params(("holder" = String, Query, description = "the user id the asking bank authenticated")),
    responses((status = 200, body = [crate::accounts::Account]), (status = 400, description = "no holder, or not a user id"), (status = 401, description = "not signed by a known bank")))]
pub async fn holder_accounts(
    State(app): State<AppState>,
    Extension(PeerBank(bank)): Extension<PeerBank>,
    query: Result<Query<HolderParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Ok(Query(HolderParams { holder })) = query else {
        return Ok(bad_request("expected ?holder=<user id>"));
    };
    if !sagaway_common::auth::valid_user_id(&holder) {
        return Ok(bad_request("holder must be a user id"));
    }
    let accounts = accounts::of_holder(&app.pool, &app.config.code, &holder).await?;
    tracing::debug!(peer = %bank, accounts = accounts.len(), "a bank asked for a customer's accounts on their behalf");
    Ok(Json(accounts).into_response())
}

/// Phase one, for one leg held here: hold the debit or record the pending credit, durably; READY,
/// or ABORT with the reason. Repeating it answers the same.
#[utoipa::path(post, path = "/interbank/tx/{tx_id}/prepare", tag = "interbank", params(("tx_id" = String, Path)),
    request_body(content = Object, content_type = "application/json", description = "the leg's prepare: tx_id, leg_index, currency, leg {bank, account, side, amount}, counterparts, initiator"),
    responses((status = 200, body = VoteBody), (status = 400, description = "malformed prepare"), (status = 401, description = "not signed by a known bank"),
              (status = 409, description = "a different prepare for the same leg")))]
pub async fn prepare(
    State(app): State<AppState>,
    Extension(PeerBank(bank)): Extension<PeerBank>,
    Path(tx_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let request: PrepareRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return Ok(bad_request(format!("not a prepare: {e}"))),
    };
    if !valid_tx_id(&tx_id) || request.tx_id != tx_id {
        return Ok(bad_request("tx_id must be a UUID and match the body's"));
    }
    if request.leg.bank != app.config.code {
        return Ok(bad_request(format!("leg {} is held at bank {}, not {}", request.leg_index, request.leg.bank, app.config.code)));
    }
    if request.leg.amount <= rust_decimal::Decimal::ZERO || request.leg.amount.scale() > 4 || request.currency.len() != 3 {
        return Ok(bad_request("the amount must be positive with at most 4 decimals, the currency 3 letters"));
    }
    let leg = request.leg_index;
    Ok(match participant::apply_alone(&app, &bank, &tx_id, leg, ParticipantInput::Prepare { request, account: None }).await? {
        Ok(Some(Reply::Vote(vote))) => Json(VoteBody::from(&vote)).into_response(),
        Ok(other) => Problem::internal(&format!("a prepare answered {other:?}")).into_response(),
        Err(illegal) => conflict(&illegal),
    })
}

async fn decide(app: AppState, bank: String, tx_id: String, body: Bytes, input: ParticipantInput) -> ApiResult<Response> {
    let Ok(LegBody { leg }) = serde_json::from_slice::<LegBody>(&body) else {
        return Ok(bad_request("expected {\"leg\": <index>}"));
    };
    if !valid_tx_id(&tx_id) || leg >= crate::rules::interbank::MAX_LEGS {
        return Ok(bad_request("tx_id must be a UUID and leg a leg index"));
    }
    Ok(match participant::apply_alone(&app, &bank, &tx_id, leg, input).await? {
        Ok(Some(Reply::Ack(d))) => Json(AckBody { ack: decision_text(d).into() }).into_response(),
        Ok(other) => Problem::internal(&format!("a decision answered {other:?}")).into_response(),
        Err(illegal) => conflict(&illegal),
    })
}

/// Phase two: settle the held debit / post the pending credit. Idempotent.
#[utoipa::path(post, path = "/interbank/tx/{tx_id}/commit", tag = "interbank", params(("tx_id" = String, Path)), request_body = LegBody,
    responses((status = 200, body = AckBody), (status = 401, description = "not signed by a known bank"), (status = 409, description = "the leg aborted or never said READY")))]
pub async fn commit(
    State(app): State<AppState>,
    Extension(PeerBank(bank)): Extension<PeerBank>,
    Path(tx_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    decide(app, bank, tx_id, body, ParticipantInput::Commit).await
}

/// Phase two: release the hold / drop the pending credit; for a transfer never seen here, remember
/// the abort (a late prepare is then refused). Idempotent.
#[utoipa::path(post, path = "/interbank/tx/{tx_id}/abort", tag = "interbank", params(("tx_id" = String, Path)), request_body = LegBody,
    responses((status = 200, body = AckBody), (status = 401, description = "not signed by a known bank"), (status = 409, description = "the leg committed")))]
pub async fn abort(State(app): State<AppState>, Extension(PeerBank(bank)): Extension<PeerBank>, Path(tx_id): Path<String>, body: Bytes) -> ApiResult<Response> {
    decide(app, bank, tx_id, body, ParticipantInput::Abort).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InquiryParams {
    pub leg: usize,
}

/// A leg in doubt asks its coordinator (this bank) what was decided.
#[utoipa::path(get, path = "/interbank/tx/{tx_id}", tag = "interbank", params(("tx_id" = String, Path), ("leg" = usize, Query)),
    responses((status = 200, body = DecisionBody, description = "the decision, or none yet"), (status = 401, description = "not signed by a known bank"),
              (status = 409, description = "the asking bank holds no such leg"),
              (status = 410, description = "transfer_lost: this bank issued the transfer but has no record of it (keep holding)")))]
pub async fn inquiry(
    State(app): State<AppState>,
    Extension(PeerBank(bank)): Extension<PeerBank>,
    Path(tx_id): Path<String>,
    query: Result<Query<InquiryParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Ok(Query(InquiryParams { leg })) = query else {
        return Ok(bad_request("expected ?leg=<index>"));
    };
    if !valid_tx_id(&tx_id) {
        return Ok(bad_request("tx_id must be a UUID"));
    }
    Ok(match coordinator::decision_for(&app, &tx_id, &bank, leg).await? {
        Ok(answer) => answer.into_response(),
        Err(illegal) => conflict(&illegal),
    })
}

/// The caller's accounts in every bank of the directory, with totals per currency. Other banks are
/// asked in parallel; one that does not answer within the peer timeout is named in `unavailable`
/// and the answer is `partial`.
#[utoipa::path(get, path = "/me/balances", tag = "accounts",
    responses((status = 200, body = balances::Balances)), security(("bearer" = [])))]
pub async fn my_balances(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<balances::Balances>> {
    Ok(Json(balances::consolidated(&app, &caller).await?))
}

/// One clearing position (see [`crate::ledger::clearing_positions`]).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ClearingPosition {
    pub peer: String,
    pub currency: String,
    /// Positive: this bank owes the peer; negative: the peer owes this bank.
    #[serde(serialize_with = "sagaway_contract::money::serialize")]
    #[schema(value_type = String, example = "40.00")]
    pub balance: rust_decimal::Decimal,
}

/// This bank's clearing positions with every peer (admins).
#[utoipa::path(get, path = "/admin/clearing", tag = "interbank",
    responses((status = 200, body = Vec<ClearingPosition>), (status = 403, description = "not an admin")), security(("bearer" = [])))]
pub async fn clearing(State(app): State<AppState>) -> ApiResult<Json<Vec<ClearingPosition>>> {
    let rows = crate::ledger::clearing_positions(&app.pool).await?;
    Ok(Json(rows.into_iter().map(|(peer, currency, balance)| ClearingPosition { peer, currency, balance }).collect()))
}

/// Documents the banks' own scheme in the OpenAPI document: `/interbank/*` takes no bearer token but
/// a request signed by a bank of the directory (applied after `BearerAuth`, which marks every route).
pub struct InterbankAuth;

impl utoipa::Modify for InterbankAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
        openapi.components.get_or_insert_with(Default::default).add_security_scheme(
            "interbank",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::rules::interbank_auth::HEADER_SIGNATURE,
                "Signed by the calling bank: x-interbank-bank, x-interbank-timestamp (unix seconds, within 30 s), x-interbank-nonce (never reused) and \
                 x-interbank-signature (Ed25519 over the canonical request, base64), checked against the bank's key in the directory (docs/banks.md).",
            ))),
        );
        for (path, item) in openapi.paths.paths.iter_mut().filter(|(p, _)| p.starts_with("/interbank/")) {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                op.security = Some(vec![SecurityRequirement::new("interbank", Vec::<String>::new())]);
                if let Some(r) = op.responses.responses.get_mut("401") {
                    *r = utoipa::openapi::ResponseBuilder::new().description("not signed by a bank of the directory, stale or replayed (problem+json)").build().into();
                }
            }
            let _ = path;
        }
    }
}
