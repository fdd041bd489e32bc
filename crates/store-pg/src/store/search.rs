//! Full-text search on PostgreSQL over an inverted index of our own.
//!
//! Each live post (comment) has one row per distinct word in `post_words`
//! (`comment_words`), keyed `(word, id)` with the word's weight and the item's length
//! included, so the newest items holding a word come out of a backward index-only scan,
//! as FTS5 walks its doclists newest first. A query's candidates are the newest
//! [`MAX_CANDIDATES`] items holding every word: the sparsest word drives, the others are
//! checked batch by batch, by reading their postings over the batch's id range when they
//! are about as dense, or by probing the batch's ids when they are much denser, so a rare
//! word next to a common one reads little of the common one's list. Only candidates are
//! ranked (BM25 over the weights, with the candidates' mean length), then the best
//! `limit` are read whole. The words are `search_words`, as SQLite's FTS5 makes them.

use std::collections::HashMap;

use tidepool_core::model::comments::Comment;
use tidepool_core::model::posts::Post;
use tidepool_core::model::search::{MAX_CANDIDATES, search_words};
use tidepool_store::Result;

use super::post_rows::{
    comment_columns, comment_from_row, comment_joins, get, post_columns, post_from_row, post_joins,
};
use crate::{Conn, PgPool, Sql, Tx, Type};

/// Words longer than this many bytes are indexed and searched by their first bytes (cut
/// on a character boundary): a btree entry has a size limit, and a 100-character "word"
/// is a hash or a blob, found as well by its head.
pub(crate) const WORD_MAX_BYTES: usize = 96;

/// At most this many of a query's words are used (as before with FTS5's query).
const QUERY_WORDS_MAX: usize = 32;

/// Postings read per word on the first round trip.
const FIRST_CHUNK: i64 = 256;

/// The most postings read in one round trip.
const CHUNK_MAX: i64 = 8_192;

/// A word whose postings over a batch's id range are estimated at more than this many
/// times the batch's size is probed for the batch's ids instead of read over the range.
const PROBE_RATIO: f64 = 8.0;

/// BM25's parameters (SQLite's defaults).
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// A word as stored and searched: cut to [`WORD_MAX_BYTES`].
fn stored(word: &str) -> &str {
    if word.len() <= WORD_MAX_BYTES {
        return word;
    }
    let mut end = WORD_MAX_BYTES;
    while !word.is_char_boundary(end) {
        end -= 1;
    }
    &word[..end]
}

/// The postings of one item: its distinct words with their weights, and its length in
/// words. `weighted` texts count `factor` times each occurrence (a post's title counts
/// twice, as its BM25 column weight does in SQLite).
pub(crate) struct Postings {
    pub words: Vec<String>,
    pub weights: Vec<i32>,
    pub len: i32,
}

impl Postings {
    /// Postings of the texts given as (text, weight of one occurrence).
    pub(crate) fn of(texts: &[(&str, i32)]) -> Self {
        let mut weights: HashMap<String, i32> = HashMap::new();
        let mut len = 0i32;
        for (text, factor) in texts {
            let words = search_words(text);
            for w in words.split(' ').filter(|w| !w.is_empty()) {
                len = len.saturating_add(1);
                let slot = weights.entry(stored(w).to_owned()).or_insert(0);
                *slot = slot.saturating_add(*factor);
            }
        }
        let mut pairs: Vec<(String, i32)> = weights.into_iter().collect();
        pairs.sort_unstable();
        let (words, weights) = pairs.into_iter().unzip();
        Self {
            words,
            weights,
            len,
        }
    }

    /// A post's postings: title words weigh 2, content and url words 1.
    pub(crate) fn of_post(title: &str, content: Option<&str>, url: Option<&str>) -> Self {
        Self::of(&[
            (title, 2),
            (content.unwrap_or(""), 1),
            (url.unwrap_or(""), 1),
        ])
    }

    /// A comment's postings.
    pub(crate) fn of_comment(content: &str) -> Self {
        Self::of(&[(content, 1)])
    }
}

/// Which inverted index: posts' or comments'.
#[derive(Clone, Copy)]
pub(crate) enum Index {
    Posts,
    Comments,
}

/// The statements of one index (the same shape for both tables).
struct Statements {
    insert: Sql,
    remove: Sql,
    first: Sql,
    next: Sql,
    range: Sql,
    probe: Sql,
}

