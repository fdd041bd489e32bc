//! Posts and comments as rows: the column lists and joins every query of them selects,
//! the row mappers, and the listing statements (built once at compile time, one per
//! scope, sort and keyset variant, so each can be planned against its own index).
//!
//! Self-contained on purpose (it only names `crate::{Row, Sql, Type}` and the model): the
//! crate's query-plan test includes this file to EXPLAIN the very statements the store
//! runs.

use tidepool_core::model::comments::{Comment, CommentSort};
use tidepool_core::model::feed::{FeedScope, PostSort};
use tidepool_core::model::posts::{AuthorRef, Labels, Post, Safety, SubmoltRef};
use tidepool_store::{Result, StoreError};
use tokio_postgres::types::FromSql;

use crate::{Row, Sql, Type};

/// Columns [`post_from_row`] reads, in its order.
macro_rules! post_columns {
    () => {
        "p.id, p.uuid, p.title, p.content, p.url, p.post_type, p.score, p.upvotes, p.downvotes, \
         p.weighted_score, p.hot_rank, p.comment_count, p.is_pinned, p.created_at, p.updated_at, \
         a.id, a.uuid, a.name, a.description, a.karma, a.follower_count, a.avatar_url, \
         s.id, s.uuid, s.name, s.display_name, \
         p.safety_verdict, p.safety_labels, p.injection_score, p.is_quarantined"
    };
}

/// Posts joined to their author and submolt; posts drive the join (plain inner joins on
/// primary keys: the planner nests the small lookups under the posts index scan).
macro_rules! post_joins {
    () => {
        "posts p JOIN agents a ON a.id = p.author_id JOIN submolts s ON s.id = p.submolt_id"
    };
}

/// Columns [`comment_from_row`] reads, in its order.
macro_rules! comment_columns {
    () => {
        "c.id, c.uuid, c.post_id, p.uuid, p.title, c.parent_id, pc.uuid, c.depth, \
         c.content, c.score, c.upvotes, c.downvotes, c.best_rank, c.is_deleted, c.created_at, \
         c.updated_at, a.id, a.uuid, a.name, a.description, a.karma, a.follower_count, \
         a.avatar_url, c.safety_verdict, c.safety_labels, c.injection_score, c.is_quarantined"
    };
}

/// Comments joined to their post, author and parent.
macro_rules! comment_joins {
    () => {
        "comments c JOIN posts p ON p.id = c.post_id JOIN agents a ON a.id = c.author_id \
         LEFT JOIN comments pc ON pc.id = c.parent_id"
    };
}

pub(crate) use {comment_columns, comment_joins, post_columns, post_joins};

/// Reads column `i`, as a store error when the row does not have the expected type.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|e| StoreError::Internal(format!("postgres row, column {i}: {e}")))
}

