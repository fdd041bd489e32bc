//! tidepool-store-sqlite: the embedded backend of [`tidepool_store::Store`], the default
//! (zero configuration: one file in the data directory).
//!
//! One dedicated writer thread owns the only write connection and commits the jobs it is
//! sent in groups (SQLite allows one writer anyway; grouping turns N fsyncs into one).
//! Each job runs inside its own savepoint, so a job that fails rolls back alone and the
//! rest of its group still commits. Reads go to a small pool of read-only connections;
//! WAL mode lets them run while the writer writes.
//!
//! The SQL for each aggregate lives in its own module (`agents`, `submolts`, `posts`,
//! `comments`, `search`), as plain functions over a `&Connection`: the writer calls them
//! inside a job, readers call them on a pooled connection. `imp` implements the store
//! trait over them, one writer job per write operation, so each operation is one
//! transaction.

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
mod transfer;
pub mod votes;

pub use db::{Durability, SqliteStore, StoreOptions, connect_read_only, load_or_create_secret};
pub use error::DbError;
mod imp;
pub use rusqlite::Connection;

/// Result of store operations.
pub type Result<T, E = DbError> = std::result::Result<T, E>;

pub use tidepool_store::new_public_id;
