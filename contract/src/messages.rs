//! The saga's message contract: what the orchestrator asks of the product service and the payment
//! processor, and what they answer. JSON, tagged by `type`; the Kafka key is always the user id
//! (per-customer ordering) and the `message_type` header repeats the tag.
//!
//! Every command carries the `order_id`; every reply echoes it, so the orchestrator can route a
//! reply to its saga and ignore replies that no longer match the order's state.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{OrderId, ReservationId, UserId};

/// Commands on `product.commands`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProductCommand {
    /// Verify the reservation is HELD, unexpired and the user's, and bind it to this order.
    LockReservation { order_id: OrderId, reservation_id: ReservationId, user_id: UserId },
    /// Turn the hold into a sale (HELD → CONFIRMED). Idempotent for the order that holds it.
    ConfirmReservation { order_id: OrderId, reservation_id: ReservationId },
    /// Give the stock back (HELD → RELEASED). Idempotent; a no-op on EXPIRED/RELEASED.
    ReleaseReservation { order_id: OrderId, reservation_id: ReservationId, reason: String },
}

impl ProductCommand {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LockReservation { .. } => "lock_reservation",
            Self::ConfirmReservation { .. } => "confirm_reservation",
            Self::ReleaseReservation { .. } => "release_reservation",
        }
    }
}

/// Replies on `product.replies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProductReply {
    ReservationLocked {
        order_id: OrderId,
        reservation_id: ReservationId,
        product_id: u64,
        quantity: i32,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// The lock was refused: `reason` is `not_found`, `expired`, `released`, `confirmed`,
    /// `wrong_user` or `locked_by_other_order`.
    ReservationRejected { order_id: OrderId, reservation_id: ReservationId, reason: String },
    ReservationConfirmed { order_id: OrderId, reservation_id: ReservationId },
    /// The sale could not be confirmed (the hold expired or was released meanwhile): compensate.
    ReservationConfirmFailed { order_id: OrderId, reservation_id: ReservationId, reason: String },
    /// The stock is back (or was already back): `status` is the reservation's final status.
    ReservationReleased { order_id: OrderId, reservation_id: ReservationId, status: String },
}

impl ProductReply {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ReservationLocked { .. } => "reservation_locked",
            Self::ReservationRejected { .. } => "reservation_rejected",
            Self::ReservationConfirmed { .. } => "reservation_confirmed",
            Self::ReservationConfirmFailed { .. } => "reservation_confirm_failed",
            Self::ReservationReleased { .. } => "reservation_released",
        }
    }
}

/// What the payment processor may know of a card: display fields, a keyed fingerprint, and the
/// PAN (and, in the first charge command only, the CVC) sealed with AES-GCM under the shared card
/// keys (never in clear on a topic). See `sagaway_common::card`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardRef {
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
    pub fingerprint: String,
    /// The number: `v2.<key id>.<base64(nonce ‖ AES-256-GCM ciphertext of {"number":..})>`, bound
    /// to the key id and the order id as AAD. (Unversioned base64 of `{"number":..,"cvc":..}` under
    /// the raw key: the form before key versioning, still opened.)
    pub sealed: String,
    /// The CVC, sealed the same way, apart: only the first charge command of an order carries it.
    /// Retries, dead letters and replays never do (PCI DSS 3.2: no CVC once authorization was tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_cvc: Option<String>,
}

/// A bank account an order is paid from: the bank's 3-digit code and the account's id there (a
/// UUID). The payment processor asks that bank over `bank.commands` (hold → capture).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    pub bank: String,
    pub account_id: String,
}

/// How a charge is paid: exactly one of a charge command's `card` and `account`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MethodRef<'a> {
    Card(&'a CardRef),
    Account(&'a AccountRef),
}

/// Commands on `payment.commands`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentCommand {
    /// Capture `amount` for the order from its card or its bank account (exactly one of the two).
    /// Idempotent per order. A card charge's JSON is what it always was (`card`, no `account`).
    Charge {
        order_id: OrderId,
        user_id: UserId,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        currency: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card: Option<CardRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<AccountRef>,
    },
    /// Return a capture of the order (compensation). Idempotent; a no-op when nothing was captured.
    Refund { order_id: OrderId, user_id: UserId, reason: String },
}

