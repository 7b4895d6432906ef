//! The Sagaway contract: what the services say to each other and to their clients, as types.
//!
//! Pure data and rules — no database, broker or HTTP server. A service, the CLI, the load
//! generator and the tests all read the same definitions, so a field or a status has one spelling.
//!
//! # Layout
//! - [`ids`]: `OrderId`, `ReservationId`, `UserId` — parsed and checked once, where they enter.
//! - [`status`]: the public statuses of orders and reservations (DESIGN §6).
//! - [`messages`]: the saga's commands and replies between the services, each checked field by
//!   field when consumed ([`messages::Validate`]); card references (sealed, never a PAN).
//! - [`money`]: exact amounts and currencies (parse, format, minor units, serde).
//! - [`redact`]: what must never travel onward in clear (card numbers in text, sealed CVCs).
//! - [`json`]: field readers for JSON Schema's integers and present-but-not-null fields.

pub mod ids;
pub mod json;
pub mod messages;
pub mod money;
pub mod redact;
pub mod status;