/// Reads text column `i` as a domain value (a verdict, labels, a role). A stored name this
/// build cannot read is a store error naming the column, never a guess.
pub(crate) fn parsed<T, E: std::fmt::Display>(
    row: &Row,
    i: usize,
    parse: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> Result<T> {
    parse(get(row, i)?).map_err(|e| StoreError::Internal(format!("postgres row, column {i}: {e}")))
}

/// A 0/1 smallint flag as a bool.
fn flag(row: &Row, i: usize) -> Result<bool> {
    Ok(get::<i16>(row, i)? != 0)
}

/// The author columns starting at `at` (seven of them).
pub(crate) fn author_ref(row: &Row, at: usize) -> Result<AuthorRef> {
    Ok(AuthorRef {
        id: get(row, at)?,
        uuid: get(row, at + 1)?,
        name: get(row, at + 2)?,
        description: get(row, at + 3)?,
        karma: get(row, at + 4)?,
        follower_count: get(row, at + 5)?,
        avatar_url: get(row, at + 6)?,
    })
}

/// The guard columns starting at `at` (verdict, labels, injection score, visibility).
pub(crate) fn safety(row: &Row, at: usize) -> Result<Safety> {
    // is_quarantined is a visibility: 0 everywhere, 1 quarantined, 2 submolt only.
    let visibility: i16 = get(row, at + 3)?;
    Ok(Safety {
        verdict: parsed(row, at, str::parse)?,
        labels: parsed(row, at + 1, Labels::from_json)?,
        injection_score: get(row, at + 2)?,
        quarantined: visibility == 1,
        submolt_only: visibility == 2,
    })
}

/// A post from a row starting with [`post_columns`].
pub(crate) fn post_from_row(row: &Row) -> Result<Post> {
    Ok(Post {
        id: get(row, 0)?,
        uuid: get(row, 1)?,
        title: get(row, 2)?,
        content: get(row, 3)?,
        url: get(row, 4)?,
        post_type: parsed(row, 5, str::parse)?,
        score: get(row, 6)?,
        upvotes: get(row, 7)?,
        downvotes: get(row, 8)?,
        weighted_score: get(row, 9)?,
        hot_rank: get(row, 10)?,
        comment_count: get(row, 11)?,
        is_pinned: flag(row, 12)?,
        created_at: get(row, 13)?,
        updated_at: get(row, 14)?,
        author: author_ref(row, 15)?,
        submolt: SubmoltRef {
            id: get(row, 22)?,
            uuid: get(row, 23)?,
            name: get(row, 24)?,
            display_name: get(row, 25)?,
        },
        safety: safety(row, 26)?,
    })
}

/// A comment from a row starting with [`comment_columns`].
pub(crate) fn comment_from_row(row: &Row) -> Result<Comment> {
    Ok(Comment {
        id: get(row, 0)?,
        uuid: get(row, 1)?,
        post_id: get(row, 2)?,
        post_uuid: get(row, 3)?,
        post_title: get(row, 4)?,
        parent_id: get(row, 5)?,
        parent_uuid: get(row, 6)?,
        depth: i64::from(get::<i32>(row, 7)?),
        content: get(row, 8)?,
        score: get(row, 9)?,
        upvotes: get(row, 10)?,
        downvotes: get(row, 11)?,
        best_rank: get(row, 12)?,
        is_deleted: flag(row, 13)?,
        created_at: get(row, 14)?,
        updated_at: get(row, 15)?,
        author: author_ref(row, 16)?,
        safety: safety(row, 23)?,
    })
}

pub(crate) const POST_BY_ID: Sql = Sql::new(
    concat!(
        "SELECT ",
        post_columns!(),
        " FROM ",
        post_joins!(),
        " WHERE p.id = $1 AND p.is_deleted = 0"
    ),
    &[Type::INT8],
);

pub(crate) const COMMENT_BY_ID: Sql = Sql::new(
    concat!(
        "SELECT ",
        comment_columns!(),
        " FROM ",
        comment_joins!(),
        " WHERE c.id = $1 AND p.is_deleted = 0"
    ),
    &[Type::INT8],
);

// ---- list_posts ----
//
// Parameters of every list statement: $1 keyset key (float8 for hot and rising, int8 for
// new and top), $2 keyset id, $3 limit (with the look-ahead row), $4 offset, $5
// include_quarantined, $6 exclude_pinned, $7 oldest created_at (i64::MIN: no window),
// $8 the submolt or author id (unused for the global scope), $9 now (rising only).
// Statements without a keyset leave $1 and $2 unused: declared types make that valid.

macro_rules! list_sql {
    ($scope:literal, $visibility:literal, $key:literal, keyset) => {
        list_sql!(@ $scope, $visibility, $key, concat!(" AND (", $key, ", p.id) < ($1, $2)"))
    };
    ($scope:literal, $visibility:literal, $key:literal, none) => {
        list_sql!(@ $scope, $visibility, $key, "")
    };
    (@ $scope:literal, $visibility:literal, $key:literal, $keyset:expr) => {
        concat!(
            "SELECT ",
            post_columns!(),
            " FROM ",
            post_joins!(),
            " WHERE p.is_deleted = 0 AND ($5 OR ",
            $visibility,
            ") AND (NOT $6 OR p.is_pinned = 0) AND p.created_at >= $7",
            $scope,
            $keyset,
            " ORDER BY ",
            $key,
            " DESC, p.id DESC LIMIT $3 OFFSET $4"
        )
    };
}

/// One sort's four statements: global/submolt/author scope x with/without keyset.
macro_rules! list_sorts {
    ($key:literal, $keytype:expr) => {
        [
            Sql::new(
                list_sql!("", "p.is_quarantined = 0", $key, none),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                    Type::BOOL,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                ],
            ),
            Sql::new(
                list_sql!("", "p.is_quarantined = 0", $key, keyset),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                    Type::BOOL,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                ],
            ),
            // A post a submolt moderator released is back in that submolt's feed only.
            Sql::new(
                list_sql!(
                    " AND p.submolt_id = $8",
                    "p.is_quarantined <> 1",
                    $key,
                    none
                ),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                    Type::BOOL,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                ],
            ),
            Sql::new(
                list_sql!(
                    " AND p.submolt_id = $8",
                    "p.is_quarantined <> 1",
                    $key,
                    keyset
                ),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                    Type::BOOL,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                ],
            ),
            Sql::new(
                list_sql!(" AND p.author_id = $8", "p.is_quarantined = 0", $key, none),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                    Type::BOOL,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                ],
            ),
            Sql::new(
                list_sql!(
                    " AND p.author_id = $8",
                    "p.is_quarantined = 0",
                    $key,
                    keyset
                ),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                    Type::BOOL,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                ],
            ),
        ]
    };
}