impl PaymentCommand {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Charge { .. } => "charge",
            Self::Refund { .. } => "refund",
        }
    }
}

/// What a charge is paid with, when it names exactly one method.
pub fn charge_method<'a>(card: Option<&'a CardRef>, account: Option<&'a AccountRef>) -> Result<MethodRef<'a>, String> {
    match (card, account) {
        (Some(c), None) => Ok(MethodRef::Card(c)),
        (None, Some(a)) => Ok(MethodRef::Account(a)),
        (None, None) => Err("a charge needs a card or an account".into()),
        (Some(_), Some(_)) => Err("a charge has a card or an account, not both".into()),
    }
}

/// Replies on `payment.replies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentReply {
    Charged {
        order_id: OrderId,
        charge_id: String,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        /// ISO 4217 code of the capture; the orchestrator checks amount and currency against the order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currency: Option<String>,
    },
    /// A permanent refusal: `reason` is `card_declined`, `insufficient_funds`, `expired_card`,
    /// `incorrect_number`, `invalid_expiry` or `invalid_cvc`.
    Declined { order_id: OrderId, reason: String },
    /// The charge failed transiently after its retry budget and was dead-lettered.
    Failed { order_id: OrderId, error_class: String, reason: String, attempts: u32 },
    Refunded {
        order_id: OrderId,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
}

impl PaymentReply {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Charged { .. } => "charged",
            Self::Declined { .. } => "declined",
            Self::Failed { .. } => "failed",
            Self::Refunded { .. } => "refunded",
        }
    }
}

/// Every consumed message is checked field by field at the edge (`sagaway_messaging::inbox::Incoming::json`):
/// a message that parses but carries a field no table or rule can take (an over-long id, an
/// amount finer than the ledger keeps, a bad currency) is malformed — dead-lettered at once with
/// the reason — instead of failing "transiently" in the database forever.
pub trait Validate {
    fn validate(&self) -> Result<(), String>;
}

/// Field checks shared by the messages.
pub mod check {
    use rust_decimal::Decimal;

    /// A UUID in its 36-character text form (order and reservation ids).
    pub fn uuid(field: &str, v: &str) -> Result<(), String> {
        if v.len() == 36 && uuid::Uuid::parse_str(v).is_ok() {
            Ok(())
        } else {
            Err(format!("{field} must be a UUID, got {} characters", v.chars().count()))
        }
    }

    /// 1 to `max` visible characters (user ids, charge ids, brands).
    pub fn text(field: &str, v: &str, max: usize) -> Result<(), String> {
        let n = v.chars().count();
        if n == 0 || n > max || v.chars().any(char::is_control) {
            return Err(format!("{field} must be 1-{max} visible characters, got {n}"));
        }
        Ok(())
    }

    /// Free text of at most `max` characters (reasons), possibly empty.
    pub fn note(field: &str, v: &str, max: usize) -> Result<(), String> {
        if v.chars().count() > max {
            return Err(format!("{field} must be at most {max} characters"));
        }
        Ok(())
    }

    /// A non-negative amount the ledger can hold exactly: DECIMAL(19,4).
    pub fn amount(field: &str, v: Decimal) -> Result<(), String> {
        if v.is_sign_negative() || v.normalize().scale() > 4 || v >= Decimal::from(1_000_000_000_000_000i64) {
            return Err(format!("{field} must be between 0 and 999999999999999.9999 with at most 4 decimals"));
        }
        Ok(())
    }

    /// An ISO 4217 code: three capital letters.
    pub fn currency(field: &str, v: &str) -> Result<(), String> {
        if v.len() == 3 && v.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err(format!("{field} must be a three-letter ISO 4217 code"))
        }
    }
}

const REASON_MAX: usize = 255;

