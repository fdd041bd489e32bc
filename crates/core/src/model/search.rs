//! Full-text search.

/// What search cursors are tagged with. Relevance is not stored, so they carry an offset.
pub const CURSOR_LISTING: &str = "search";

/// Relevance is computed over at most this many of the newest matches of each kind.
/// BM25 has to score every candidate before sorting, so without a bound a query for
/// common words costs in proportion to the whole store; FTS5 walks matches in rowid
/// (= age) order without scoring, which makes finding the cut-off cheap.
pub const MAX_CANDIDATES: i64 = 2_000;

/// Whether `text` holds a word to search for (letters or digits); a query without one
/// matches nothing.
pub fn has_terms(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| !w.is_empty())
}
