//! The ledger's SQL adapter: writes a journal entry with its postings ([`crate::rules::ledger`]
//! builds them) and keeps each account's `available`/`held` equal to the sum of its postings, in the
//! caller's transaction. Also the bank's own accounts (cash and merchant, one each per currency;
//! clearing accounts per peer bank are opened by the inter-bank participant), numbered so that no
//! two can collide ([`SystemAccount`]).
//!
//! A posting to an account that does not exist is an error that aborts the caller's transaction:
//! [`lock`] fails on a missing account, [`post`] on a balance update that found no row, and the
//! `postings → accounts` foreign key refuses the row itself.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{MySqlConnection, MySqlPool};

use crate::rules::{
    account_number::SystemAccount,
    ledger::{Bucket, Leg, balanced},
};

/// Currencies the bank keeps accounts in (those `sagaway_contract::money` knows), in the order
/// that numbers the bank's own accounts: never reorder, only append.
pub const CURRENCIES: &[&str] = &["USD", "EUR", "BRL", "GBP", "CHF", "CAD", "AUD", "JPY", "KRW"];

/// A ledger account that is not there: the transaction that wanted it is rolled back.
fn missing(id: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("ledger account {id:?} does not exist"))
}

/// The cash account of `currency`: where deposits come from and withdrawals go (it may go negative:
/// its balance is minus the money customers hold).
pub fn cash_account(currency: &str) -> String {
    format!("cash-{currency}")
}

/// The merchant account of `currency`: captured order payments are credited here.
pub fn merchant_account(currency: &str) -> String {
    format!("merchant-{currency}")
}

/// The user id holding the merchant accounts.
pub const MERCHANT_USER: &str = "merchant";

/// Creates the cash and merchant accounts of every currency (idempotent; at start and in `migrate`).
pub async fn ensure_bank_accounts(pool: &MySqlPool, now: DateTime<Utc>) -> sqlx::Result<()> {
    for (i, currency) in CURRENCIES.iter().enumerate() {
        let number = |a: SystemAccount| a.number().ok_or_else(|| sqlx::Error::Protocol(format!("no system account number for {a:?}")));
        for (id, kind, number, owner) in [
            (cash_account(currency), "system", number(SystemAccount::Cash(i))?, "bank"),
            (merchant_account(currency), "merchant", number(SystemAccount::Merchant(i))?, MERCHANT_USER),
        ] {
            sqlx::query("INSERT IGNORE INTO accounts (id, number, kind, currency, owner_user, created_at) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(&id)
                .bind(number.digits())
                .bind(kind)
                .bind(currency)
                .bind(owner)
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query("INSERT IGNORE INTO account_holders (account_id, user_id) VALUES (?, ?)").bind(&id).bind(owner).execute(pool).await?;
            // An IGNOREd insert (the number taken by another account) would leave it missing.
            let there: Option<(String, String)> = sqlx::query_as("SELECT kind, currency FROM accounts WHERE id = ?").bind(&id).fetch_optional(pool).await?;
            if there.as_ref().is_none_or(|(k, c)| k != kind || c != currency) {
                return Err(sqlx::Error::Protocol(format!("the bank's account {id} could not be opened as {kind} {currency} (number {})", number.digits())));
            }
        }
    }
    Ok(())
}

/// The index of `currency` in [`CURRENCIES`] (what numbers its system accounts).
pub fn currency_index(currency: &str) -> Option<usize> {
    CURRENCIES.iter().position(|c| *c == currency)
}

/// Writes one balanced journal entry and applies its postings to the balances; returns the entry id.
/// The caller has locked the customer accounts involved and checked their funds.
pub async fn post(conn: &mut MySqlConnection, kind: &str, reference: &str, at: DateTime<Utc>, legs: &[Leg]) -> sqlx::Result<u64> {
    if !balanced(legs) {
        return Err(sqlx::Error::Protocol(format!("unbalanced journal entry {kind} {reference}")));
    }
    let journal = sqlx::query("INSERT INTO journal (kind, reference, created_at) VALUES (?, ?, ?)")
        .bind(kind)
        .bind(reference)
        .bind(at)
        .execute(&mut *conn)
        .await?
        .last_insert_id();
    // The balances first: each update takes its row's exclusive lock, so the foreign key's check of
    // the postings below finds the rows locked already. Inserted first, the postings' shared locks
    // on a busy account (a cash account) would deadlock two transactions upgrading them.
    for leg in legs {
        let sql = match leg.bucket {
            Bucket::Available => "UPDATE accounts SET available = available + ? WHERE id = ?",
            Bucket::Held => "UPDATE accounts SET held = held + ? WHERE id = ?",
        };
        let updated = sqlx::query(sql).bind(leg.amount).bind(&leg.account).execute(&mut *conn).await?.rows_affected();
        if updated != 1 {
            return Err(missing(&leg.account));
        }
    }
    let mut insert = sqlx::QueryBuilder::new("INSERT INTO postings (journal_id, account_id, bucket, amount) ");
    insert.push_values(legs, |mut row, leg| {
        row.push_bind(journal).push_bind(&leg.account).push_bind(leg.bucket.as_str()).push_bind(leg.amount);
    });
    insert.build().execute(&mut *conn).await?;
    Ok(journal)
}

/// A locked account's balances and what the rules need to know about it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Locked {
    pub id: String,
    pub kind: String,
    pub currency: String,
    pub available: Decimal,
    pub held: Decimal,
}

/// Locks `ids` (in id order, so two transactions locking the same accounts never deadlock) and
/// returns them in the order asked. Every one must exist: a missing account is an error (the
/// caller's transaction is rolled back), never a posting into nothing.
pub async fn lock(conn: &mut MySqlConnection, ids: &[&str]) -> sqlx::Result<Vec<Locked>> {
    lock_found(conn, ids).await?.into_iter().zip(ids).map(|(found, id)| found.ok_or_else(|| missing(id))).collect()
}

/// [`lock`] for accounts a request names, which may not exist (`None`: answered as not found).
pub async fn lock_found(conn: &mut MySqlConnection, ids: &[&str]) -> sqlx::Result<Vec<Option<Locked>>> {
    let mut sorted: Vec<&str> = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut found = Vec::new();
    for id in sorted {
        let row: Option<Locked> =
            sqlx::query_as("SELECT id, kind, currency, available, held FROM accounts WHERE id = ? FOR UPDATE").bind(id).fetch_optional(&mut *conn).await?;
        found.extend(row);
    }
    Ok(ids.iter().map(|id| found.iter().find(|a| a.id == *id).cloned()).collect())
}

/// This bank's clearing positions: per peer bank and currency, what it owes the peer (positive) or
/// is owed (negative). Across all banks they net to zero.
pub async fn clearing_positions(pool: &MySqlPool) -> sqlx::Result<Vec<(String, String, Decimal)>> {
    let rows: Vec<(String, String, Decimal)> =
        sqlx::query_as("SELECT id, currency, available FROM accounts WHERE id LIKE 'clearing:%' ORDER BY id").fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(id, currency, balance)| (id.split(':').nth(1).unwrap_or_default().to_string(), currency, balance)).collect())
}
