//! The saga's message contract: what the orchestrator asks of the product service and the payment
//! processor, and what they answer. JSON, tagged by `type`; the Kafka key is always the user id
//! (per-customer ordering) and the `message_type` header repeats the tag.
//!
//! Every command carries the `order_id`; every reply echoes it, so the orchestrator can route a
//! reply to its saga and ignore replies that no longer match the order's state.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Commands on `product.commands`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProductCommand {
    /// Verify the reservation is HELD, unexpired and the user's, and bind it to this order.
    LockReservation { order_id: String, reservation_id: String, user_id: String },
    /// Turn the hold into a sale (HELD → CONFIRMED). Idempotent for the order that holds it.
    ConfirmReservation { order_id: String, reservation_id: String },
    /// Give the stock back (HELD → RELEASED). Idempotent; a no-op on EXPIRED/RELEASED.
    ReleaseReservation { order_id: String, reservation_id: String, reason: String },
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
        order_id: String,
        reservation_id: String,
        product_id: u64,
        quantity: i32,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// The lock was refused: `reason` is `not_found`, `expired`, `released`, `confirmed`,
    /// `wrong_user` or `locked_by_other_order`.
    ReservationRejected { order_id: String, reservation_id: String, reason: String },
    ReservationConfirmed { order_id: String, reservation_id: String },
    /// The sale could not be confirmed (the hold expired or was released meanwhile): compensate.
    ReservationConfirmFailed { order_id: String, reservation_id: String, reason: String },
    /// The stock is back (or was already back): `status` is the reservation's final status.
    ReservationReleased { order_id: String, reservation_id: String, status: String },
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
/// PAN/CVC sealed with AES-GCM under the shared card key (never in clear on a topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardRef {
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
    pub fingerprint: String,
    /// base64(nonce ‖ AES-256-GCM ciphertext of `{"number":..,"cvc":..}`), bound to the order id as AAD.
    pub sealed: String,
}

/// Commands on `payment.commands`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentCommand {
    /// Capture `amount` from the card for the order. Idempotent per order.
    Charge {
        order_id: String,
        user_id: String,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        currency: String,
        card: CardRef,
    },
    /// Return a capture of the order (compensation). Idempotent; a no-op when nothing was captured.
    Refund { order_id: String, user_id: String, reason: String },
}

impl PaymentCommand {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Charge { .. } => "charge",
            Self::Refund { .. } => "refund",
        }
    }
}

/// Replies on `payment.replies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentReply {
    Charged {
        order_id: String,
        charge_id: String,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        /// ISO 4217 code of the capture; the orchestrator checks amount and currency against the order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currency: Option<String>,
    },
    /// A permanent refusal: `reason` is `card_declined`, `insufficient_funds`, `expired_card`,
    /// `incorrect_number`, `invalid_expiry` or `invalid_cvc`.
    Declined { order_id: String, reason: String },
    /// The charge failed transiently after its retry budget and was dead-lettered.
    Failed { order_id: String, error_class: String, reason: String, attempts: u32 },
    Refunded {
        order_id: String,
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
