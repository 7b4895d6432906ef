//! Consolidated balances: the caller's accounts in this bank (from its own database) and in every
//! other bank of the directory, with totals per currency. The other banks are asked in parallel,
//! each bounded by the peer timeout, over the banks' signed channel
//! (`GET /interbank/accounts?holder=<user>`, [`super::peers::Peers::accounts_of`]): this bank
//! vouches for the caller it authenticated, and the caller's token never leaves it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_common::auth::Caller;
use sagaway_contract::money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AppState, accounts, error::ApiResult};

/// One account in one bank.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BankAccount {
    pub bank: String,
    pub id: String,
    pub number: String,
    pub currency: String,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "10.00")]
    pub available: Decimal,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "0.00")]
    pub held: Decimal,
    /// When its bank answered.
    #[serde(default = "Utc::now")]
    pub as_of: DateTime<Utc>,
}

/// The sum over the caller's accounts in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Total {
    pub currency: String,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "30.51")]
    pub available: Decimal,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "0.00")]
    pub held: Decimal,
}

/// `GET /me/balances`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Balances {
    pub accounts: Vec<BankAccount>,
    pub totals: Vec<Total>,
    /// Some bank did not answer in time: the totals miss its accounts.
    pub partial: bool,
    /// The banks that did not answer.
    pub unavailable: Vec<String>,
}

/// Totals per currency, in currency order. Pure.
pub fn totals(accounts: &[BankAccount]) -> Vec<Total> {
    let mut by: BTreeMap<&str, (Decimal, Decimal)> = BTreeMap::new();
    for a in accounts {
        let t = by.entry(&a.currency).or_default();
        t.0 += a.available;
        t.1 += a.held;
    }
    by.into_iter().map(|(c, (available, held))| Total { currency: c.to_string(), available, held }).collect()
}

pub async fn consolidated(app: &AppState, caller: &Caller) -> ApiResult<Balances> {
    let code = app.config.code.clone();
    let peers: Vec<String> = app.peers.directory().banks().into_iter().map(|e| e.code.clone()).filter(|c| *c != code).collect();
    let timeout = app.config.interbank.peer_timeout;
    let user = caller.user_id.to_string();
    let asks = peers.iter().map(|bank| {
        let (peers, user) = (app.peers.clone(), user.clone());
        async move { tokio::time::timeout(timeout, peers.accounts_of::<Vec<BankAccount>>(bank, &user)).await }
    });
    let (own, answers) = tokio::join!(accounts::of_holder(&app.pool, &code, &caller.user_id), futures::future::join_all(asks));
    let mut all: Vec<BankAccount> = own?
        .into_iter()
        .map(|a| BankAccount { bank: code.clone(), id: a.id, number: a.number, currency: a.currency, available: a.available, held: a.held, as_of: Utc::now() })
        .collect();
    let mut unavailable = Vec::new();
    for (bank, answer) in peers.iter().zip(answers) {
        match answer {
            Ok(Ok(mut accounts)) => {
                let now = Utc::now();
                for a in &mut accounts {
                    a.bank = bank.clone();
                    a.as_of = now;
                }
                all.extend(accounts);
            }
            Ok(Err(e)) => {
                tracing::warn!(bank, error = %e, "a bank did not answer for consolidated balances");
                unavailable.push(bank.clone());
            }
            Err(_) => {
                tracing::warn!(bank, "a bank did not answer in time for consolidated balances");
                unavailable.push(bank.clone());
            }
        }
    }
    all.sort_by(|a, b| (&a.bank, &a.currency, &a.number).cmp(&(&b.bank, &b.currency, &b.number)));
    Ok(Balances { totals: totals(&all), partial: !unavailable.is_empty(), unavailable, accounts: all })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(bank: &str, currency: &str, available: i64, held: i64) -> BankAccount {
        BankAccount {
            bank: bank.into(),
            id: "x".into(),
            number: "n".into(),
            currency: currency.into(),
            available: Decimal::new(available, 2),
            held: Decimal::new(held, 2),
            as_of: Utc::now(),
        }
    }

    #[test]
    fn totals_add_up_per_currency() {
        let all = [account("001", "BRL", 1000, 0), account("002", "BRL", 2050, 500), account("003", "BRL", 1, 0), account("002", "USD", 700, 0)];
        assert_eq!(
            totals(&all),
            vec![
                Total { currency: "BRL".into(), available: Decimal::new(3051, 2), held: Decimal::new(500, 2) },
                Total { currency: "USD".into(), available: Decimal::new(700, 2), held: Decimal::ZERO },
            ]
        );
        assert!(totals(&[]).is_empty());
    }
}
