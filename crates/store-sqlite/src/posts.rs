//! Posts.

use rusqlite::{Connection, OptionalExtension, Row, params};
pub use tidepool_core::model::posts::*;

use crate::agents::touch;
use crate::schema::bump_counter;
use crate::{DbError, Result};

macro_rules! post_columns {
    () => {
        "p.id, p.uuid, p.title, p.content, p.url, p.post_type, p.score, p.upvotes, p.downvotes, \
         p.weighted_score, p.hot_rank, p.comment_count, p.is_pinned, p.created_at, p.updated_at, \
         a.id, a.uuid, a.name, a.description, a.karma, a.follower_count, a.avatar_url, \
         s.id, s.uuid, s.name, s.display_name, \
         p.safety_verdict, p.safety_labels, p.injection_score, p.is_quarantined"
    };
}

/// `CROSS JOIN` fixes the join order in SQLite: posts is always the outer loop, so the
/// posts index chosen for the sort drives every listing and the planner can never start
/// from a small table and sort what it finds (tests/query_plans.rs).
macro_rules! post_joins {
    () => {
        "posts p CROSS JOIN agents a ON a.id = p.author_id CROSS JOIN submolts s ON s.id = p.submolt_id"
    };
}

/// The columns [`post_from_row`] reads, for queries that drive the join from elsewhere.
pub(crate) const POST_COLUMNS: &str = post_columns!();
pub(crate) const POST_JOINS: &str = post_joins!();
pub(crate) const POST_SELECT: &str = concat!("SELECT ", post_columns!(), " FROM ", post_joins!());

pub(crate) fn author_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<AuthorRef> {
    Ok(AuthorRef {
        id: r.get(at)?,
        uuid: r.get(at + 1)?,
        name: r.get(at + 2)?,
        description: r.get(at + 3)?,
        karma: r.get(at + 4)?,
        follower_count: r.get(at + 5)?,
        avatar_url: r.get(at + 6)?,
    })
}

pub(crate) fn post_from_row(r: &Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        id: r.get(0)?,
        uuid: r.get(1)?,
        title: r.get(2)?,
        content: r.get(3)?,
        url: r.get(4)?,
        post_type: crate::parsed(r, 5, str::parse)?,
        score: r.get(6)?,
        upvotes: r.get(7)?,
        downvotes: r.get(8)?,
        weighted_score: r.get(9)?,
        hot_rank: r.get(10)?,
        comment_count: r.get(11)?,
        is_pinned: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        author: author_from_row(r, 15)?,
        submolt: SubmoltRef {
            id: r.get(22)?,
            uuid: r.get(23)?,
            name: r.get(24)?,
            display_name: r.get(25)?,
        },
        safety: safety_from_row(r, 26)?,
    })
}

pub(crate) fn safety_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<Safety> {
    Ok(Safety {
        verdict: crate::parsed(r, at, str::parse)?,
        labels: crate::parsed(r, at + 1, Labels::from_json)?,
        injection_score: r.get(at + 2)?,
        // is_quarantined is a visibility: 0 everywhere, 1 quarantined, 2 submolt only.
        quarantined: r.get::<_, i64>(at + 3)? == 1,
        submolt_only: r.get::<_, i64>(at + 3)? == 2,
    })
}

