//! Opaque keyset cursors.
//!
//! A cursor carries the sort values of the last item returned and its id, so the next page
//! starts strictly after it whatever was inserted meanwhile. Some sorts also pin the moment
//! the first page was computed (`now`), so time-dependent ranks stay comparable across pages.
//! Clients see base64url JSON and must treat it as opaque.
//!
//! A cursor is a position in one order only: a key of `hot` means nothing in `new`. So every
//! keyset cursor names the listing and sort that issued it, and [`Cursor::position`] refuses
//! it anywhere else, as it refuses a cursor that names no position at all (`{"x":1}`): both
//! would otherwise silently answer a wrong or first page, and a client paging by cursor
//! would loop.

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
    /// Offset for result sets that cannot be keyset-paged (full-text relevance). `offset`
    /// is Moltbook's own spelling (skill 1.12 shows `{"offset":20}`).
    #[serde(
        rename = "o",
        alias = "offset",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub offset: Option<u64>,
    /// Moment the listing was first computed, for time-dependent ranks.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub now: Option<i64>,
    /// The listing and sort that issued the cursor, such as `posts.hot`.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct CursorError;

/// Where the page a valid cursor asks for starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    /// Strictly after the item with this sort key and id; `now` pins time-dependent ranks.
    After { key: f64, id: i64, now: Option<i64> },
    /// After skipping this many items (full-text search, and Moltbook's `{"offset":N}`).
    Offset(u64),
}

/// How far ahead of the server's clock a cursor's `now` may be. Cursors carry a moment
/// this server computed, so only a clock step back between two pages puts one ahead; a
/// moment further out is forged, and would push the time windows' arithmetic out of range.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;

impl Cursor {
    /// The cursor after the item with sort key `key` and id `id` in `listing`.
    pub fn keyset(listing: &str, key: f64, id: i64, now: i64) -> Self {
        Self {
            key: Some(key),
            id: Some(id),
            offset: None,
            now: Some(now),
            listing: Some(listing.to_owned()),
        }
    }

    /// The cursor `offset` items into `listing`.
    pub fn at_offset(listing: &str, offset: u64) -> Self {
        Self {
            key: None,
            id: None,
            offset: Some(offset),
            now: None,
            listing: Some(listing.to_owned()),
        }
    }

