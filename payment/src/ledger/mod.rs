//! The double-entry ledger. Money only moves by [`transfer`], which writes one journal entry with
//! two postings of opposite sign, so every entry sums to zero by construction; `GET /ledger/summary`
//! checks it anyway. Postings are signed: positive = money into the account, negative = out of it.
//! Balances are sums of postings (never a stored counter that could drift).
//!
//! Accounts: `merchant` (seeded by the migration) and `customer:<user_id>`, created on first use.
//! A capture moves the amount from the customer to the merchant; a refund moves it back.
//!
//! The HTTP API (`GET /ledger/summary`, `GET /accounts/{id}`) is [`api`], over the functions here.

pub mod api;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_common::auth::Caller;
use sagaway_contract::money;
use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool, Row};
use utoipa::ToSchema;

/// The merchant's account: where captures go.
pub const MERCHANT: &str = "merchant";

/// The account id of a customer.
pub fn customer_account(user_id: &str) -> String {
    format!("customer:{user_id}")
}

/// An amount as replies carry it: DECIMAL(19,4)'s trailing zeros dropped, at least two decimals.
pub fn canonical(amount: Decimal) -> Decimal {
    let mut d = amount.normalize();
    if d.scale() < 2 {
        d.rescale(2);
    }
    d
}

/// Creates the customer's account if this is their first payment; returns its id.
pub async fn ensure_customer(conn: &mut MySqlConnection, user_id: &str) -> sqlx::Result<String> {
    let id = customer_account(user_id);
    sqlx::query("INSERT IGNORE INTO accounts (id, kind, user_id) VALUES (?, 'customer', ?)")
        .bind(&id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// Moves `amount` from account `from` to account `to` as one balanced journal entry of `kind`
/// (`capture` or `refund`) for `order_id`. The UNIQUE (order_id, kind) key makes a second capture
/// or refund of one order fail instead of moving money twice.
pub async fn transfer(
    conn: &mut MySqlConnection,
    order_id: &str,
    kind: &str,
    currency: &str,
    from: &str,
    to: &str,
    amount: Decimal,
) -> sqlx::Result<u64> {
    let entry_id = sqlx::query("INSERT INTO journal_entries (order_id, kind, currency, description) VALUES (?, ?, ?, ?)")
        .bind(order_id)
        .bind(kind)
        .bind(currency)
        .bind(format!("{kind} of order {order_id}: {from} -> {to}"))
        .execute(&mut *conn)
        .await?
        .last_insert_id();
    sqlx::query("INSERT INTO postings (entry_id, account_id, currency, amount) VALUES (?, ?, ?, ?), (?, ?, ?, ?)")
        .bind(entry_id)
        .bind(from)
        .bind(currency)
        .bind(-amount)
        .bind(entry_id)
        .bind(to)
        .bind(currency)
        .bind(amount)
        .execute(&mut *conn)
        .await?;
    Ok(entry_id)
}

/// One account's balance in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountBalance {
    pub account_id: String,
    /// `customer` or `merchant`.
    pub kind: String,
    pub currency: String,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "-19.99")]
    pub balance: Decimal,
}

/// `GET /ledger/summary`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerSummary {
    /// True when total debits equal total credits and every journal entry sums to zero.
    pub balanced: bool,
    /// Sum of the outgoing (negative) postings, as a positive amount.
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String)]
    pub total_debits: Decimal,
    /// Sum of the incoming (positive) postings.
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String)]
    pub total_credits: Decimal,
    /// Journal entries whose postings do not sum to zero (always 0 unless something is very wrong).
    pub unbalanced_entries: i64,
    pub journal_entries: i64,
    /// Sum of every successful capture, refunded or not.
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String)]
    pub captured_total: Decimal,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String)]
    pub refunded_total: Decimal,
    /// Per account and currency (the stack uses one currency, so the totals above add up across them).
    pub accounts: Vec<AccountBalance>,
}

