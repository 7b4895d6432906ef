//! The bank crate's integration tests as one test binary: each module below used to be a binary
//! of its own, and every binary links the whole service and its dependencies again (about 10 s of
//! compiling and linking each on this 2-core machine). Run one file's tests with a filter:
//! `cargo test -p bank --test it <module>::`.

mod accounts;
mod clearing;
mod commands;
mod common;
mod crash;
mod interbank;
mod interbank_faults;
mod operations;
mod peer_balances;
mod transfers;