const LIST_HOT: [Sql; 6] = list_sorts!("p.hot_rank", Type::FLOAT8);
const LIST_NEW: [Sql; 6] = list_sorts!("p.created_at", Type::INT8);
const LIST_TOP: [Sql; 6] = list_sorts!("p.score", Type::INT8);
// Rising decays with time, so it is computed at read time over RISING_WINDOW_MS only.
const LIST_RISING: [Sql; 6] = list_sorts!(
    "tp_rising(p.weighted_score, p.created_at, $9)",
    Type::FLOAT8
);

/// Whether a post sort's key is an integer column (bound as int8) or a float.
pub(crate) fn integer_key(sort: PostSort) -> bool {
    matches!(sort, PostSort::New | PostSort::Top)
}

/// The list statement for a scope, sort and keyset variant (see the parameters above).
pub(crate) fn list_posts_sql(scope: FeedScope, sort: PostSort, keyset: bool) -> &'static Sql {
    let table = match sort {
        PostSort::Hot => &LIST_HOT,
        PostSort::New => &LIST_NEW,
        PostSort::Top => &LIST_TOP,
        PostSort::Rising => &LIST_RISING,
    };
    let scope = match scope {
        FeedScope::All => 0,
        FeedScope::Submolt(_) => 2,
        FeedScope::Author(_) => 4,
    };
    &table[scope + usize::from(keyset)]
}

// ---- personal feed ----
//
// Parameters: $1/$2 keyset, $3 rows per source (with look-ahead), $4 page limit (with
// look-ahead), $5 include_quarantined, $6 following_only, $7 oldest created_at, $8 the
// reader, $9 now (rising only), $10 most sources of each kind, $11 offset.
//
// Each source is read through its own index (LATERAL, at most $3 rows each) and the
// pages are merged, like SQLite's per-source list_posts calls: the cost depends on the
// page size and the number of sources, never on the size of the store. A submolt source
// reads like the submolt's feed (released-to-submolt posts count against its rows) and
// those posts are dropped after the merge, as in SQLite.

macro_rules! feed_sql {
    ($key:literal, keyset) => {
        feed_sql!(@ $key, concat!(" AND (", $key, ", p.id) < ($1, $2)"))
    };
    ($key:literal, none) => {
        feed_sql!(@ $key, "")
    };
    (@ $key:literal, $keyset:expr) => {
        concat!(
            "WITH subs AS (SELECT submolt_id FROM subscriptions WHERE agent_id = $8 AND NOT $6 \
                           ORDER BY submolt_id LIMIT $10),
                  fols AS (SELECT followed_id FROM follows WHERE follower_id = $8 \
                           ORDER BY followed_id LIMIT $10),
                  hits AS (
                      SELECT x.id, x.k, x.q FROM subs CROSS JOIN LATERAL (
                          SELECT p.id, ", $key, " AS k, p.is_quarantined AS q FROM posts p
                          WHERE p.submolt_id = subs.submolt_id AND p.is_deleted = 0
                            AND ($5 OR p.is_quarantined <> 1) AND p.created_at >= $7", $keyset, "
                          ORDER BY ", $key, " DESC, p.id DESC LIMIT $3) x
                      UNION ALL
                      SELECT x.id, x.k, x.q FROM fols CROSS JOIN LATERAL (
                          SELECT p.id, ", $key, " AS k, p.is_quarantined AS q FROM posts p
                          WHERE p.author_id = fols.followed_id AND p.is_deleted = 0
                            AND ($5 OR p.is_quarantined = 0) AND p.created_at >= $7", $keyset, "
                          ORDER BY ", $key, " DESC, p.id DESC LIMIT $3) x),
                  merged AS (
                      SELECT DISTINCT id, k FROM hits WHERE $5 OR q <> 2
                      ORDER BY k DESC, id DESC LIMIT $4 OFFSET $11)
             SELECT ",
            post_columns!(),
            " FROM merged m CROSS JOIN ",
            post_joins!(),
            " WHERE p.id = m.id ORDER BY m.k DESC, m.id DESC"
        )
    };
}

macro_rules! feed_sorts {
    ($key:literal, $keytype:expr) => {
        [
            Sql::new(
                feed_sql!($key, none),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                    Type::BOOL,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                ],
            ),
            Sql::new(
                feed_sql!($key, keyset),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                    Type::BOOL,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                ],
            ),
        ]
    };
}

