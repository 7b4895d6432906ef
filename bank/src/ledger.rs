//! The ledger's SQL adapter: writes a journal entry with its postings ([`crate::rules::ledger`]
//! builds them) and keeps each account's `available`/`held` equal to the sum of its postings, in the
//! caller's transaction. Also the bank's own accounts (cash and merchant, one each per currency).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{MySqlConnection, MySqlPool};

use crate::rules::{
    account_number::AccountNumber,
    ledger::{Bucket, Leg, balanced},
};

/// Currencies the bank keeps accounts in (those `sagaway_contract::money` knows).
pub const CURRENCIES: &[&str] = &["USD", "EUR", "BRL", "GBP", "CHF", "CAD", "AUD", "JPY", "KRW"];

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
        let n = 100 * (i as u32 + 1);
        for (id, kind, number, owner) in [
            (cash_account(currency), "system", AccountNumber::internal(n), "bank"),
            (merchant_account(currency), "merchant", AccountNumber::internal(n + 50), MERCHANT_USER),
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
        }
    }
    Ok(())
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
    let mut insert = sqlx::QueryBuilder::new("INSERT INTO postings (journal_id, account_id, bucket, amount) ");
    insert.push_values(legs, |mut row, leg| {
        row.push_bind(journal).push_bind(&leg.account).push_bind(leg.bucket.as_str()).push_bind(leg.amount);
    });
    insert.build().execute(&mut *conn).await?;
    for leg in legs {
        let sql = match leg.bucket {
            Bucket::Available => "UPDATE accounts SET available = available + ? WHERE id = ?",
            Bucket::Held => "UPDATE accounts SET held = held + ? WHERE id = ?",
        };
        sqlx::query(sql).bind(leg.amount).bind(&leg.account).execute(&mut *conn).await?;
    }
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
/// returns them in the order asked; a missing account is `None`.
pub async fn lock(conn: &mut MySqlConnection, ids: &[&str]) -> sqlx::Result<Vec<Option<Locked>>> {
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
