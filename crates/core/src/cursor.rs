//! Opaque keyset cursors.
//!
//! A cursor carries the sort values of the last item returned and its id, so the next page
//! starts strictly after it whatever was inserted meanwhile. Some sorts also pin the moment
//! the first page was computed (`now`), so time-dependent ranks stay comparable across pages.
//! Clients see base64url JSON and must treat it as opaque.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Sort key of the last item (an integer or float, as JSON number).
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<f64>,
    /// Internal id of the last item, the tie-breaker.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Offset for result sets that cannot be keyset-paged (full-text relevance).
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Moment the listing was first computed, for time-dependent ranks.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub now: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct CursorError;

impl Cursor {
    pub fn encode(&self) -> String {
        // Serialising a struct of numbers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(s: &str) -> Result<Self, CursorError> {
        let s = s.trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| CursorError)?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| CursorError)?;
        if cursor.key.is_some_and(|k| !k.is_finite()) {
            return Err(CursorError);
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_skill_example() {
        // skill 1.12 shows `eyJvZmZzZXQiOjIwfQ` = {"offset":20}; unknown keys are ignored.
        assert!(Cursor::decode("eyJvZmZzZXQiOjIwfQ").is_ok());
        assert_eq!(Cursor::decode("not base64!"), Err(CursorError));
        assert_eq!(Cursor::decode("bm90IGpzb24"), Err(CursorError));
    }

    proptest! {
        #[test]
        fn round_trips(k in proptest::option::of(-1e12f64..1e12), i in proptest::option::of(any::<i64>()),
                       o in proptest::option::of(any::<u64>()), n in proptest::option::of(any::<i64>())) {
            let c = Cursor { key: k, id: i, offset: o, now: n };
            prop_assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn decoding_garbage_never_panics(s in "\\PC{0,64}") {
            let _ = Cursor::decode(&s);
        }
    }
}