macro_rules! statements {
    ($table:literal, $id:literal) => {
        Statements {
            insert: Sql::new(
                concat!(
                    "INSERT INTO ",
                    $table,
                    "(word, ",
                    $id,
                    ", weight, len)
                     SELECT u.w, $2, u.x, $4 FROM unnest($1::text[], $3::int4[]) AS u(w, x)"
                ),
                &[Type::TEXT_ARRAY, Type::INT8, Type::INT4_ARRAY, Type::INT4],
            ),
            remove: Sql::new(
                concat!(
                    "DELETE FROM ",
                    $table,
                    " WHERE ",
                    $id,
                    " = $1 AND word = ANY($2)"
                ),
                &[Type::INT8, Type::TEXT_ARRAY],
            ),
            // The first chunk of every word's postings, newest first, in one round trip.
            first: Sql::new(
                concat!(
                    "SELECT q.i, w.",
                    $id,
                    ", w.weight, w.len
                     FROM unnest($1::text[]) WITH ORDINALITY AS q(word, i)
                     CROSS JOIN LATERAL (
                         SELECT ",
                    $id,
                    ", weight, len FROM ",
                    $table,
                    "
                         WHERE word = q.word ORDER BY ",
                    $id,
                    " DESC LIMIT $2) w
                     ORDER BY q.i, w.",
                    $id,
                    " DESC"
                ),
                &[Type::TEXT_ARRAY, Type::INT8],
            ),
            next: Sql::new(
                concat!(
                    "SELECT ",
                    $id,
                    ", weight, len FROM ",
                    $table,
                    "
                     WHERE word = $1 AND ",
                    $id,
                    " < $2 ORDER BY ",
                    $id,
                    " DESC LIMIT $3"
                ),
                &[Type::TEXT, Type::INT8, Type::INT8],
            ),
            range: Sql::new(
                concat!(
                    "SELECT ",
                    $id,
                    ", weight FROM ",
                    $table,
                    "
                     WHERE word = $1 AND ",
                    $id,
                    " BETWEEN $2 AND $3"
                ),
                &[Type::TEXT, Type::INT8, Type::INT8],
            ),
            probe: Sql::new(
                concat!(
                    "SELECT ",
                    $id,
                    ", weight FROM ",
                    $table,
                    "
                     WHERE word = $1 AND ",
                    $id,
                    " = ANY($2)"
                ),
                &[Type::TEXT, Type::INT8_ARRAY],
            ),
        }
    };
}

const POSTS: Statements = statements!("post_words", "post_id");
const COMMENTS: Statements = statements!("comment_words", "comment_id");

impl Index {
    /// The index's table and its item column.
    pub(crate) fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::Posts => ("post_words", "post_id"),
            Self::Comments => ("comment_words", "comment_id"),
        }
    }

    fn sql(self) -> &'static Statements {
        match self {
            Self::Posts => &POSTS,
            Self::Comments => &COMMENTS,
        }
    }
}

/// Indexes a new item inside the transaction that writes it.
pub(crate) async fn insert(tx: &Tx<'_>, index: Index, id: i64, p: &Postings) -> Result<()> {
    if p.words.is_empty() {
        return Ok(());
    }
    tx.execute(&index.sql().insert, &[&p.words, &id, &p.weights, &p.len])
        .await?;
    Ok(())
}

/// Takes an item out of search (it was deleted); `p` are the postings it was indexed with.
pub(crate) async fn remove(tx: &Tx<'_>, index: Index, id: i64, p: &Postings) -> Result<()> {
    if p.words.is_empty() {
        return Ok(());
    }
    tx.execute(&index.sql().remove, &[&id, &p.words]).await?;
    Ok(())
}

/// The query's distinct words as stored, at most [`QUERY_WORDS_MAX`].
fn query_words(input: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in search_words(input).split(' ').filter(|w| !w.is_empty()) {
        let w = stored(w);
        if out.len() == QUERY_WORDS_MAX {
            break;
        }
        if !out.iter().any(|o| o == w) {
            out.push(w.to_owned());
        }
    }
    out
}

/// One word's postings read so far, newest first.
struct List {
    word: String,
    /// (id, weight, len), ids descending.
    rows: Vec<(i64, i32, i32)>,
    /// The whole list has been read.
    complete: bool,
}

