//! Full-text search over posts and comments (SQLite FTS5, BM25 relevance).

use rusqlite::{Connection, OptionalExtension, params};
pub use tidepool_core::model::search::*;

use crate::Result;
use crate::comments::{COMMENT_COLUMNS, COMMENT_JOINS, Comment, comment_from_row};
use crate::posts::{POST_COLUMNS, POST_JOINS, Post, post_from_row};

/// Turns free text into a safe FTS5 query: every word becomes a quoted term, so operators
/// and syntax in the input (`NEAR`, `*`, quotes, column filters) are matched literally
/// instead of being interpreted. All terms must match. `None` if there is no word at all.
pub fn fts_query(input: &str) -> Option<String> {
    let terms: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(32)
        .map(|w| format!("\"{w}\""))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Relevance in 0.5..1 from a BM25 score (SQLite's bm25 is negative, more negative =
/// better). Every query word is present in every hit, so a hit is at least half-relevant;
/// BM25's strength moves it towards 1. (BM25 alone collapses towards 0 in small corpora,
/// where every term is common, which would make a perfect match look irrelevant.)
pub fn similarity(bm25: f64) -> f64 {
    let s = (-bm25).max(0.0);
    0.5 + 0.5 * s / (1.0 + s)
}

/// The oldest rowid among the newest [`MAX_CANDIDATES`] matches in `table` (0: all).
fn candidate_floor(conn: &Connection, table: &str, query: &str) -> Result<i64> {
    let floor: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT rowid FROM {table} WHERE {table} MATCH ?1 ORDER BY rowid DESC LIMIT 1 OFFSET ?2"
        ))?
        .query_row(params![query, MAX_CANDIDATES - 1], |r| r.get(0))
        .optional()?;
    Ok(floor.unwrap_or(0))
}

/// `limit` and `offset` as bound: SQLite reads a negative LIMIT as "no limit", which
/// would score and return every match.
fn window(limit: i64, offset: i64) -> (i64, i64) {
    (limit.max(0), offset.max(0))
}

// The FTS hits drive both queries: at most `limit` rows are looked up by primary key.

/// Matching live posts, best first, with their BM25 score.
pub fn posts(
    conn: &Connection,
    query: &str,
    limit: i64,
    offset: i64,
    include_quarantined: bool,
) -> Result<Vec<(Post, f64)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "WITH hits AS (SELECT rowid AS id, bm25(posts_fts, 2.0, 1.0) AS r FROM posts_fts
                       WHERE posts_fts MATCH ?1 AND rowid >= ?4 ORDER BY r LIMIT ?2 OFFSET ?3)
         SELECT {POST_COLUMNS}, h.r FROM hits h CROSS JOIN {POST_JOINS}
         WHERE p.id = h.id AND p.is_deleted = 0 AND (?5 OR p.is_quarantined = 0) ORDER BY h.r"
    ))?;
    let floor = candidate_floor(conn, "posts_fts", query)?;
    let (limit, offset) = window(limit, offset);
    let rows = stmt.query_map(
        params![query, limit, offset, floor, include_quarantined],
        |r| Ok((post_from_row(r)?, r.get::<_, f64>("r")?)),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Matching live comments, best first, with their BM25 score.
pub fn comments(
    conn: &Connection,
    query: &str,
    limit: i64,
    offset: i64,
    include_quarantined: bool,
) -> Result<Vec<(Comment, f64)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "WITH hits AS (SELECT rowid AS id, bm25(comments_fts) AS r FROM comments_fts
                       WHERE comments_fts MATCH ?1 AND rowid >= ?4 ORDER BY r LIMIT ?2 OFFSET ?3)
         SELECT {COMMENT_COLUMNS}, h.r FROM hits h CROSS JOIN {COMMENT_JOINS}
         WHERE c.id = h.id AND c.is_deleted = 0 AND p.is_deleted = 0 AND (?5 OR (c.is_quarantined = 0 AND p.is_quarantined = 0)) ORDER BY h.r"
    ))?;
    let floor = candidate_floor(conn, "comments_fts", query)?;
    let (limit, offset) = window(limit, offset);
    let rows = stmt.query_map(
        params![query, limit, offset, floor, include_quarantined],
        |r| Ok((comment_from_row(r)?, r.get::<_, f64>("r")?)),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_quoted_terms() {
        assert_eq!(
            fts_query("hello world").as_deref(),
            Some("\"hello\" \"world\"")
        );
        assert_eq!(
            fts_query("a\" OR NEAR(x*").as_deref(),
            Some("\"a\" \"OR\" \"NEAR\" \"x\"")
        );
        assert_eq!(fts_query("  !!! "), None);
        assert!(similarity(-3.0) > similarity(-1.0));
        assert_eq!(similarity(0.5), 0.5);
        assert!(similarity(-1e9) <= 1.0);
    }
}
