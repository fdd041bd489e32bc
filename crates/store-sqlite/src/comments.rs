//! Comments and comment trees.

use rusqlite::{Connection, OptionalExtension, Row, params};
pub use tidepool_core::model::comments::*;
use tidepool_core::text::COMMENT_DEPTH_MAX;

use crate::agents::touch;
use crate::feed::{Page, PageRequest};
use crate::posts::{author_from_row, safety_from_row};
use crate::schema::bump_counter;
use crate::{DbError, Result};

macro_rules! comment_columns {
    () => {
        "c.id, c.uuid, c.post_id, p.uuid, p.title, c.parent_id, pc.uuid, c.depth, \
         c.content, c.score, c.upvotes, c.downvotes, c.best_rank, c.is_deleted, c.created_at, c.updated_at, \
         a.id, a.uuid, a.name, a.description, a.karma, a.follower_count, a.avatar_url, \
         c.safety_verdict, c.safety_labels, c.injection_score, c.is_quarantined"
    };
}

/// Comments drive the join (see `POST_JOINS`).
macro_rules! comment_joins {
    () => {
        "comments c CROSS JOIN posts p ON p.id = c.post_id CROSS JOIN agents a ON a.id = c.author_id \
         LEFT JOIN comments pc ON pc.id = c.parent_id"
    };
}

pub(crate) const COMMENT_COLUMNS: &str = comment_columns!();
pub(crate) const COMMENT_JOINS: &str = comment_joins!();
pub(crate) const COMMENT_SELECT: &str =
    concat!("SELECT ", comment_columns!(), " FROM ", comment_joins!());

pub(crate) fn comment_from_row(r: &Row<'_>) -> rusqlite::Result<Comment> {
    Ok(Comment {
        id: r.get(0)?,
        uuid: r.get(1)?,
        post_id: r.get(2)?,
        post_uuid: r.get(3)?,
        post_title: r.get(4)?,
        parent_id: r.get(5)?,
        parent_uuid: r.get(6)?,
        depth: r.get(7)?,
        content: r.get(8)?,
        score: r.get(9)?,
        upvotes: r.get(10)?,
        downvotes: r.get(11)?,
        best_rank: r.get(12)?,
        is_deleted: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        author: author_from_row(r, 16)?,
        safety: safety_from_row(r, 23)?,
    })
}

pub fn create(conn: &Connection, new: NewComment) -> Result<Comment> {
    let (parent_id, depth) = match &new.parent_uuid {
        None => (None, 0),
        Some(uuid) => {
            let parent: Option<(i64, i64, i64)> = conn
                .prepare_cached("SELECT id, post_id, depth FROM comments WHERE uuid = ?1")?
                .query_row([uuid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            match parent {
                Some((id, post_id, depth)) if post_id == new.post_id => (Some(id), depth + 1),
                _ => return Err(DbError::NotFound("Parent comment")),
            }
        }
    };
    if depth > COMMENT_DEPTH_MAX {
        return Err(DbError::Refused("Maximum comment depth exceeded".into()));
    }
    conn.prepare_cached(
        "INSERT INTO comments(uuid, post_id, author_id, parent_id, depth, content, created_at, updated_at,
             safety_verdict, safety_labels, injection_score, is_quarantined)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        crate::new_public_id(),
        new.post_id,
        new.author_id,
        parent_id,
        depth,
        new.content,
        new.now,
        new.safety.verdict.as_str(),
        new.safety.labels.to_json(),
        new.safety.injection_score,
        new.safety.quarantined
    ])?;
    let id = conn.last_insert_rowid();
    // Staged; indexed at the group commit (schema::flush_fts).
    conn.prepare_cached("INSERT INTO fts_pending(kind, id, content) VALUES (1, ?1, ?2)")?
        .execute(params![id, new.content])?;
    conn.prepare_cached("UPDATE posts SET comment_count = comment_count + 1 WHERE id = ?1")?
        .execute([new.post_id])?;
    conn.prepare_cached("UPDATE agents SET comment_count = comment_count + 1 WHERE id = ?1")?
        .execute([new.author_id])?;
    touch(conn, new.author_id, new.now)?;
    bump_counter(conn, "comments", 1)?;
    by_id(conn, id)?.ok_or(DbError::NotFound("Comment"))
}

pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Comment>> {
    Ok(conn
        .prepare_cached(&format!(
            "{COMMENT_SELECT} WHERE c.id = ?1 AND p.is_deleted = 0"
        ))?
        .query_row([id], comment_from_row)
        .optional()?)
}

/// A comment by public id, as long as its post still exists.
pub fn by_uuid(conn: &Connection, uuid: &str) -> Result<Option<Comment>> {
    Ok(conn
        .prepare_cached(&format!(
            "{COMMENT_SELECT} WHERE c.uuid = ?1 AND p.is_deleted = 0"
        ))?
        .query_row([uuid], comment_from_row)
        .optional()?)
}

