//! The one error type of tidepool's operations.
//!
//! An [`AppError`] says what kind of failure it is ([`ErrorKind`]), a message for the
//! caller, an optional hint, extra details a client may read (rate-limit counters,
//! guard findings) and, for throttling and unavailability, when to retry. How a kind
//! reaches the caller (an HTTP status, a CLI exit) is the caller's business: nothing here
//! knows of HTTP. Internal details are logged and never carried in the error.

use serde_json::{Map, Value};
use tidepool_store::StoreError;

/// What went wrong, in terms every front end can map onto its own vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or breaks a rule.
    BadRequest,
    /// No valid credential.
    Unauthorized,
    /// A valid credential that may not do this.
    Forbidden,
    /// The thing asked for does not exist (or may not be seen).
    NotFound,
    /// The request collides with the current state (a taken name, a cap reached).
    Conflict,
    /// Well-formed input refused for its content (the guard).
    Unprocessable,
    /// A rate limit refused the request; see [`AppError::retry_after_secs`].
    TooManyRequests,
    /// A dependency (the store, the shared limiter) cannot answer right now.
    Unavailable,
    /// Our fault; the detail is in the logs.
    Internal,
}

/// A failed operation.
#[derive(Debug, Clone)]
pub struct AppError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Said to the caller.
    pub message: String,
    /// What the caller can do about it.
    pub hint: Option<String>,
    /// Extra fields for the caller (rate-limit counters, validation findings).
    pub details: Map<String, Value>,
    /// Seconds after which a retry may succeed (throttling, unavailability).
    pub retry_after_secs: Option<u64>,
}

impl AppError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            details: Map::new(),
            retry_after_secs: None,
        }
    }

    /// [`ErrorKind::BadRequest`].
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// [`ErrorKind::Unauthorized`].
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }

    /// [`ErrorKind::Forbidden`].
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// [`ErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// [`ErrorKind::Unprocessable`].
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unprocessable, message)
    }

    /// [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// A failure that is our fault: logged in full, answered with no detail.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorKind::Internal, "Internal server error")
    }

    /// Adds what the caller can do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a detail field for the caller.
    pub fn with_field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Says when a retry may succeed.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => AppError::not_found(format!("{what} not found")),
            StoreError::Conflict(m) => AppError::conflict(m),
            StoreError::Refused(m) => AppError::bad_request(m),
            StoreError::Forbidden(m) => AppError::forbidden(m),
            StoreError::Closed => AppError::unavailable("The server is shutting down")
                .with_hint("Retry in a few seconds"),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                AppError::unavailable("The database is unavailable")
                    .with_hint("Retry in a few seconds")
                    .with_retry_after(2)
            }
            other => AppError::internal(other),
        }
    }
}

/// The result of an operation.
pub type AppResult<T> = Result<T, AppError>;
