//! The identity crate's integration tests as one test binary: each module below used to be a binary
//! of its own, and every binary links the whole service and its dependencies again (about 10 s of
//! compiling and linking each on this 2-core machine). Run one file's tests with a filter:
//! `cargo test -p identity --test it <module>::`.

mod common;
mod login;
mod oauth;
mod operations;
mod refresh;
mod signup;
mod tokens;
