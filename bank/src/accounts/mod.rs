//! Accounts: their rows, views and queries. The HTTP API — open one (`POST /accounts`), list mine,
//! read one, its statement (newest first, opaque cursor), and the recipient check by number
//! (`GET /accounts/lookup?number=`: bank, type and the holder masked) — is [`api`], over the
//! functions here. Another user's account answers 404, exactly like a missing one. Co-holders of a
//! joint account join by accepting an invitation ([`invitations`]).

pub mod api;
pub mod invitations;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_common::{http::plausible_id, auth::{self, Caller}};
use sagaway_contract::money::{self, Currency};
use serde::{Deserialize, Serialize};
use sqlx::{MySqlConnection, MySqlPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    rules::{account_number, account_number::AccountNumber, documents},
};

/// An account as its holders see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    pub id: String,
    /// 8 digits and a mod-11 check digit: `12345678-9`.
    pub number: String,
    /// This bank's code.
    pub bank: String,
    /// individual, joint or business.
    #[serde(rename = "type")]
    pub kind: String,
    pub currency: String,
    /// User ids that may operate it: its opener, and the co-holders who accepted their invitation.
    pub holders: Vec<String>,
    /// Users invited to hold it who have not accepted yet (they cannot see or operate it until they do).
    pub invited: Vec<String>,
    /// The holder's document, masked (`*********25`); absent for joint accounts opened without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// What can be spent now.
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "500.00")]
    pub available: Decimal,
    /// Set aside for scheduled transfers and payment holds.
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "0.00")]
    pub held: Decimal,
    /// available + held.
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "500.00")]
    pub ledger: Decimal,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub number: String,
    pub kind: String,
    pub currency: String,
    pub owner_user: String,
    pub document: Option<String>,
    pub available: Decimal,
    pub held: Decimal,
    pub created_at: DateTime<Utc>,
}

const SELECT_ACCOUNT: &str = "SELECT id, number, kind, currency, owner_user, document, available, held, created_at FROM accounts";

/// The kinds of account a customer may open.
pub const CUSTOMER_KINDS: &[&str] = &["individual", "joint", "business"];

impl AccountRow {
    pub fn currency(&self) -> Currency {
        self.currency.parse().unwrap_or(Currency::USD)
    }

    pub fn is_customer(&self) -> bool {
        CUSTOMER_KINDS.contains(&self.kind.as_str())
    }
}

/// `POST /accounts` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// individual (needs a CPF), business (needs a CNPJ) or joint (needs `holders`).
    #[serde(rename = "type")]
    pub kind: String,
    /// ISO 4217 code (USD, EUR, BRL, …).
    pub currency: String,
    /// Joint accounts: the caller and the users invited to hold it with them (2 to 8 in all). The
    /// caller is its holder at once; every other user gets an invitation and becomes a holder only
    /// by accepting it.
    #[serde(default)]
    pub holders: Option<Vec<String>>,
    /// CPF (individual) or CNPJ (business); punctuation allowed.
    #[serde(default)]
    pub document: Option<String>,
}

/// What a validated request opens.
struct Opening {
    kind: &'static str,
    currency: Currency,
    /// The caller alone: nobody else holds an account without having agreed to.
    holder: String,
    /// Joint accounts: the other users named, each invited.
    invitees: Vec<String>,
    document: Option<String>,
}

