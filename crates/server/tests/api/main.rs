//! Black-box API tests on the embedded SQLite store: each test starts the real
//! application on a random port with its own temporary data directory and talks HTTP to
//! it. `api_pg.rs` runs the same tests on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod authz;
mod avatars;
mod bad_input;
mod browser;
mod cache;
mod compat;
mod connections;
mod content;
mod dms;
mod feeds;
mod harness;
mod home;
mod identity;
mod meta;
mod metrics;
mod openapi;
mod paging;
mod proxy;
mod ratelimits;
mod reports;
mod safety;
mod security;
mod submolts;
mod web;
mod webhooks;

pub use harness::*;

/// The store this binary's servers use.
pub const BACKEND: Backend = Backend::Sqlite;