impl List {
    /// Estimated postings per id of this word (from the ids its rows span).
    fn density(&self) -> f64 {
        match (self.rows.first(), self.rows.last()) {
            (Some(first), Some(_)) if self.complete => {
                self.rows.len() as f64 / (first.0.max(1) as f64)
            }
            (Some(first), Some(last)) => {
                self.rows.len() as f64 / ((first.0 - last.0 + 1).max(1) as f64)
            }
            _ => 0.0,
        }
    }
}

/// A candidate: id, length, and the weight of each query word (in query order).
struct Candidate {
    id: i64,
    len: i32,
    weights: Vec<i32>,
}

/// The newest [`MAX_CANDIDATES`] items holding every word, newest first, and each word's
/// estimated density (postings per id), which ranking turns into its rarity.
async fn candidates(
    conn: &Conn,
    index: Index,
    words: &[String],
) -> Result<(Vec<Candidate>, Vec<f64>)> {
    let sql = index.sql();
    // One word: its newest MAX_CANDIDATES postings are the candidates, in one read.
    let first = if words.len() == 1 {
        MAX_CANDIDATES
    } else {
        FIRST_CHUNK
    };
    let rows = conn.query(&sql.first, &[&words, &first]).await?;
    let mut lists: Vec<List> = words
        .iter()
        .map(|w| List {
            word: w.clone(),
            rows: Vec::new(),
            complete: false,
        })
        .collect();
    for r in &rows {
        let i: i64 = get(r, 0)?;
        let slot = usize::try_from(i - 1)
            .ok()
            .and_then(|i| lists.get_mut(i))
            .ok_or_else(|| tidepool_store::StoreError::internal("word ordinal out of range"))?;
        slot.rows.push((get(r, 1)?, get(r, 2)?, get(r, 3)?));
    }
    for l in &mut lists {
        l.complete = (l.rows.len() as i64) < first;
        if l.rows.is_empty() {
            // A word nothing holds: nothing holds every word.
            return Ok((Vec::new(), Vec::new()));
        }
    }
    // The sparsest word drives; the others are checked in order of rising density, so
    // the batch shrinks before the densest lists are consulted.
    let densities: Vec<f64> = lists.iter().map(List::density).collect();
    let driver = (0..lists.len())
        .min_by(|&a, &b| lists[a].density().total_cmp(&lists[b].density()))
        .unwrap_or(0);
    let mut others: Vec<usize> = (0..lists.len()).filter(|&i| i != driver).collect();
    others.sort_by(|&a, &b| lists[a].density().total_cmp(&lists[b].density()));
    let max = usize::try_from(MAX_CANDIDATES).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut taken = 0usize; // driver rows consumed
    let mut chunk;
    loop {
        if taken == lists[driver].rows.len() {
            if lists[driver].complete || out.len() == max {
                break;
            }
            let below = lists[driver].rows.last().map_or(i64::MAX, |r| r.0);
            // Enough driver rows for the candidates still wanted at the yield seen so
            // far (with a margin), within FIRST_CHUNK..=CHUNK_MAX.
            let wanted = (max - out.len()) as f64;
            let yield_ = (out.len().max(1) as f64) / (taken.max(1) as f64);
            let need = (1.25 * wanted / yield_).ceil().min(CHUNK_MAX as f64) as i64;
            chunk = need.clamp(FIRST_CHUNK, CHUNK_MAX);
            let more = conn
                .query(&sql.next, &[&lists[driver].word, &below, &chunk])
                .await?;
            let d = &mut lists[driver];
            d.complete = (more.len() as i64) < chunk;
            for r in &more {
                d.rows.push((get(r, 0)?, get(r, 1)?, get(r, 2)?));
            }
            if taken == d.rows.len() {
                break;
            }
        }
        // The batch: the driver's rows not yet consumed.
        let batch: Vec<(i64, i32, i32)> = lists[driver].rows[taken..].to_vec();
        taken = lists[driver].rows.len();
        let mut live: Vec<Candidate> = batch
            .iter()
            .map(|&(id, weight, len)| {
                let mut weights = vec![0; words.len()];
                weights[driver] = weight;
                Candidate { id, len, weights }
            })
            .collect();
        let (hi, lo) = (batch[0].0, batch[batch.len() - 1].0);
        for &o in &others {
            if live.is_empty() {
                break;
            }
            let found = weights_in(conn, sql, &lists[o], &live, lo, hi).await?;
            live.retain_mut(|c| match found.get(&c.id) {
                Some(&w) => {
                    c.weights[o] = w;
                    true
                }
                None => false,
            });
        }
        for c in live {
            out.push(c);
            if out.len() == max {
                return Ok((out, densities));
            }
        }
    }
    Ok((out, densities))
}