fn validate(caller: &Caller, req: &NewAccount) -> ApiResult<Opening> {
    let kind = *CUSTOMER_KINDS
        .iter()
        .find(|k| **k == req.kind)
        .ok_or_else(|| ApiError::invalid("type", "must be individual, joint or business"))?;
    let currency: Currency = req.currency.parse().map_err(|e: String| ApiError::invalid("currency", e))?;
    let me = caller.user_id.to_string();
    let (holders, document) = match kind {
        "individual" | "business" => {
            if let Some(h) = &req.holders
                && h.as_slice() != std::slice::from_ref(&me)
            {
                return Err(ApiError::Forbidden {
                    code: "not_a_holder",
                    field: Some("holders"),
                    detail: format!("an {kind} account has one holder: the caller (leave holders out)"),
                });
            }
            let doc = req.document.as_deref().ok_or_else(|| ApiError::invalid("document", format!("an {kind} account needs a {}", if kind == "individual" { "CPF" } else { "CNPJ" })))?;
            let doc = if kind == "individual" { documents::cpf(doc) } else { documents::cnpj(doc) }.map_err(|e| ApiError::invalid("document", e))?;
            (vec![me.clone()], Some(doc))
        }
        _ => {
            let listed = req.holders.as_ref().ok_or_else(|| ApiError::invalid("holders", "a joint account needs two or more holders"))?;
            let mut holders: Vec<String> = Vec::new();
            for h in listed {
                if !auth::valid_user_id(h) {
                    return Err(ApiError::invalid("holders", "each holder is a user id (1-64 letters, digits, _ - . @ :)"));
                }
                if holders.contains(h) {
                    return Err(ApiError::invalid("holders", format!("{h} is listed twice")));
                }
                holders.push(h.clone());
            }
            if holders.len() < 2 || holders.len() > 8 {
                return Err(ApiError::invalid("holders", "a joint account has 2 to 8 distinct holders"));
            }
            if !holders.contains(&me) {
                return Err(ApiError::Forbidden { code: "not_a_holder", field: Some("holders"), detail: "the caller must be one of the holders".into() });
            }
            let doc = match req.document.as_deref() {
                Some(d) => Some(documents::cpf(d).map_err(|e| ApiError::invalid("document", e))?),
                None => None,
            };
            (holders, doc)
        }
    };
    let invitees = holders.into_iter().filter(|h| *h != me).collect();
    Ok(Opening { kind, currency, holder: me, invitees, document })
}

/// Inserts the account of a validated request (its holder, the invitations of a joint account and
/// its operation counter with it) and returns its id. The number is drawn at random; a number already taken is drawn again.
async fn open(pool: &MySqlPool, owner: &str, opening: &Opening, now: DateTime<Utc>) -> sqlx::Result<String> {
    let id = Uuid::now_v7().to_string();
    for attempt in 0.. {
        let number = AccountNumber::random(rand::random);
        let mut tx = pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (id, number, kind, currency, owner_user, document, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(number.digits())
        .bind(opening.kind)
        .bind(opening.currency.code())
        .bind(owner)
        .bind(&opening.document)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // The random number is taken: draw another.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempt < 10 => continue,
            Err(e) => return Err(e),
        }
        sqlx::query("INSERT INTO account_holders (account_id, user_id) VALUES (?, ?)").bind(&id).bind(&opening.holder).execute(&mut *tx).await?;
        invitations::invite(&mut tx, &id, &opening.invitees, &opening.holder, now).await?;
        sqlx::query("INSERT INTO account_sequences (account_id, next_seq) VALUES (?, 0)").bind(&id).execute(&mut *tx).await?;
        tx.commit().await?;
        tracing::info!(account_id = %id, kind = opening.kind, document = %opening.document.as_deref().map(documents::mask).unwrap_or_default(), "account opened");
        break;
    }
    Ok(id)
}

/// The customer accounts `user_id` holds, oldest first.
pub async fn of_holder(pool: &MySqlPool, bank: &str, user_id: &str) -> sqlx::Result<Vec<Account>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT a.id FROM accounts a JOIN account_holders h ON h.account_id = a.id WHERE h.user_id = ? AND a.kind IN ('individual', 'joint', 'business') ORDER BY a.created_at, a.id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(load(pool, bank, &id).await?);
    }
    Ok(out)
}

