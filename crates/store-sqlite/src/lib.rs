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
pub mod dms;
mod error;
pub mod feed;
pub mod moderation;
pub mod notifications;
pub mod owners;
pub mod posts;
pub mod schema;
pub mod search;
pub mod seed;
pub mod submolts;
mod transfer;
pub mod votes;
pub mod webhooks;

pub use db::{Durability, SqliteStore, StoreOptions, connect_read_only, load_or_create_secret};
pub use error::DbError;
mod imp;
pub use rusqlite::Connection;

/// Result of store operations.
pub type Result<T, E = DbError> = std::result::Result<T, E>;

pub use tidepool_store::new_public_id;

/// Reads text column `i` as a domain value (a verdict, labels, a role). A stored name this
/// build cannot read is a conversion error naming the column, never a guess: the app acts
/// on these values (a role grants moderation), so a corrupt row must not pass as another.
pub(crate) fn parsed<T, E>(
    r: &rusqlite::Row<'_>,
    i: usize,
    parse: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> rusqlite::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    parse(r.get_ref(i)?.as_str()?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}