/// The weights of `list`'s word in the candidates `live` (ids in lo..=hi), read from the
/// rows already fetched when they cover the range, else over the range or by the ids.
async fn weights_in(
    conn: &Conn,
    sql: &Statements,
    list: &List,
    live: &[Candidate],
    lo: i64,
    hi: i64,
) -> Result<HashMap<i64, i32>> {
    let covered = list.complete || list.rows.last().is_some_and(|r| r.0 <= lo);
    if covered {
        return Ok(list
            .rows
            .iter()
            .filter(|r| (lo..=hi).contains(&r.0))
            .map(|r| (r.0, r.1))
            .collect());
    }
    let expected = list.density() * ((hi - lo + 1) as f64);
    let rows = if expected > PROBE_RATIO * live.len() as f64 {
        let ids: Vec<i64> = live.iter().map(|c| c.id).collect();
        conn.query(&sql.probe, &[&list.word, &ids]).await?
    } else {
        conn.query(&sql.range, &[&list.word, &lo, &hi]).await?
    };
    rows.iter().map(|r| Ok((get(r, 0)?, get(r, 1)?))).collect()
}

/// BM25 of each candidate (query words weighted by how rare they look), best first; ties
/// go to the newer item. Returns (id, score) of the best `limit`.
fn rank(cands: &[Candidate], densities: &[f64], limit: usize) -> Vec<(i64, f64)> {
    if cands.is_empty() {
        return Vec::new();
    }
    let avg = cands.iter().map(|c| f64::from(c.len.max(1))).sum::<f64>() / cands.len() as f64;
    let idf: Vec<f64> = densities
        .iter()
        .map(|&d| {
            let d = d.clamp(1e-9, 1.0);
            (1.0 + (1.0 - d + 0.5e-3) / (d + 0.5e-3)).ln()
        })
        .collect();
    let mut scored: Vec<(i64, f64)> = cands
        .iter()
        .map(|c| {
            let norm = K1 * (1.0 - B + B * f64::from(c.len.max(1)) / avg);
            let s = c
                .weights
                .iter()
                .zip(&idf)
                .map(|(&w, idf)| {
                    let w = f64::from(w);
                    idf * w * (K1 + 1.0) / (w + norm)
                })
                .sum::<f64>();
            (c.id, s)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    scored.truncate(limit);
    scored
}

/// Relevance in 0.5..1 from a BM25 score s >= 0 (every query word is in every hit, so a
/// hit is at least half-relevant; a stronger score moves it towards 1), as SQLite maps
/// FTS5's BM25.
fn similarity(score: f64) -> f64 {
    let s = score.max(0.0);
    0.5 + 0.5 * s / (1.0 + s)
}

/// The best `limit` ids for `query` with their similarity, best first.
async fn best(conn: &Conn, index: Index, query: &str, limit: i64) -> Result<Vec<(i64, f64)>> {
    let words = query_words(query);
    let limit = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
    if words.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let (cands, densities) = candidates(conn, index, &words).await?;
    Ok(rank(&cands, &densities, limit)
        .into_iter()
        .map(|(id, s)| (id, similarity(s)))
        .collect())
}

const POSTS_BY_IDS: Sql = Sql::new(
    concat!(
        "SELECT ",
        post_columns!(),
        " FROM ",
        post_joins!(),
        " WHERE p.id = ANY($1) AND p.is_deleted = 0 AND ($2 OR p.is_quarantined = 0)"
    ),
    &[Type::INT8_ARRAY, Type::BOOL],
);

const COMMENTS_BY_IDS: Sql = Sql::new(
    concat!(
        "SELECT ",
        comment_columns!(),
        " FROM ",
        comment_joins!(),
        " WHERE c.id = ANY($1) AND c.is_deleted = 0 AND p.is_deleted = 0
           AND ($2 OR (c.is_quarantined = 0 AND p.is_quarantined = 0))"
    ),
    &[Type::INT8_ARRAY, Type::BOOL],
);

/// Puts `items` (found by id, in any order) in the order of `best`, with its similarity.
fn in_rank_order<T>(best: &[(i64, f64)], items: Vec<(i64, T)>) -> Vec<(T, f64)> {
    let mut by_id: HashMap<i64, T> = items.into_iter().collect();
    best.iter()
        .filter_map(|(id, s)| by_id.remove(id).map(|t| (t, *s)))
        .collect()
}

/// The items matching every word of `query`, best first: the best `limit` candidates are
/// picked before the visibility filter (as in SQLite), then read whole with `by_ids`.
async fn search<T>(
    db: &PgPool,
    index: Index,
    by_ids: &Sql,
    (query, limit, include_quarantined): (&str, i64, bool),
    read: fn(&crate::Row) -> Result<T>,
    id: fn(&T) -> i64,
) -> Result<Vec<(T, f64)>> {
    let conn = db.get().await?;
    let best = best(&conn, index, query, limit).await?;
    if best.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = best.iter().map(|b| b.0).collect();
    let rows = conn.query(by_ids, &[&ids, &include_quarantined]).await?;
    let items = rows
        .iter()
        .map(|r| read(r).map(|t| (id(&t), t)))
        .collect::<Result<Vec<_>>>()?;
    Ok(in_rank_order(&best, items))
}

/// Posts matching every word of `query`, best first.
pub(crate) async fn search_posts(
    db: &PgPool,
    query: &str,
    limit: i64,
    include_quarantined: bool,
) -> Result<Vec<(Post, f64)>> {
    let wanted = (query, limit, include_quarantined);
    search(
        db,
        Index::Posts,
        &POSTS_BY_IDS,
        wanted,
        post_from_row,
        |p| p.id,
    )
    .await
}

/// Comments matching every word of `query`, best first.
pub(crate) async fn search_comments(
    db: &PgPool,
    query: &str,
    limit: i64,
    include_quarantined: bool,
) -> Result<Vec<(Comment, f64)>> {
    let wanted = (query, limit, include_quarantined);
    search(
        db,
        Index::Comments,
        &COMMENTS_BY_IDS,
        wanted,
        comment_from_row,
        |c| c.id,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_count_title_words_twice_and_fold_like_fts5() {
        let p = Postings::of_post("Reef reef", Some("the REEF and École"), None);
        let at = |w: &str| p.words.iter().position(|x| x == w).map(|i| p.weights[i]);
        assert_eq!(at("reef"), Some(5));
        assert_eq!(at("ecole"), Some(1));
        assert_eq!(at("the"), Some(1));
        assert_eq!(p.len, 6);
        assert!(Postings::of_comment("  ?! ").words.is_empty());
    }

    #[test]
    fn long_words_are_cut_on_a_character_boundary() {
        let long = "é".repeat(200);
        let p = Postings::of_comment(&long);
        assert!(p.words[0].len() <= WORD_MAX_BYTES);
        assert_eq!(query_words(&long), p.words);
        assert_eq!(query_words("a b a \" OR *"), vec!["a", "b", "or"]);
        assert_eq!(query_words(&"w ".repeat(100)).len(), 1);
    }

    #[test]
    fn rarer_words_and_more_occurrences_rank_higher() {
        let c = |id, len, weights: Vec<i32>| Candidate { id, len, weights };
        // Same length: the one with more of the word first.
        let r = rank(&[c(1, 10, vec![1]), c(2, 10, vec![3])], &[0.1], 10);
        assert_eq!(r[0].0, 2);
        // Two words: holding the rare one more counts more than the common one.
        let r = rank(
            &[c(1, 10, vec![3, 1]), c(2, 10, vec![1, 3])],
            &[0.5, 0.01],
            10,
        );
        assert_eq!(r[0].0, 2);
        // Ties go to the newer item; limit applies.
        let r = rank(&[c(1, 10, vec![1]), c(2, 10, vec![1])], &[0.1], 1);
        assert_eq!(r, vec![(2, r[0].1)]);
        for (_, s) in rank(&[c(1, 1, vec![100])], &[1.0], 1) {
            assert!((0.5..=1.0).contains(&similarity(s)));
        }
    }
}