/// Balances of every account, and whether the books balance.
pub async fn load_summary(pool: &MySqlPool) -> sqlx::Result<LedgerSummary> {
    let mut conn = pool.acquire().await?;
    let totals = sqlx::query(
        "SELECT COALESCE(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END), 0) AS debits, \
                COALESCE(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) AS credits FROM postings",
    )
    .fetch_one(&mut *conn)
    .await?;
    let unbalanced_entries: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT e.id FROM journal_entries e LEFT JOIN postings p ON p.entry_id = e.id \
         GROUP BY e.id HAVING COALESCE(SUM(p.amount), 0) <> 0 OR COUNT(p.id) < 2) AS bad",
    )
    .fetch_one(&mut *conn)
    .await?;
    let journal_entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM journal_entries").fetch_one(&mut *conn).await?;
    let captured_total: Decimal = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS DECIMAL(19,4)) FROM charges WHERE status IN ('succeeded', 'refunded')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let refunded_total: Decimal =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(amount), 0) AS DECIMAL(19,4)) FROM refunds").fetch_one(&mut *conn).await?;
    let accounts = sqlx::query(
        "SELECT CAST(a.id AS CHAR) AS id, a.kind, p.currency, CAST(SUM(p.amount) AS DECIMAL(19,4)) AS balance FROM accounts a \
         JOIN postings p ON p.account_id = a.id GROUP BY a.id, a.kind, p.currency ORDER BY a.id, p.currency",
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| AccountBalance { account_id: r.get("id"), kind: r.get("kind"), currency: r.get("currency"), balance: r.get("balance") })
    .collect();
    let total_debits: Decimal = totals.get("debits");
    let total_credits: Decimal = totals.get("credits");
    Ok(LedgerSummary {
        balanced: total_debits == total_credits && unbalanced_entries == 0,
        total_debits,
        total_credits,
        unbalanced_entries,
        journal_entries,
        captured_total,
        refunded_total,
        accounts,
    })
}

/// One posting as `GET /accounts/{id}` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PostingView {
    pub entry_id: u64,
    pub order_id: String,
    /// `capture` or `refund`.
    pub kind: String,
    pub currency: String,
    /// Positive = into this account, negative = out of it.
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub at: DateTime<Utc>,
}

/// `GET /accounts/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub kind: String,
    pub user_id: Option<String>,
    /// One balance per currency the account has moved money in.
    pub balances: Vec<CurrencyBalance>,
    /// The latest 100 postings, newest first.
    pub postings: Vec<PostingView>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyBalance {
    pub currency: String,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String)]
    pub balance: Decimal,
}

/// The account `id` with its balances and latest postings, if `caller` may see it: customers their
/// own account; the merchant account and others' only admins (`None`, as if it did not exist).
pub async fn load_account(pool: &MySqlPool, caller: &Caller, id: &str) -> sqlx::Result<Option<AccountView>> {
    let mut conn = pool.acquire().await?;
    let Some(row) = sqlx::query("SELECT CAST(id AS CHAR) AS id, kind, CAST(user_id AS CHAR) AS user_id, created_at FROM accounts WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .filter(|row| caller.is_admin() || row.get::<Option<&str>, _>("user_id") == Some(caller.user_id.as_str()))
    else {
        return Ok(None);
    };
    let balances = sqlx::query(
        "SELECT currency, CAST(SUM(amount) AS DECIMAL(19,4)) AS balance FROM postings WHERE account_id = ? \
         GROUP BY currency ORDER BY currency",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| CurrencyBalance { currency: r.get("currency"), balance: r.get("balance") })
    .collect();
    let postings = sqlx::query(
        "SELECT p.entry_id, e.order_id, e.kind, p.currency, p.amount, e.created_at FROM postings p \
         JOIN journal_entries e ON e.id = p.entry_id WHERE p.account_id = ? ORDER BY p.id DESC LIMIT 100",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| PostingView {
        entry_id: r.get("entry_id"),
        order_id: r.get("order_id"),
        kind: r.get("kind"),
        currency: r.get("currency"),
        amount: r.get("amount"),
        at: r.get("created_at"),
    })
    .collect();
    Ok(Some(AccountView {
        id: row.get("id"),
        kind: row.get("kind"),
        user_id: row.get("user_id"),
        balances,
        postings,
        created_at: row.get("created_at"),
    }))
}
