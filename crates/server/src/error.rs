//! The one error type of the HTTP API: the app's errors ([`AppError`]) mapped to status
//! codes, plus the failures only HTTP has (bad bodies, unknown routes, oversized heads).
//!
//! Every failure renders the superset envelope of spec 1.4 so clients of every era can
//! read it: `success:false`, `error` and `message` (both strings), `hint`, `statusCode`
//! and the open-source `code`. Internal details are logged and never returned.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tidepool_app::{AppError, ErrorKind};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub hint: Option<String>,
    /// Extra top-level fields (rate-limit details, validation errors).
    pub extra: Map<String, Value>,
    /// Extra response headers (`Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            hint: None,
            extra: Map::new(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// A failure that is our fault: logged in full, answered with no detail.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    fn code(&self) -> &'static str {
        Self::code_for(self.status)
    }

    /// The envelope's `code` for a status (also the `code` label of the error metric).
    pub fn code_for(status: StatusCode) -> &'static str {
        match status {
            StatusCode::BAD_REQUEST => "BAD_REQUEST",
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            StatusCode::FORBIDDEN => "FORBIDDEN",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
            StatusCode::CONFLICT => "CONFLICT",
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            StatusCode::UNPROCESSABLE_ENTITY => "VALIDATION_ERROR",
            StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "HEADERS_TOO_LARGE",
            StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
            s if s.is_client_error() => "BAD_REQUEST",
            _ => "INTERNAL_ERROR",
        }
    }

    pub fn body(&self) -> Value {
        let mut body = json!({
            "success": false,
            "error": self.message,
            "message": self.message,
            "statusCode": self.status.as_u16(),
            "code": self.code(),
        });
        if let Some(map) = body.as_object_mut() {
            if let Some(h) = &self.hint {
                map.insert("hint".into(), Value::String(h.clone()));
            }
            for (k, v) in &self.extra {
                map.insert(k.clone(), v.clone());
            }
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                response.headers_mut().insert(*name, v);
            }
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let status = match e.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut api = ApiError::new(status, e.message);
        api.hint = e.hint;
        api.extra = e.details;
        if let Some(secs) = e.retry_after_secs {
            api = api.with_header("retry-after", secs.to_string());
        }
        api
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
