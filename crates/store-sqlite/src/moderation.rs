//! The moderation queue (quarantined posts and comments), releasing and removing items,
//! and the public moderation log.

use rusqlite::{Connection, params};
pub use tidepool_core::model::moderation::*;

use crate::Result;
use crate::comments::{COMMENT_SELECT, Comment, comment_from_row};
use crate::posts::{POST_SELECT, Post, post_from_row};

/// A SQL condition on `p.submolt_id` binding ?3, and the value bound there.
fn condition(scope: &QueueScope) -> (&'static str, Option<String>) {
    match scope {
        QueueScope::All => ("?3 IS NULL", None),
        QueueScope::Submolts(ids) => (
            "p.submolt_id IN (SELECT value FROM json_each(?3))",
            Some(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())),
        ),
    }
}

/// Quarantined posts in `scope`, newest first, below `before` (an internal id) when
/// paging. Quarantined items are few, so walking the queue's partial index and filtering
/// by submolt stays cheap.
pub fn queued_posts(
    conn: &Connection,
    scope: &QueueScope,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Post>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{} WHERE p.is_quarantined = 1 AND p.is_deleted = 0 AND p.id < ?1 AND {}
         ORDER BY p.id DESC LIMIT ?2",
        POST_SELECT.replacen("posts p", "posts p INDEXED BY posts_quarantine_queue", 1),
        condition(scope).0,
    ))?;
    let rows = stmt.query_map(
        params![
            before.unwrap_or(i64::MAX),
            limit.clamp(1, MAX_PAGE),
            condition(scope).1
        ],
        post_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Quarantined comments in `scope` (by the submolt of their post), newest first.
pub fn queued_comments(
    conn: &Connection,
    scope: &QueueScope,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Comment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{} WHERE c.is_quarantined = 1 AND c.is_deleted = 0 AND p.is_deleted = 0 AND c.id < ?1
         AND {} ORDER BY c.id DESC LIMIT ?2",
        COMMENT_SELECT.replacen(
            "comments c",
            "comments c INDEXED BY comments_quarantine_queue",
            1
        ),
        condition(scope).0,
    ))?;
    let rows = stmt.query_map(
        params![
            before.unwrap_or(i64::MAX),
            limit.clamp(1, MAX_PAGE),
            condition(scope).1
        ],
        comment_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Lets a quarantined post back into feeds (`to` says which); its labels stay visible. An
/// administrator's release also widens a submolt moderator's earlier one.
pub fn release_post(conn: &Connection, id: i64, to: Release) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE posts SET is_quarantined = ?2, safety_verdict = 'label'
             WHERE id = ?1 AND (is_quarantined = 1 OR (is_quarantined = 2 AND ?2 = 0))",
        )?
        .execute(params![id, to.visibility()])?
        == 1)
}

pub fn release_comment(conn: &Connection, id: i64, to: Release) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE comments SET is_quarantined = ?2, safety_verdict = 'label'
             WHERE id = ?1 AND (is_quarantined = 1 OR (is_quarantined = 2 AND ?2 = 0))",
        )?
        .execute(params![id, to.visibility()])?
        == 1)
}

pub fn log(
    conn: &Connection,
    actor: &str,
    action: &str,
    target_kind: &str,
    target: &str,
    reason: &str,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO mod_log(at, actor, action, target_kind, target, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![now, actor, action, target_kind, target, reason])?;
    Ok(())
}

/// The public log, newest first, below `before` when paging.
pub fn entries(conn: &Connection, before: Option<i64>, limit: i64) -> Result<Vec<LogEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, target_kind, target, reason FROM mod_log
         WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![before.unwrap_or(i64::MAX), limit.clamp(1, MAX_PAGE)],
        |r| {
            Ok(LogEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target_kind: r.get(4)?,
                target: r.get(5)?,
                reason: r.get(6)?,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records a report (false: this agent had reported the post already).
pub fn report(
    conn: &Connection,
    post_id: i64,
    reporter_id: i64,
    reason: &str,
    now: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "INSERT OR IGNORE INTO post_reports(post_id, reporter_id, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![post_id, reporter_id, reason, now])?
        == 1)
}

/// Reported posts in `scope`, most recently reported first (ties: the newer post). The
/// reports are walked newest first through `post_reports_created` (which carries the
/// primary key after created_at), keeping each post's newest report only (the anti-join
/// probes that post's reports by primary key): a page reads the reports down to its last
/// post, never all of them.
pub fn reported(conn: &Connection, scope: &QueueScope, limit: i64) -> Result<Vec<ReportedPost>> {
    let (cond, ids) = condition(scope);
    let groups: Vec<(i64, i64, i64)> = conn
        .prepare_cached(&format!(
            "SELECT r.post_id, (SELECT count(*) FROM post_reports c WHERE c.post_id = r.post_id),
                 r.created_at
             FROM post_reports r
             JOIN posts p ON p.id = r.post_id
             WHERE p.is_deleted = 0 AND {cond} AND ?1 = ?1
               AND NOT EXISTS (
                   SELECT 1 FROM post_reports n
                   WHERE n.post_id = r.post_id
                     AND (n.created_at, n.reporter_id) > (r.created_at, r.reporter_id))
             ORDER BY r.created_at DESC, r.post_id DESC LIMIT ?2"
        ))?
        .query_map(params![0, limit.clamp(1, MAX_PAGE), ids], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(groups.len());
    for (post_id, reports, latest_at) in groups {
        let post = conn
            .prepare_cached(&format!("{POST_SELECT} WHERE p.id = ?1"))?
            .query_row([post_id], post_from_row)?;
        let reasons = conn
            .prepare_cached(
                "SELECT reason FROM post_reports WHERE post_id = ?1
                 ORDER BY created_at DESC, reporter_id DESC LIMIT ?2",
            )?
            .query_map(params![post_id, REPORT_REASONS_SHOWN as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        out.push(ReportedPost {
            post,
            reports,
            reasons,
            latest_at,
        });
    }
    Ok(out)
}

/// Closes a live post's reports (deleting the post when `remove`); the caller logs. A
/// deleted post has no open report (none is listed): deleting it again would count it
/// twice.
pub fn resolve(conn: &Connection, post_id: i64, remove: bool) -> Result<i64> {
    let no_report = || crate::DbError::Refused("This post has no open report".into());
    let post = crate::posts::by_id(conn, post_id)?.ok_or_else(no_report)?;
    let closed = conn
        .prepare_cached("DELETE FROM post_reports WHERE post_id = ?1")?
        .execute([post_id])? as i64;
    if closed == 0 {
        return Err(no_report());
    }
    if remove {
        crate::posts::delete(conn, &post)?;
    }
    Ok(closed)
}
