//! The e2e crate's integration tests as one test binary: each module below used to be a binary
//! of its own, and every binary links the whole service and its dependencies again (about 10 s of
//! compiling and linking each on this 2-core machine). Run one file's tests with a filter:
//! `cargo test -p e2e --test it <module>::`.

mod account_payment;
mod auth;
mod binary_ids;
mod card_data;
mod cdc;
mod deploy_config;
mod gateway;
mod dlq;
mod docs_routes;
mod identity_flow;
mod layering;
mod metrics;
mod migrations;
mod paging;
mod payment_intake;
mod saga_crash;
mod saga_flow;
mod saga_rules;
mod trace_context;
