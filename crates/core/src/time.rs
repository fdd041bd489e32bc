//! Timestamps: stored as integer milliseconds since the Unix epoch, rendered as ISO-8601
//! with millisecond precision and a `Z`, the shape production Moltbook used after Feb 2026.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2026-03-01T12:00:00.000Z`.
pub fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_iso_millis() {
        assert_eq!(super::iso(1_772_366_400_000), "2026-03-01T12:00:00.000Z");
    }
}
