//! Post feeds, comment trees, profiles' comments and full-text search on PostgreSQL.
//!
//! Every listing is keyset-paginated on (sort key, id) like SQLite's, through the
//! statements of [`super::post_rows`] (one per scope, sort and keyset variant, each
//! walking its own index: tests/pg_content.rs EXPLAINs them). Each listing is a single
//! statement, so it reads one snapshot.

use tidepool_core::model::comments::{Comment, CommentSort, TREE_NODE_CAP};
use tidepool_core::model::feed::{
    FEED_MAX_SOURCES, FeedScope, Page, PageRequest, PostSort, RISING_WINDOW_MS, Window,
};
use tidepool_core::model::posts::Post;
use tidepool_store::Result;

use super::post_rows::{
    comment_columns, comment_from_row, comment_integer_key, comment_joins, feed_sql, integer_key,
    integer_position, list_posts_sql, post_from_row, roots_sql,
};
use crate::{PgPool, Row, Sql, ToSql, Type};

/// LIMIT (with the look-ahead row) and OFFSET of a page, in range whatever built the
/// request (as SQLite's `fetch`: a negative limit is an empty page, a negative offset none).
fn window(page: &PageRequest) -> (i64, i64) {
    (page.limit.clamp(0, i64::MAX - 1) + 1, page.offset.max(0))
}

/// The keyset position bound as $1/$2: an int8 pair for integer sort keys, else float8.
/// Without a cursor the statement does not read them; a typed placeholder is bound.
enum Position {
    Int(i64, i64),
    Float(f64, i64),
}

impl Position {
    fn new(after: Option<(f64, i64)>, integer: bool, descending: bool) -> Self {
        match (after, integer) {
            (Some((k, id)), true) => {
                let (k, id) = integer_position(k, id, descending);
                Self::Int(k, id)
            }
            (None, true) => Self::Int(0, 0),
            (Some((k, id)), false) => Self::Float(k, id),
            (None, false) => Self::Float(0.0, 0),
        }
    }

    fn key(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Int(k, _) => k,
            Self::Float(k, _) => k,
        }
    }

    fn id(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Int(_, id) | Self::Float(_, id) => id,
        }
    }
}

/// The key a page's cursor carries for a post sort (the same as SQLite's).
fn post_key(sort: PostSort, now: i64) -> impl Fn(&Post) -> (f64, i64) {
    move |p| match sort {
        PostSort::Hot => (p.hot_rank, p.id),
        PostSort::New => (p.created_at as f64, p.id),
        PostSort::Top => (p.score as f64, p.id),
        PostSort::Rising => (
            tidepool_core::rank::rising(p.weighted_score, p.created_at, now),
            p.id,
        ),
    }
}

fn posts(rows: &[Row]) -> Result<Vec<Post>> {
    rows.iter().map(post_from_row).collect()
}

fn comments(rows: &[Row]) -> Result<Vec<Comment>> {
    rows.iter().map(comment_from_row).collect()
}

pub(crate) async fn list_posts(
    db: &PgPool,
    scope: FeedScope,
    sort: PostSort,
    window_t: Window,
    exclude_pinned: bool,
    page: PageRequest,
) -> Result<Page<Post>> {
    let scope_id = match scope {
        FeedScope::All => 0,
        FeedScope::Submolt(id) | FeedScope::Author(id) => id,
    };
    let window_ms = match sort {
        PostSort::Top => window_t.millis(),
        PostSort::Rising => Some(RISING_WINDOW_MS),
        PostSort::Hot | PostSort::New => None,
    };
    let since = window_ms.map_or(i64::MIN, |ms| page.now.saturating_sub(ms));
    let (limit, offset) = window(&page);
    let at = Position::new(page.after, integer_key(sort), true);
    let sql = list_posts_sql(scope, sort, page.after.is_some());
    let rows = db
        .query(
            sql,
            &[
                at.key(),
                at.id(),
                &limit,
                &offset,
                &page.include_quarantined,
                &exclude_pinned,
                &since,
                &scope_id,
                &page.now,
            ],
        )
        .await?;
    Ok(page.finish(
        posts(&rows)?,
        sort.cursor_listing(),
        post_key(sort, page.now),
    ))
}

