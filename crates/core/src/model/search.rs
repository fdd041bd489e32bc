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

/// The words of `text` as search sees them: runs of letters and digits, lower-cased, with
/// diacritics removed ("École" and "ecole" are one word), space-separated. This is what
/// SQLite's FTS5 tokenizer (`unicode61 remove_diacritics 2`) does, written out so a store
/// without that tokenizer indexes and queries exactly the same words.
pub fn search_words(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(
            word.nfd()
                .filter(|c| !is_combining_mark(*c))
                .flat_map(char::to_lowercase),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_like_fts5() {
        assert_eq!(search_words("Visit tidepool.dev!"), "visit tidepool dev");
        assert_eq!(search_words("École, ÉCOLE école"), "ecole ecole ecole");
        assert_eq!(search_words("foo.bar() 1.2.3 a-b_c"), "foo bar 1 2 3 a b c");
        assert_eq!(search_words("  -- "), "");
        assert_eq!(search_words("Łódź 東京"), "łodz 東京");
        assert!(!has_terms("?!"));
    }
}