impl Validate for CardRef {
    fn validate(&self) -> Result<(), String> {
        check::text("card.brand", &self.brand, 16)?;
        if self.last4.len() != 4 || !self.last4.chars().all(|c| c.is_ascii_digit()) {
            return Err("card.last4 must be 4 digits".into());
        }
        if !(1..=12).contains(&self.exp_month) {
            return Err("card.exp_month must be 1-12".into());
        }
        if self.fingerprint.len() != 64 || !self.fingerprint.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("card.fingerprint must be 64 hex characters".into());
        }
        check::text("card.sealed", &self.sealed, 4096)?;
        self.sealed_cvc.as_deref().map_or(Ok(()), |c| check::text("card.sealed_cvc", c, 4096))
    }
}

impl Validate for AccountRef {
    fn validate(&self) -> Result<(), String> {
        if self.bank.len() != 3 || !self.bank.bytes().all(|b| b.is_ascii_digit()) {
            return Err("account.bank must be a 3-digit bank code".into());
        }
        check::uuid("account.account_id", &self.account_id)
    }
}

// Ids (order, reservation, user) are not checked here: their types checked them as the message
// was parsed, so a message with a bad id is already malformed.

impl Validate for ProductCommand {
    fn validate(&self) -> Result<(), String> {
        match self {
            Self::LockReservation { .. } | Self::ConfirmReservation { .. } => Ok(()),
            Self::ReleaseReservation { reason, .. } => check::note("reason", reason, REASON_MAX),
        }
    }
}

impl Validate for ProductReply {
    fn validate(&self) -> Result<(), String> {
        match self {
            Self::ReservationLocked { quantity, amount, .. } => {
                if *quantity <= 0 {
                    return Err("quantity must be positive".into());
                }
                check::amount("amount", *amount)
            }
            Self::ReservationRejected { reason, .. } | Self::ReservationConfirmFailed { reason, .. } => check::note("reason", reason, REASON_MAX),
            Self::ReservationConfirmed { .. } => Ok(()),
            Self::ReservationReleased { status, .. } => {
                // The reservation's status after the release: RELEASED or EXPIRED (the stock is
                // back), CONFIRMED (sold), HELD (another order holds it), NOT_FOUND.
                if !matches!(status.as_str(), "RELEASED" | "EXPIRED" | "CONFIRMED" | "HELD" | "NOT_FOUND") {
                    return Err(format!("status must be a reservation status or NOT_FOUND, got {status:?}"));
                }
                Ok(())
            }
        }
    }
}

impl Validate for PaymentCommand {
    fn validate(&self) -> Result<(), String> {
        match self {
            Self::Charge { amount, currency, card, account, .. } => {
                check::amount("amount", *amount)?;
                check::currency("currency", currency)?;
                match charge_method(card.as_ref(), account.as_ref())? {
                    MethodRef::Card(c) => c.validate(),
                    MethodRef::Account(a) => a.validate(),
                }
            }
            Self::Refund { reason, .. } => check::note("reason", reason, REASON_MAX),
        }
    }
}

impl Validate for PaymentReply {
    fn validate(&self) -> Result<(), String> {
        match self {
            Self::Charged { charge_id, amount, currency, .. } => {
                check::text("charge_id", charge_id, 64)?;
                check::amount("amount", *amount)?;
                currency.as_deref().map_or(Ok(()), |c| check::currency("currency", c))
            }
            Self::Declined { reason, .. } => check::note("reason", reason, REASON_MAX),
            Self::Failed { error_class, reason, .. } => {
                check::note("error_class", error_class, 64)?;
                check::note("reason", reason, 1024)
            }
            Self::Refunded { amount, .. } => check::amount("amount", *amount),
        }
    }
}

/// Commands on `bank.commands`: paying an order from a bank account. `payment_id` is the order id;
/// each command is idempotent per payment at the bank. Sent keyed by the account id, so one
/// account's hold, capture, void and refund reach the bank in the order they were sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BankCommand {
    /// Set `amount` aside on the account (available → held), if `user_id` holds it and it has the funds.
    Hold {
        payment_id: String,
        account_id: String,
        #[serde(serialize_with = "crate::money::serialize", deserialize_with = "crate::money::deserialize")]
        amount: Decimal,
        currency: String,
        user_id: String,
    },
    /// Move the held amount to the bank's merchant account.
    Capture { payment_id: String },
    /// Give the held amount back to the account's available balance.
    Void { payment_id: String },
    /// Give a captured amount back from the merchant account.
    Refund { payment_id: String },
}

