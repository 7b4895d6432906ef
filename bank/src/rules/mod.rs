//! The bank's rules as plain functions and types: no SQL, no Kafka, no HTTP. Each is unit- and
//! property-tested here; the adapters (`accounts`, `operations`, `transfers`, `scheduler`,
//! `commands`) only load rows, ask these, and write the answer.

pub mod account_number;
pub mod calendar;
pub mod documents;
pub mod interbank;
pub mod interbank_auth;
pub mod ledger;
pub mod mask;
pub mod states;
