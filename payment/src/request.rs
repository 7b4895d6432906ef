//! A charge command as the steps read it: its fields, ids already typed, and how it is paid.

use rust_decimal::Decimal;
use sagaway_contract::{
    ids::{OrderId, UserId},
    messages::{AccountRef, CardRef},
};

/// A charge command's fields.
pub struct ChargeRequest {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub amount: Decimal,
    pub currency: String,
    pub method: Method,
}

/// What a charge is paid with.
pub enum Method {
    Card(CardRef),
    Account(AccountRef),
}

impl ChargeRequest {
    /// The card of a card charge.
    pub fn card(&self) -> Option<&CardRef> {
        match &self.method {
            Method::Card(c) => Some(c),
            Method::Account(_) => None,
        }
    }
}
