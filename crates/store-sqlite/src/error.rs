use std::fmt;

/// What can go wrong in the store. Domain refusals that can only be decided inside the
/// write transaction (a duplicate name, a vote on one's own post) are variants here so a
/// job can fail cleanly and roll back its savepoint.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The named thing does not exist ("Post", "Submolt", ...).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule: the message is for the client.
    #[error("{0}")]
    Conflict(String),
    /// A domain rule refused the request: the message is for the client (400).
    #[error("{0}")]
    Refused(String),
    /// The caller may not do this (403): the message is for the client.
    #[error("{0}")]
    Forbidden(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The writer thread has stopped (shutdown in progress).
    #[error("the store is shutting down")]
    Closed,
    #[error("internal store error: {0}")]
    Internal(String),
}

impl DbError {
    pub fn internal(e: impl fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

/// True if `e` is SQLite refusing a row because of a UNIQUE constraint.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

impl From<DbError> for tidepool_store::StoreError {
    fn from(e: DbError) -> Self {
        use tidepool_store::StoreError as E;
        match e {
            DbError::NotFound(what) => E::NotFound(what),
            DbError::Conflict(m) => E::Conflict(m),
            DbError::Refused(m) => E::Refused(m),
            DbError::Forbidden(m) => E::Forbidden(m),
            DbError::Closed => E::Closed,
            DbError::Sqlite(e) => E::Internal(format!("sqlite: {e}")),
            DbError::Io(e) => E::Internal(format!("i/o: {e}")),
            DbError::Internal(m) => E::Internal(m),
        }
    }
}