pub fn create(conn: &Connection, new: NewPost) -> Result<Post> {
    conn.prepare_cached(
        "INSERT INTO posts(uuid, author_id, submolt_id, title, content, url, post_type, hot_rank, created_at, updated_at,
                safety_verdict, safety_labels, injection_score, is_quarantined)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, tp_hot(0, ?8), ?8, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        crate::new_public_id(),
        new.author_id,
        new.submolt_id,
        new.title,
        new.content,
        new.url,
        new.post_type.as_str(),
        new.now,
        new.safety.verdict.as_str(),
        new.safety.labels.to_json(),
        new.safety.injection_score,
        new.safety.quarantined
    ])?;
    let id = conn.last_insert_rowid();
    // Staged; indexed at the group commit (schema::flush_fts).
    conn.prepare_cached(
        "INSERT INTO fts_pending(kind, id, title, content) VALUES (0, ?1, ?2, ?3)",
    )?
    .execute(params![
        id,
        new.title,
        format!(
            "{} {}",
            new.content.as_deref().unwrap_or(""),
            new.url.as_deref().unwrap_or("")
        )
    ])?;
    conn.prepare_cached(
        "UPDATE submolts SET post_count = post_count + 1, last_activity_at = ?2 WHERE id = ?1",
    )?
    .execute(params![new.submolt_id, new.now])?;
    conn.prepare_cached("UPDATE agents SET post_count = post_count + 1 WHERE id = ?1")?
        .execute([new.author_id])?;
    touch(conn, new.author_id, new.now)?;
    bump_counter(conn, "posts", 1)?;
    by_id(conn, id)?.ok_or(DbError::NotFound("Post"))
}

pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Post>> {
    Ok(conn
        .prepare_cached(&format!(
            "{POST_SELECT} WHERE p.id = ?1 AND p.is_deleted = 0"
        ))?
        .query_row([id], post_from_row)
        .optional()?)
}

/// A live (not deleted) post by public id.
pub fn by_uuid(conn: &Connection, uuid: &str) -> Result<Option<Post>> {
    Ok(conn
        .prepare_cached(&format!(
            "{POST_SELECT} WHERE p.uuid = ?1 AND p.is_deleted = 0"
        ))?
        .query_row([uuid], post_from_row)
        .optional()?)
}

/// Deletes a post: its text is erased and it leaves every listing and the search index.
/// The row stays (flagged) so votes and comments keep a valid parent and karma stays
/// equal to the votes an author received.
pub fn delete(conn: &Connection, post: &Post) -> Result<()> {
    conn.prepare_cached(
        "UPDATE posts SET is_deleted = 1, is_pinned = 0, title = '[deleted]', content = NULL, url = NULL, updated_at = ?2
         WHERE id = ?1 AND is_deleted = 0",
    )?
    .execute(params![post.id, tidepool_core::time::now_ms()])?;
    conn.prepare_cached("DELETE FROM posts_fts WHERE rowid = ?1")?
        .execute([post.id])?;
    conn.prepare_cached("DELETE FROM fts_pending WHERE kind = 0 AND id = ?1")?
        .execute([post.id])?;
    conn.prepare_cached("UPDATE submolts SET post_count = post_count - 1 WHERE id = ?1")?
        .execute([post.submolt.id])?;
    conn.prepare_cached("UPDATE agents SET post_count = post_count - 1 WHERE id = ?1")?
        .execute([post.author.id])?;
    bump_counter(conn, "posts", -1)?;
    Ok(())
}

/// Pins or unpins; false if it already was in that state.
pub fn set_pinned(conn: &Connection, post: &Post, pinned: bool) -> Result<bool> {
    if pinned && !post.is_pinned {
        let count: i64 = conn
            .prepare_cached("SELECT count(*) FROM posts WHERE submolt_id = ?1 AND is_pinned = 1")?
            .query_row([post.submolt.id], |r| r.get(0))?;
        if count >= MAX_PINNED {
            return Err(DbError::Refused(format!(
                "A submolt can have at most {MAX_PINNED} pinned posts"
            )));
        }
    }
    let n = conn
        .prepare_cached("UPDATE posts SET is_pinned = ?2 WHERE id = ?1 AND is_pinned != ?2")?
        .execute(params![post.id, pinned])?;
    Ok(n == 1)
}

/// The pinned posts of a submolt (at most [`MAX_PINNED`]).
pub fn pinned(conn: &Connection, submolt_id: i64) -> Result<Vec<Post>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{POST_SELECT} WHERE p.submolt_id = ?1 AND p.is_pinned = 1 AND p.is_deleted = 0 ORDER BY p.id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![submolt_id, MAX_PINNED], post_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Site-wide counters: agents, submolts, posts, comments.
pub fn stats(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached("SELECT name, value FROM counters")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
