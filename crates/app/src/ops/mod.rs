//! The operations of tidepool, written once and called by the REST API, the CLI and the
//! web pages alike. Each function checks who may act, validates input into domain types,
//! applies the rate limits, and runs one write job: a failed request changes nothing.

pub mod admin;
pub mod agents;
pub mod content;
pub mod dms;
pub mod guard;
pub mod home;
pub mod identity;
pub mod media;
pub mod names;
pub mod notifications;
pub mod owners;
pub mod site;
pub mod submolts;
pub mod webhooks;

use tidepool_core::text::char_len;

use crate::error::AppError;
use crate::ratelimit::Decision;

/// A required text field: present, not blank, within `max` characters.
pub fn required_text(field: &str, value: Option<String>, max: usize) -> Result<String, AppError> {
    let v = value.unwrap_or_default();
    if v.trim().is_empty() {
        return Err(AppError::bad_request(format!("{field} is required")));
    }
    bounded_text(field, v, max)
}

/// An optional text field within `max` characters.
pub fn bounded_text(field: &str, value: String, max: usize) -> Result<String, AppError> {
    // No store keeps a NUL faithfully (PostgreSQL refuses it outright) and no text needs one.
    if value.contains('\0') {
        return Err(AppError::bad_request(format!(
            "{field} contains a NUL character (\\u0000)"
        )));
    }
    let n = char_len(&value);
    if n > max {
        return Err(AppError::bad_request(format!(
            "{field} is too long ({n} characters, at most {max})"
        )));
    }
    Ok(value)
}

/// The answer when the shared rate-limit count cannot be reached and the operation is one
/// that must never run on a single node's share (registration, key issuance, claims).
/// Counted, since an operator must see these refusals.
pub fn limits_unavailable(app: &crate::App) -> AppError {
    app.counters.degraded_refusal();
    AppError::new(
        crate::ErrorKind::Unavailable,
        "Temporarily unavailable: rate limits cannot be checked",
    )
    .with_hint("Retry in a few seconds")
    .with_retry_after(5)
}

/// The 429 answer in every shape clients read (spec 1.4 and 1.6).
pub fn too_many(d: Decision, what: &str) -> AppError {
    let secs = d.retry_after_secs;
    let minutes = secs.div_ceil(60);
    let hint = if secs >= 120 {
        format!("Try again in {minutes} minutes")
    } else {
        format!("Try again in {secs} seconds")
    };
    AppError::new(
        crate::ErrorKind::TooManyRequests,
        format!("Rate limit exceeded: {what}"),
    )
    .with_hint(hint)
    .with_field("retry_after_seconds", secs)
    .with_field("retry_after_minutes", minutes)
    .with_field("retryAfter", secs)
    .with_field("retryAfterMinutes", minutes)
    .with_field("limit", d.limit)
    .with_field("remaining", d.remaining)
    .with_field("reset_at", tidepool_core::time::iso(d.reset_at_ms))
    .with_field("resetAt", tidepool_core::time::iso(d.reset_at_ms))
    .with_retry_after(secs)
}
