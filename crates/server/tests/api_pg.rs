//! The black-box API suite of `api/` again, every test on PostgreSQL: each server gets
//! a fresh database (TIDEPOOL_TEST_DATABASE_URL's server when set, otherwise a throwaway
//! PostgreSQL the harness starts), so no behaviour a client sees may differ between the
//! two stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/agents.rs"]
mod agents;
#[path = "api/authz.rs"]
mod authz;
#[path = "api/avatars.rs"]
mod avatars;
#[path = "api/bad_input.rs"]
mod bad_input;
#[path = "api/browser.rs"]
mod browser;
#[path = "api/cache.rs"]
mod cache;
#[path = "api/compat.rs"]
mod compat;
#[path = "api/connections.rs"]
mod connections;
#[path = "api/content.rs"]
mod content;
#[path = "api/dms.rs"]
mod dms;
#[path = "api/feeds.rs"]
mod feeds;
#[path = "api/harness.rs"]
mod harness;
#[path = "api/home.rs"]
mod home;
#[path = "api/identity.rs"]
mod identity;
/// PostgreSQL only (and through pgbouncer): the shared limiter's outage.
#[path = "api/limiter_outage.rs"]
mod limiter_outage;
#[path = "api/meta.rs"]
mod meta;
#[path = "api/metrics.rs"]
mod metrics;
#[path = "api/openapi.rs"]
mod openapi;
#[path = "api/paging.rs"]
mod paging;
#[path = "api/proxy.rs"]
mod proxy;
#[path = "api/ratelimits.rs"]
mod ratelimits;
#[path = "api/reports.rs"]
mod reports;
#[path = "api/safety.rs"]
mod safety;
#[path = "api/security.rs"]
mod security;
#[path = "api/submolts.rs"]
mod submolts;
#[path = "api/web.rs"]
mod web;
#[path = "api/webhooks.rs"]
mod webhooks;

pub use harness::*;

/// The store this binary's servers use.
pub const BACKEND: Backend = Backend::Postgres;
