//! Request extraction: the caller's identity, JSON bodies and query strings, each failing
//! with a clear 4xx in the error envelope (never axum's plain-text rejections).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// The credential a request carries: `Authorization: Bearer <key>` (scheme
/// case-insensitive) or `X-API-Key: <key>`.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let mut parts = value.split_whitespace();
        if let (Some(scheme), Some(token), None) = (parts.next(), parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(token);
        }
        return None;
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The authenticated agent of a request: the app's [`tidepool_app::Caller`], extracted
/// from the request's key.
#[derive(Debug, Clone)]
pub struct Caller(pub tidepool_app::Caller);

impl std::ops::Deref for Caller {
    type Target = tidepool_app::Caller;
    fn deref(&self) -> &tidepool_app::Caller {
        &self.0
    }
}

/// The caller a request's credential names: `None` without one; refused when the header
/// is malformed or the key is unknown, revoked or suspended.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let has_auth_header =
        headers.contains_key("authorization") || headers.contains_key("x-api-key");
    let Some(token) = bearer_token(headers) else {
        if has_auth_header {
            return Err(ApiError::unauthorized("Invalid token format")
                .with_hint("Send the header as: Authorization: Bearer <api_key>"));
        }
        return Ok(None);
    };
    Ok(Some(Caller(state.authenticate(token).await?)))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(state, &parts.headers).await?.ok_or_else(|| {
            ApiError::unauthorized("Authentication required")
                .with_hint("Send your API key as: Authorization: Bearer <api_key>. Register at POST /api/v1/agents/register.")
        })
    }
}

/// An optional caller for reads that anyone may make. A key that is present but wrong
/// is still refused: silently reading as anonymous would hide a client's bug.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(authenticate(state, &parts.headers).await?))
    }
}

/// A JSON body parsed into `T`. Unknown fields are ignored; malformed JSON, wrong types,
/// missing fields and non-UTF-8 bytes are a 400 that says what was wrong.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(e.status(), "Request body too large")
                    .with_hint("Bodies are limited to 1 MB")
            } else {
                ApiError::bad_request("Could not read the request body")
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("Invalid JSON body")
            .with_hint("Send a JSON object with Content-Type: application/json"));
    }
    // JSON is UTF-8 (RFC 8259). serde skips unknown fields without decoding them, so the
    // whole body is checked here rather than only the fields a handler reads.
    let text = std::str::from_utf8(bytes).map_err(|_| {
        ApiError::bad_request("Request body is not valid UTF-8")
            .with_hint("Send UTF-8 encoded JSON")
    })?;
    serde_json::from_str(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => format!("Invalid request body: {e}"),
            _ => "Invalid JSON body".to_owned(),
        };
        ApiError::bad_request(what)
            .with_hint("Send a JSON object with Content-Type: application/json")
    })
}

/// A query string parsed into `T` (whose fields should be `Option<String>` so values are
/// checked by the handler with clear messages).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        // Decoding is lossy further down; refuse invalid UTF-8 instead of searching for
        // replacement characters.
        if percent_encoding::percent_decode_str(q)
            .decode_utf8()
            .is_err()
        {
            return Err(ApiError::bad_request("Query string is not valid UTF-8"));
        }
        serde_urlencoded::from_str(q)
            .map(Query)
            .map_err(|e| ApiError::bad_request(format!("Invalid query string: {e}")))
    }
}
