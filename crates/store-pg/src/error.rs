//! The one error type of the PostgreSQL backend.

/// Everything that can go wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server (or the driver) reported an error.
    #[error("postgres: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool in time, or creating one failed.
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The configuration is unusable (bad URL, zero pool size, ...).
    #[error("postgres configuration: {0}")]
    Config(String),
    /// A statement expected to return one row (or at most one) returned this many.
    #[error("expected one row, got {0}")]
    RowCount(usize),
    /// The backend refuses to go on: a schema newer than this build knows, or a statement
    /// mode the connection path cannot carry. The message says what to change.
    #[error("{0}")]
    Refused(String),
}

/// Result with [`PgError`].
pub type Result<T, E = PgError> = std::result::Result<T, E>;