    pub fn encode(&self) -> String {
        // Serialising a struct of numbers and a string cannot fail.
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

    /// The position this cursor names in `listing` (`None`: whichever listing issued it,
    /// for callers that cannot name theirs), at server time `now_ms`.
    ///
    /// A keyset position must name the listing it is used in; an offset may come untagged
    /// (an offset means the same in every order, and Moltbook's own cursors were bare
    /// offsets). Anything else is refused: a cursor of another listing, one with no
    /// position or two, a half keyset, a non-finite key, a `now` before the epoch or ahead
    /// of the clock.
    pub fn position(&self, listing: Option<&str>, now_ms: i64) -> Result<Position, CursorError> {
        if let Some(expected) = listing
            && self
                .listing
                .as_deref()
                .is_some_and(|issued| issued != expected)
        {
            return Err(CursorError);
        }
        let latest = now_ms.saturating_add(MAX_CLOCK_SKEW_MS);
        if self.now.is_some_and(|n| !(0..=latest).contains(&n)) {
            return Err(CursorError);
        }
        match (self.key, self.id, self.offset) {
            (Some(key), Some(id), None) if key.is_finite() && self.listing.is_some() => {
                Ok(Position::After {
                    key,
                    id,
                    now: self.now,
                })
            }
            (None, None, Some(offset)) => Ok(Position::Offset(offset)),
            _ => Err(CursorError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_772_366_400_000;

    fn enc(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn position(json: &str, listing: Option<&str>) -> Result<Position, CursorError> {
        Cursor::decode(&enc(json))?.position(listing, NOW)
    }

    #[test]
    fn accepts_the_skill_example() {
        // skill 1.12 shows `eyJvZmZzZXQiOjIwfQ` = {"offset":20}: an offset, in any listing.
        let c = Cursor::decode("eyJvZmZzZXQiOjIwfQ").unwrap();
        assert_eq!(c.position(Some("posts.new"), NOW), Ok(Position::Offset(20)));
        assert_eq!(c.position(None, NOW), Ok(Position::Offset(20)));
        assert_eq!(Cursor::decode("not base64!"), Err(CursorError));
        assert_eq!(Cursor::decode("bm90IGpzb24"), Err(CursorError));
    }

    #[test]
    fn a_cursor_is_a_position_in_its_own_listing_only() {
        let c = Cursor::keyset("posts.hot", 12.5, 7, NOW);
        let at = Position::After {
            key: 12.5,
            id: 7,
            now: Some(NOW),
        };
        assert_eq!(c.position(Some("posts.hot"), NOW), Ok(at));
        assert_eq!(c.position(None, NOW), Ok(at));
        assert_eq!(c.position(Some("posts.new"), NOW), Err(CursorError));
        let search = Cursor::at_offset("search", 40);
        assert_eq!(
            search.position(Some("search"), NOW),
            Ok(Position::Offset(40))
        );
        assert_eq!(search.position(Some("posts.new"), NOW), Err(CursorError));
    }

    #[test]
    fn a_cursor_without_exactly_one_position_is_refused() {
        for json in [
            r#"{}"#,
            r#"{"x":1}"#,
            r#"{"n":1}"#,
            r#"{"s":"posts.hot"}"#,
            r#"{"k":1,"s":"posts.hot"}"#,
            r#"{"i":1,"s":"posts.hot"}"#,
            // A keyset position must say which order it belongs to.
            r#"{"k":1,"i":2}"#,
            r#"{"k":1,"i":2,"o":3,"s":"posts.hot"}"#,
            r#"{"o":1,"offset":2}"#,
            r#"{"o":-1}"#,
            r#"{"o":18446744073709551616}"#,
            r#"{"o":1.5}"#,
            r#"{"k":"a","i":1,"s":"posts.hot"}"#,
            r#"{"k":1e999,"i":1,"s":"posts.hot"}"#,
            r#"{"k":1,"i":9223372036854775808,"s":"posts.hot"}"#,
            // `now` before the epoch or ahead of the clock.
            r#"{"k":1,"i":2,"n":-1,"s":"posts.rising"}"#,
            r#"{"k":1,"i":2,"n":9223372036854775807,"s":"posts.rising"}"#,
            r#"[1,2]"#,
            r#"null"#,
        ] {
            assert_eq!(
                position(json, Some("posts.hot")),
                Err(CursorError),
                "{json}"
            );
            assert_eq!(position(json, None), Err(CursorError), "{json}");
        }
        assert!(position(r#"{"k":1,"i":2,"n":0,"s":"posts.hot"}"#, None).is_ok());
        // Offsets beyond what a listing serves are the listing's to refuse; the number is kept.
        assert_eq!(
            position(r#"{"o":18446744073709551615}"#, Some("search")),
            Ok(Position::Offset(u64::MAX))
        );
    }

    proptest! {
        #[test]
        fn round_trips(k in proptest::option::of(-1e12f64..1e12), i in proptest::option::of(any::<i64>()),
                       o in proptest::option::of(any::<u64>()), n in proptest::option::of(any::<i64>()),
                       s in proptest::option::of("[a-z.]{0,16}")) {
            let c = Cursor { key: k, id: i, offset: o, now: n, listing: s };
            prop_assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn decoding_garbage_never_panics(s in "\\PC{0,64}") {
            let _ = Cursor::decode(&s);
        }

        /// Whatever JSON object a client forges, a cursor that is accepted names exactly
        /// one position whose numbers are in range, and one of another listing never is.
        #[test]
        fn forged_cursors_decode_to_a_valid_position_or_an_error(
            fields in proptest::collection::vec(
                (prop_oneof![Just("k"), Just("i"), Just("o"), Just("offset"), Just("n"), Just("s"), Just("x")],
                 prop_oneof![
                     any::<i64>().prop_map(|v| v.to_string()),
                     any::<u64>().prop_map(|v| v.to_string()),
                     any::<f64>().prop_map(|v| format!("{v:e}")),
                     Just("1e400".to_owned()),
                     Just("\"posts.hot\"".to_owned()),
                     Just("\"search\"".to_owned()),
                     Just("null".to_owned()),
                     Just("[]".to_owned()),
                 ]),
                0..6,
            ),
            listing in prop_oneof![Just(None), Just(Some("posts.hot")), Just(Some("search"))],
        ) {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let json = format!("{{{}}}", body.join(","));
            let Ok(cursor) = Cursor::decode(&enc(&json)) else { return Ok(()) };
            match cursor.position(listing, NOW) {
                Err(_) => {}
                Ok(Position::After { key, now, .. }) => {
                    prop_assert!(key.is_finite());
                    prop_assert!(now.is_none_or(|n| (0..=NOW + MAX_CLOCK_SKEW_MS).contains(&n)));
                    prop_assert!(cursor.listing.is_some());
                    if let Some(l) = listing {
                        prop_assert_eq!(cursor.listing.as_deref(), Some(l));
                    }
                }
                Ok(Position::Offset(_)) => {
                    prop_assert!(cursor.key.is_none() && cursor.id.is_none());
                    if let (Some(l), Some(issued)) = (listing, cursor.listing.as_deref()) {
                        prop_assert_eq!(issued, l);
                    }
                }
            }
        }
    }
}