impl BankCommand {
    pub fn payment_id(&self) -> &str {
        match self {
            BankCommand::Hold { payment_id, .. }
            | BankCommand::Capture { payment_id }
            | BankCommand::Void { payment_id }
            | BankCommand::Refund { payment_id } => payment_id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            BankCommand::Hold { .. } => "hold",
            BankCommand::Capture { .. } => "capture",
            BankCommand::Void { .. } => "void",
            BankCommand::Refund { .. } => "refund",
        }
    }
}

impl Validate for BankCommand {
    fn validate(&self) -> Result<(), String> {
        let id = self.payment_id();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err("payment_id must be 1-64 visible ASCII characters".into());
        }
        if let BankCommand::Hold { account_id, amount, currency, user_id, .. } = self {
            if account_id.is_empty() || account_id.len() > 36 {
                return Err("account_id must be 1-36 characters".into());
            }
            let c: crate::money::Currency = currency.parse()?;
            c.check_price(*amount).map_err(|e| format!("amount {e}"))?;
            if !crate::ids::valid_user_id(user_id) {
                return Err("user_id is not a user id".into());
            }
        }
        Ok(())
    }
}

/// Replies on `bank.replies`, keyed like the command they answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankReply {
    /// held, declined, captured, voided, refunded or rejected.
    #[serde(rename = "type")]
    pub kind: String,
    pub payment_id: String,
    /// Why a hold was declined (`insufficient_funds`, `unknown_account`, `not_holder`,
    /// `currency_mismatch`) or a command rejected (`unknown_payment`, `not_held`, `not_captured`,
    /// `already_captured`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The kinds of [`BankReply`].
pub const BANK_REPLY_KINDS: &[&str] = &["held", "declined", "captured", "voided", "refunded", "rejected"];

