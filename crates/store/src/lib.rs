//! tidepool-store: everything tidepool keeps, on SQLite.
//!
//! One dedicated writer thread owns the only write connection and commits the jobs it is
//! sent in groups (SQLite allows one writer anyway; grouping turns N fsyncs into one).
//! Each job runs inside its own savepoint, so a job that fails rolls back alone and the
//! rest of its group still commits. Reads go to a small pool of read-only connections;
//! WAL mode lets them run while the writer writes.
//!
//! The SQL for each aggregate lives in its own module (`agents`, `submolts`, `posts`,
//! `comments`, `search`), as plain functions over a `&Connection`: the writer calls them
//! inside a job, readers call them on a pooled connection. The PostgreSQL backend planned
//! for multi-node deployments will put a trait over these functions; until there is a
//! second implementation a trait would only guess at the right seams.

pub mod agents;
pub mod comments;
mod db;
mod error;
pub mod feed;
pub mod moderation;
pub mod owners;
pub mod posts;
pub mod schema;
pub mod search;
pub mod seed;
pub mod submolts;
pub mod votes;

pub use db::{Durability, Store, StoreOptions, connect_read_only, load_or_create_secret};
pub use error::StoreError;
pub use rusqlite::Connection;

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A fresh UUID v7 string: public ids sort by creation time.
pub fn new_public_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
