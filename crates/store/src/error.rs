use std::fmt;

/// What can go wrong in a store. Domain refusals that can only be decided inside the
/// transaction (a duplicate name, a vote on one's own post) are variants here so an
/// operation can fail cleanly and roll back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
    /// The database cannot be reached or did not answer in time; worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The store is shutting down.
    #[error("the store is shutting down")]
    Closed,
    /// Anything else: logged, never shown to a client.
    #[error("internal store error: {0}")]
    Internal(String),
}

impl StoreError {
    pub fn internal(e: impl fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}