impl Validate for BankReply {
    fn validate(&self) -> Result<(), String> {
        if !BANK_REPLY_KINDS.contains(&self.kind.as_str()) {
            return Err(format!("type must be one of {BANK_REPLY_KINDS:?}, got {:?}", self.kind));
        }
        check::text("payment_id", &self.payment_id, 64)?;
        self.reason.as_deref().map_or(Ok(()), |r| check::note("reason", r, REASON_MAX))
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    const ORDER: &str = "01a2322f-a469-7594-ae24-ba1e6929c12f";

    fn order() -> OrderId {
        ORDER.parse().unwrap()
    }

    fn user(u: &str) -> UserId {
        u.parse().unwrap()
    }

    #[test]
    fn a_refund_whose_order_id_no_column_can_hold_is_malformed() {
        let refund = |order_id: &str| serde_json::from_value::<PaymentCommand>(serde_json::json!({"type": "refund", "order_id": order_id, "user_id": "u", "reason": "r"}));
        assert!(refund(&"x".repeat(200)).unwrap_err().to_string().contains("order_id must be a UUID"));
        let good = refund(ORDER).unwrap();
        assert_eq!(good, PaymentCommand::Refund { order_id: order(), user_id: user("u"), reason: "r".into() });
        assert_eq!(good.validate(), Ok(()));
    }

    #[test]
    fn amounts_must_fit_the_ledger_exactly() {
        let reply = |amount: &str| PaymentReply::Refunded { order_id: order(), amount: amount.parse().unwrap() };
        assert!(reply("1.2345").validate().is_ok());
        assert!(reply("1.23450").validate().is_ok(), "trailing zeros are not precision");
        assert!(reply("1.23456").validate().is_err());
        assert!(reply("-1").validate().is_err());
        assert!(reply("1000000000000000").validate().is_err());
    }

    #[test]
    fn ids_users_statuses_and_currencies_are_checked() {
        let lock = |user: &str, reservation: &str| {
            serde_json::from_value::<ProductCommand>(serde_json::json!({"type": "lock_reservation", "order_id": ORDER, "reservation_id": reservation, "user_id": user}))
                .map_err(|e| e.to_string())
        };
        assert!(lock("alice", ORDER).unwrap().validate().is_ok());
        assert!(lock("", ORDER).unwrap_err().contains("user_id"));
        assert!(lock(&"a".repeat(65), ORDER).unwrap_err().contains("user_id"));
        assert!(lock("alice bob", ORDER).unwrap_err().contains("user_id"));
        assert!(lock("alice", "r-1").unwrap_err().contains("reservation_id must be a UUID"));
        let released = |s: &str| ProductReply::ReservationReleased { order_id: order(), reservation_id: ORDER.parse().unwrap(), status: s.into() };
        assert!(released("EXPIRED").validate().is_ok());
        assert!(released("GONE").validate().is_err());
        let charged = |c: &str| PaymentReply::Charged { order_id: order(), charge_id: "c1".into(), amount: Decimal::ONE, currency: Some(c.into()) };
        assert!(charged("USD").validate().is_ok());
        assert!(charged("usd").validate().is_err());
    }

    #[test]
    fn a_charge_names_exactly_one_method_and_card_charges_keep_their_json() {
        let account = AccountRef { bank: "001".into(), account_id: ORDER.into() };
        let charge = |card: Option<CardRef>, account: Option<AccountRef>| PaymentCommand::Charge {
            order_id: order(),
            user_id: user("alice"),
            amount: Decimal::ONE,
            currency: "USD".into(),
            card,
            account,
        };
        let card = CardRef {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2034,
            fingerprint: "a".repeat(64),
            sealed: "v2.k1.x".into(),
            sealed_cvc: None,
        };
        assert_eq!(charge(None, Some(account.clone())).validate(), Ok(()));
        assert_eq!(charge(Some(card.clone()), None).validate(), Ok(()));
        assert!(charge(None, None).validate().unwrap_err().contains("card or an account"));
        assert!(charge(Some(card.clone()), Some(account.clone())).validate().is_err());
        let bad_bank = AccountRef { bank: "1".into(), ..account.clone() };
        assert!(charge(None, Some(bad_bank)).validate().unwrap_err().contains("bank"));
        let bad_id = AccountRef { account_id: "merchant-USD".into(), ..account.clone() };
        assert!(charge(None, Some(bad_id)).validate().unwrap_err().contains("account_id"));

        // A card charge as it was written before accounts existed still reads, and writes the same.
        let old = serde_json::json!({"type": "charge", "order_id": ORDER, "user_id": "alice", "amount": "1", "currency": "USD",
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034, "fingerprint": "a".repeat(64), "sealed": "v2.k1.x"}});
        let parsed: PaymentCommand = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(parsed, charge(Some(card), None));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), old);
        let json = serde_json::to_value(charge(None, Some(account))).unwrap();
        assert_eq!(json["account"], serde_json::json!({"bank": "001", "account_id": ORDER}));
        assert!(json.get("card").is_none());
    }

    #[test]
    fn bank_messages_read_as_the_bank_writes_them() {
        let hold: BankCommand = serde_json::from_value(serde_json::json!(
            {"type": "hold", "payment_id": ORDER, "account_id": ORDER, "amount": "39.98", "currency": "USD", "user_id": "alice"}))
        .unwrap();
        assert_eq!(hold.validate(), Ok(()));
        assert_eq!(serde_json::to_value(&hold).unwrap()["amount"], "39.98");
        let reply: BankReply = serde_json::from_value(serde_json::json!({"type": "declined", "payment_id": ORDER, "reason": "insufficient_funds"})).unwrap();
        assert_eq!(reply.validate(), Ok(()));
        let odd = BankReply { kind: "maybe".into(), payment_id: ORDER.into(), reason: None };
        assert!(odd.validate().is_err());
    }
}
