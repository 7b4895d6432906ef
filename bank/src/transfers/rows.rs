//! A `transfers` row as stored, and the one SELECT that reads it (shared by the handlers, the
//! scheduler and the 2PC coordinator's decision).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TransferRow {
    pub id: String,
    pub kind: String,
    pub from_account: String,
    pub to_bank: String,
    pub to_account_number: String,
    pub to_account: Option<String>,
    pub amount: Decimal,
    pub currency: String,
    pub description: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub execute_at: Option<DateTime<Utc>>,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub interbank: bool,
    pub sources: Option<String>,
}

pub const SELECT_TRANSFER: &str = "SELECT id, kind, from_account, to_bank, to_account_number, to_account, amount, currency, description, \
     status, reason, execute_at, user_id, created_at, updated_at, interbank, sources FROM transfers";
