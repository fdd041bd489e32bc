//! tidepool-store-pg: the PostgreSQL backend (foundation).
//!
//! This crate holds what every PostgreSQL query of tidepool builds on:
//!
//! - [`PgConfig`] / [`PgPool`]: a deadpool-postgres pool that runs each statement in the
//!   configured [`StatementMode`], so query code is written once (as a [`Sql`] constant:
//!   text plus parameter types) and works both directly against PostgreSQL (named,
//!   cached prepared statements) and through pgbouncer 1.18 in transaction mode (unnamed
//!   statements with typed parameters).
//! - A start-up probe ([`PgPool::probe`]) that refuses `prepared` where it cannot work.
//! - Migrations ([`PgPool::migrate`]): embedded SQL, one transaction each, serialised by a
//!   transaction-scoped advisory lock so several nodes may start at once.
//! - The shared rate limiter statement ([`gcra_check`]) and the scheduler lease
//!   ([`acquire_lease`]).
//! - Cache invalidation across nodes ([`Listener`], [`Invalidation`]): writes `NOTIFY`
//!   inside their transaction, each node `LISTEN`s on one dedicated connection.
//! - Read replicas ([`replicas`]): a pool per replica, lag measured from WAL positions,
//!   reads routed to a replica within the lag budget and past the caller's own writes.
//! - With the `testing` feature, [`testing::TestDb`]: a fresh database per test, and
//!   [`testing::ReplicaPair`]: a primary with a streaming replica.
//!
//! The storage-trait implementation (posts, votes, ...) is built on top of this later.
#![warn(missing_docs)]

mod config;
mod error;
mod migrate;
mod notify;
mod pool;
pub mod replicas;
mod shared;
mod store;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub use config::{PgConfig, StatementMode};
pub use error::{PgError, Result};
pub use migrate::LATEST_VERSION;
pub use notify::{
    CHANNEL, Invalidation, InvalidationSink, Listener, ListenerStatus, ListenerWatch, PING_EVERY,
};
pub use pool::{Conn, PgPool, Sql, Tx};
pub use replicas::{ReadStats, ReplicaStats};
pub use shared::{
    GcraState, acquire_lease, gcra_check, gcra_hit, gcra_hit_within, gcra_prune, gcra_refund,
    meta_first, record_job_run,
};
pub use store::PgStore;

/// Re-exported so callers name parameter types and read rows without a direct dependency.
pub use tokio_postgres::{Row, types::ToSql, types::Type};
