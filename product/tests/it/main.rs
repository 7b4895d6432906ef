//! The product crate's integration tests as one test binary: each module below used to be a binary
//! of its own, and every binary links the whole service and its dependencies again (about 10 s of
//! compiling and linking each on this 2-core machine). Run one file's tests with a filter:
//! `cargo test -p product --test it <module>::`.

mod common;
mod health;
mod reindex_command;
mod reservations;
mod reserve_idempotency;
mod search_catalogue;
mod search_cdc;
mod search_elastic;
mod validation;