pub(crate) async fn personal_feed(
    db: &PgPool,
    agent_id: i64,
    following_only: bool,
    sort: PostSort,
    page: PageRequest,
) -> Result<Page<Post>> {
    // Each source supplies enough rows to fill the page after skipping `offset` (plus the
    // look-ahead), as SQLite's per-source list_posts calls do.
    let offset = page.offset.max(0);
    let per_source = page.limit.saturating_add(offset).clamp(0, i64::MAX - 1) + 1;
    let limit = page.limit.max(0).saturating_add(1);
    let since = if sort == PostSort::Rising {
        page.now.saturating_sub(RISING_WINDOW_MS)
    } else {
        i64::MIN
    };
    let at = Position::new(page.after, integer_key(sort), true);
    let rows = db
        .query(
            feed_sql(sort, page.after.is_some()),
            &[
                at.key(),
                at.id(),
                &per_source,
                &limit,
                &page.include_quarantined,
                &following_only,
                &since,
                &agent_id,
                &page.now,
                &FEED_MAX_SOURCES,
                &offset,
            ],
        )
        .await?;
    Ok(page.finish(
        posts(&rows)?,
        sort.cursor_listing(),
        post_key(sort, page.now),
    ))
}

/// Replies of the page's roots, breadth first (the recursive CTE's work table is one
/// level deep at a time), found through the parent index; the LIMIT stops the recursion
/// once the node budget is reached, so a huge thread costs no more than the cap.
const REPLIES: Sql = Sql::new(
    concat!(
        "WITH RECURSIVE sub(id) AS (
             SELECT c.id FROM comments c WHERE c.parent_id = ANY($1)
             UNION ALL
             SELECT c.id FROM sub JOIN comments c ON c.parent_id = sub.id
         ), picked AS (SELECT id FROM sub LIMIT $2)
         SELECT ",
        comment_columns!(),
        " FROM picked CROSS JOIN ",
        comment_joins!(),
        " WHERE c.id = picked.id AND ($3 OR c.is_quarantined <> 1) ORDER BY c.id"
    ),
    &[Type::INT8_ARRAY, Type::INT8, Type::BOOL],
);

pub(crate) async fn comment_tree(
    db: &PgPool,
    post_id: i64,
    sort: CommentSort,
    page: PageRequest,
) -> Result<(Page<Comment>, Vec<Comment>)> {
    let (limit, offset) = window(&page);
    let at = Position::new(
        page.after,
        comment_integer_key(sort),
        sort != CommentSort::Old,
    );
    let rows = db
        .query(
            roots_sql(sort, page.after.is_some()),
            &[
                at.key(),
                at.id(),
                &limit,
                &offset,
                &post_id,
                &page.include_quarantined,
            ],
        )
        .await?;
    let roots = page.finish(comments(&rows)?, sort.cursor_listing(), |c| {
        (sort.cursor_key(c), c.id)
    });
    let budget = TREE_NODE_CAP - roots.items.len() as i64;
    let root_ids: Vec<i64> = roots.items.iter().map(|c| c.id).collect();
    let replies = if budget > 0 && !root_ids.is_empty() {
        comments(
            &db.query(&REPLIES, &[&root_ids, &budget, &page.include_quarantined])
                .await?,
        )?
    } else {
        Vec::new()
    };
    Ok((roots, replies))
}

/// An agent's newest comments for profiles (released-to-submolt ones stay out: a profile
/// is not the submolt). `$2` NULL: no limit, as SQLite reads a negative LIMIT.
const RECENT_COMMENTS: Sql = Sql::new(
    concat!(
        "SELECT ",
        comment_columns!(),
        " FROM ",
        comment_joins!(),
        " WHERE c.author_id = $1 AND c.is_deleted = 0 AND p.is_deleted = 0
             AND ($3 OR (c.is_quarantined = 0 AND p.is_quarantined = 0))
         ORDER BY c.created_at DESC, c.id DESC LIMIT $2"
    ),
    &[Type::INT8, Type::INT8, Type::BOOL],
);

pub(crate) async fn recent_comments_by(
    db: &PgPool,
    author_id: i64,
    limit: i64,
    include_quarantined: bool,
) -> Result<Vec<Comment>> {
    let limit = (limit >= 0).then_some(limit);
    comments(
        &db.query(
            &RECENT_COMMENTS,
            &[&author_id, &limit, &include_quarantined],
        )
        .await?,
    )
}