/// Soft delete: the comment keeps its place in the tree (its replies still hang off it)
/// but its text is erased and it leaves the search index. `comment_count` is not
/// decremented, as on Moltbook.
pub fn delete(conn: &Connection, comment: &Comment) -> Result<()> {
    conn.prepare_cached(
        "UPDATE comments SET is_deleted = 1, content = '', updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![comment.id, tidepool_core::time::now_ms()])?;
    conn.prepare_cached("DELETE FROM comments_fts WHERE rowid = ?1")?
        .execute([comment.id])?;
    conn.prepare_cached("DELETE FROM fts_pending WHERE kind = 1 AND id = ?1")?
        .execute([comment.id])?;
    Ok(())
}

/// One page of a post's comment tree: up to `page.limit` root comments in `sort` order and
/// as many of their replies (breadth first) as fit under [`TREE_NODE_CAP`]. Roots come from
/// the post's root index; replies are found through the parent index, never by scanning.
pub fn tree(
    conn: &Connection,
    post_id: i64,
    sort: CommentSort,
    page: &PageRequest,
) -> Result<(Page<Comment>, Vec<Comment>)> {
    // Every sort reads a stored column through its own partial index of the post's roots.
    // The index is named (INDEXED BY): with real statistics SQLite takes `parent_id IS NULL`
    // for a selective term, walks every root comment of every post through the parent index
    // and sorts (measured: 72 ms for a 287-comment post on a 500k-comment store). Named, it
    // cannot, and a change that made the index unusable would fail loudly instead.
    let (index, order, keyset) = match sort {
        CommentSort::Best => (
            "comments_roots_best",
            "c.best_rank DESC, c.id DESC",
            "(c.best_rank, c.id) < (?1, ?2)",
        ),
        CommentSort::Top => (
            "comments_roots_top",
            "c.score DESC, c.id DESC",
            "(c.score, c.id) < (?1, ?2)",
        ),
        CommentSort::New => (
            "comments_post_roots",
            "c.created_at DESC, c.id DESC",
            "(c.created_at, c.id) < (?1, ?2)",
        ),
        CommentSort::Old => (
            "comments_post_roots",
            "c.created_at ASC, c.id ASC",
            "(c.created_at, c.id) > (?1, ?2)",
        ),
        CommentSort::Controversial => (
            "comments_roots_controversial",
            "c.controversy DESC, c.id DESC",
            "(c.controversy, c.id) < (?1, ?2)",
        ),
    };
    let select = format!(
        "SELECT {COMMENT_COLUMNS} FROM {}",
        COMMENT_JOINS.replacen("comments c ", &format!("comments c INDEXED BY {index} "), 1)
    );
    let mut conditions = vec![
        "c.post_id = ?5".to_owned(),
        "c.parent_id IS NULL".to_owned(),
    ];
    // A thread lives in its submolt, so comments a submolt moderator released (2) show.
    if !page.include_quarantined {
        conditions.push("c.is_quarantined != 1".to_owned());
    }
    let roots = crate::feed::fetch(
        page,
        conn,
        &select,
        &conditions,
        keyset,
        order,
        &[&post_id],
        comment_from_row,
    )?;
    let roots = page.finish(roots, sort.cursor_listing(), |c| (sort.cursor_key(c), c.id));

    let budget = TREE_NODE_CAP - roots.items.len() as i64;
    let root_ids: Vec<i64> = roots.items.iter().map(|c| c.id).collect();
    let replies = if budget > 0 && !root_ids.is_empty() {
        let ids = serde_json::to_string(&root_ids).map_err(DbError::internal)?;
        let mut stmt = conn.prepare_cached(&format!(
            "WITH RECURSIVE sub(id) AS (
                 SELECT c.id FROM comments c WHERE c.parent_id IN (SELECT value FROM json_each(?1))
                 UNION ALL
                 SELECT c.id FROM comments c JOIN sub ON c.parent_id = sub.id
                 LIMIT ?2
             )
             {COMMENT_SELECT} WHERE c.id IN (SELECT id FROM sub) AND (?3 OR c.is_quarantined != 1)"
        ))?;
        let rows = stmt.query_map(
            params![ids, budget, page.include_quarantined],
            comment_from_row,
        )?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    Ok((roots, replies))
}

/// An agent's newest comments (for profiles), at most `limit`.
pub fn recent_by_author(
    conn: &Connection,
    author_id: i64,
    limit: i64,
    include_quarantined: bool,
) -> Result<Vec<Comment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{COMMENT_SELECT} WHERE c.author_id = ?1 AND c.is_deleted = 0 AND p.is_deleted = 0
             AND (?3 OR (c.is_quarantined = 0 AND p.is_quarantined = 0))
         ORDER BY c.created_at DESC, c.id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(
        params![author_id, limit, include_quarantined],
        comment_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