const FEED_HOT: [Sql; 2] = feed_sorts!("p.hot_rank", Type::FLOAT8);
const FEED_NEW: [Sql; 2] = feed_sorts!("p.created_at", Type::INT8);
const FEED_TOP: [Sql; 2] = feed_sorts!("p.score", Type::INT8);
const FEED_RISING: [Sql; 2] = feed_sorts!(
    "tp_rising(p.weighted_score, p.created_at, $9)",
    Type::FLOAT8
);

/// The personal feed statement for a sort and keyset variant.
pub(crate) fn feed_sql(sort: PostSort, keyset: bool) -> &'static Sql {
    let table = match sort {
        PostSort::Hot => &FEED_HOT,
        PostSort::New => &FEED_NEW,
        PostSort::Top => &FEED_TOP,
        PostSort::Rising => &FEED_RISING,
    };
    &table[usize::from(keyset)]
}

// ---- comment tree roots ----
//
// Parameters: $1/$2 keyset, $3 limit (with look-ahead), $4 offset, $5 the post, $6
// include_quarantined. Each sort reads a stored column through its own partial index of
// the post's roots (`parent_id IS NULL` matches the index predicate). A thread lives in
// its submolt, so comments a submolt moderator released (2) show.

macro_rules! roots_sql {
    ($order:literal, $keyset:literal) => {
        concat!(
            "SELECT ",
            comment_columns!(),
            " FROM ",
            comment_joins!(),
            " WHERE c.post_id = $5 AND c.parent_id IS NULL AND ($6 OR c.is_quarantined <> 1)",
            $keyset,
            " ORDER BY ",
            $order,
            " LIMIT $3 OFFSET $4"
        )
    };
}

macro_rules! roots_sorts {
    ($order:literal, $keyset:literal, $keytype:expr) => {
        [
            Sql::new(
                roots_sql!($order, ""),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                ],
            ),
            Sql::new(
                roots_sql!($order, $keyset),
                &[
                    $keytype,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                ],
            ),
        ]
    };
}

const ROOTS_BEST: [Sql; 2] = roots_sorts!(
    "c.best_rank DESC, c.id DESC",
    " AND (c.best_rank, c.id) < ($1, $2)",
    Type::FLOAT8
);
const ROOTS_TOP: [Sql; 2] = roots_sorts!(
    "c.score DESC, c.id DESC",
    " AND (c.score, c.id) < ($1, $2)",
    Type::INT8
);
const ROOTS_NEW: [Sql; 2] = roots_sorts!(
    "c.created_at DESC, c.id DESC",
    " AND (c.created_at, c.id) < ($1, $2)",
    Type::INT8
);
const ROOTS_OLD: [Sql; 2] = roots_sorts!(
    "c.created_at ASC, c.id ASC",
    " AND (c.created_at, c.id) > ($1, $2)",
    Type::INT8
);
const ROOTS_CONTROVERSIAL: [Sql; 2] = roots_sorts!(
    "c.controversy DESC, c.id DESC",
    " AND (c.controversy, c.id) < ($1, $2)",
    Type::FLOAT8
);

/// Whether a comment sort's cursor key is an integer column.
pub(crate) fn comment_integer_key(sort: CommentSort) -> bool {
    matches!(sort, CommentSort::Top | CommentSort::New | CommentSort::Old)
}

/// The roots statement for a comment sort and keyset variant.
pub(crate) fn roots_sql(sort: CommentSort, keyset: bool) -> &'static Sql {
    let table = match sort {
        CommentSort::Best => &ROOTS_BEST,
        CommentSort::Top => &ROOTS_TOP,
        CommentSort::New => &ROOTS_NEW,
        CommentSort::Old => &ROOTS_OLD,
        CommentSort::Controversial => &ROOTS_CONTROVERSIAL,
    };
    &table[usize::from(keyset)]
}

/// A keyset position on an integer column from a cursor's float key, for `(k, id) <
/// (key, id)` when `descending` (else `>`): an integral key is exact; a fractional one
/// (never produced by tidepool, but a cursor is client input) is moved to the equivalent
/// integer bound, and out-of-range values saturate.
pub(crate) fn integer_position(key: f64, id: i64, descending: bool) -> (i64, i64) {
    if key.fract() == 0.0 || !key.is_finite() {
        // `as` saturates (NaN is 0), which is as good a position as any for a bad cursor.
        (key as i64, id)
    } else if descending {
        // k < 1.5 <=> k <= 1 <=> (k, id) < (2, i64::MIN)
        (key.ceil() as i64, i64::MIN)
    } else {
        // k > 1.5 <=> k >= 2 <=> (k, id) > (1, i64::MAX)
        (key.floor() as i64, i64::MAX)
    }
}