/// Loads an account's view.
pub async fn load(pool: &MySqlPool, bank: &str, id: &str) -> sqlx::Result<Option<Account>> {
    let Some(row): Option<AccountRow> = sqlx::query_as(&format!("{SELECT_ACCOUNT} WHERE id = ?")).bind(id).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let holders: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM account_holders WHERE account_id = ? ORDER BY user_id").bind(id).fetch_all(pool).await?;
    let invited = invitations::pending_of_account(pool, id).await?;
    Ok(Some(Account {
        number: account_number::display_stored(&row.number),
        bank: bank.to_string(),
        holders,
        invited,
        document: row.document.as_deref().map(documents::mask),
        ledger: row.available + row.held,
        id: row.id,
        kind: row.kind,
        currency: row.currency,
        available: row.available,
        held: row.held,
        created_at: row.created_at,
    }))
}

/// Whether `user_id` may operate account `id`.
pub async fn is_holder<'c>(conn: impl sqlx::Executor<'c, Database = sqlx::MySql>, id: &str, user_id: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar::<_, i32>("SELECT 1 FROM account_holders WHERE account_id = ? AND user_id = ?")
        .bind(id)
        .bind(user_id)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// 404 unless the caller holds account `id` or is an admin.
pub async fn may_see(pool: &MySqlPool, caller: &Caller, id: &str) -> ApiResult<()> {
    if !plausible_id(id, 36) || !(caller.is_admin() || is_holder(pool, id, &caller.user_id).await?) {
        return Err(ApiError::NotFound("account"));
    }
    Ok(())
}

/// The customer account `id` the caller may operate (holders only; anyone else 404).
pub async fn operable(pool: &MySqlPool, caller: &Caller, id: &str) -> ApiResult<AccountRow> {
    if !plausible_id(id, 36) || !is_holder(pool, id, &caller.user_id).await? {
        return Err(ApiError::NotFound("account"));
    }
    let row: Option<AccountRow> = sqlx::query_as(&format!("{SELECT_ACCOUNT} WHERE id = ?")).bind(id).fetch_optional(pool).await?;
    row.filter(AccountRow::is_customer).ok_or(ApiError::NotFound("account"))
}

/// A customer account by its number (the recipient of a transfer).
pub async fn by_number(conn: &mut MySqlConnection, number: &AccountNumber) -> sqlx::Result<Option<AccountRow>> {
    let row: Option<AccountRow> = sqlx::query_as(&format!("{SELECT_ACCOUNT} WHERE number = ?")).bind(number.digits()).fetch_optional(conn).await?;
    Ok(row.filter(AccountRow::is_customer))
}

/// [`by_number`] on a connection of `pool`.
pub async fn by_number_in(pool: &MySqlPool, number: &AccountNumber) -> sqlx::Result<Option<AccountRow>> {
    let mut conn = pool.acquire().await?;
    by_number(&mut conn, number).await
}

/// One posting on an account.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct StatementEntry {
    #[serde(skip)]
    pub posting_id: u64,
    pub at: DateTime<Utc>,
    /// deposit, withdrawal, transfer, transfer_hold, transfer_release, transfer_settle, payment_hold, …
    pub kind: String,
    /// The operation, transfer or payment id.
    pub reference: String,
    /// available or held.
    pub bucket: String,
    /// Signed: negative leaves the bucket.
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "-10.00")]
    pub amount: Decimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Statement {
    pub items: Vec<StatementEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Up to `limit` postings of account `id` older than posting `before`, newest first.
async fn postings(pool: &MySqlPool, id: &str, before: u64, limit: u32) -> sqlx::Result<Vec<StatementEntry>> {
    sqlx::query_as(
        "SELECT p.id AS posting_id, j.created_at AS at, j.kind, j.reference, p.bucket, p.amount \
         FROM postings p JOIN journal j ON j.id = p.journal_id WHERE p.account_id = ? AND p.id < ? ORDER BY p.id DESC LIMIT ?",
    )
    .bind(id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// What a payer may know of a recipient before paying.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recipient {
    pub bank: String,
    pub number: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub currency: String,
    /// The holder's user id, masked (`al***e`).
    pub holder: String,
}
