//! Notifications, newest first per agent.

use rusqlite::{Connection, Row, params};
use tidepool_core::model::notifications::{NewNotification, Notification, UNREAD_CAP};

use crate::Result;

/// A notification's columns (see [`from_row_at`]), under the alias `n`. A quarantined
/// post's title is never shown (it may have been quarantined after the notification).
pub(crate) const COLUMNS: &str = "n.id, n.uuid, n.agent_id, n.kind, a.name, p.uuid,
        CASE WHEN p.is_quarantined = 1 THEN NULL ELSE p.title END, s.name, c.uuid,
        n.message, n.is_read, n.created_at";

/// The joins [`COLUMNS`] reads from, after `notifications n`.
pub(crate) const JOINS: &str = "LEFT JOIN agents a ON a.id = n.actor_id
    LEFT JOIN posts p ON p.id = n.post_id
    LEFT JOIN submolts s ON s.id = p.submolt_id
    LEFT JOIN comments c ON c.id = n.comment_id";

/// A notification from [`COLUMNS`], starting at column `at`.
pub(crate) fn from_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(at)?,
        uuid: r.get(at + 1)?,
        agent_id: r.get(at + 2)?,
        kind: crate::parsed(r, at + 3, str::parse)?,
        actor_name: r.get(at + 4)?,
        post_uuid: r.get(at + 5)?,
        post_title: r.get(at + 6)?,
        submolt_name: r.get(at + 7)?,
        comment_uuid: r.get(at + 8)?,
        message: r.get(at + 9)?,
        is_read: r.get(at + 10)?,
        created_at: r.get(at + 11)?,
    })
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    from_row_at(r, 0)
}

pub fn add(conn: &Connection, list: Vec<NewNotification>) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO notifications(uuid, agent_id, kind, actor_id, post_id, comment_id, message, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut queue = conn.prepare_cached(
        "INSERT INTO webhook_deliveries(uuid, webhook_id, notification_id, next_attempt_at, created_at)
         SELECT ?1, w.id, ?2, ?3, ?3 FROM webhooks w WHERE w.agent_id = ?4",
    )?;
    let mut told = conn.prepare_cached(
        "SELECT 1 FROM notifications WHERE agent_id = ?1 AND kind = 'upvote'
             AND post_id IS ?2 AND comment_id IS ?3 AND message = ?4",
    )?;
    for n in list {
        // A milestone is announced once, however often a vote is taken back and given
        // again (milestones are rare, so looking back over the agent's list is cheap).
        if n.kind == tidepool_core::model::notifications::NotificationKind::Upvote
            && told.exists(params![n.agent_id, n.post_id, n.comment_id, n.message])?
        {
            continue;
        }
        let (agent, now) = (n.agent_id, n.now);
        stmt.execute(params![
            crate::new_public_id(),
            n.agent_id,
            n.kind.as_str(),
            n.actor_id,
            n.post_id,
            n.comment_id,
            n.message,
            n.now
        ])?;
        queue.execute(params![
            crate::new_public_id(),
            conn.last_insert_rowid(),
            now,
            agent
        ])?;
    }
    Ok(())
}

pub fn list(
    conn: &Connection,
    agent_id: i64,
    unread_only: bool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Notification>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notifications n {JOINS} WHERE n.agent_id = ?1 AND n.id < ?2 {} ORDER BY n.id DESC LIMIT ?3",
        if unread_only { "AND n.is_read = 0" } else { "" }
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(
            params![agent_id, before.unwrap_or(i64::MAX), limit],
            from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn unread(conn: &Connection, agent_id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM notifications WHERE agent_id = ?1 AND is_read = 0 LIMIT ?2)",
        )?
        .query_row(params![agent_id, UNREAD_CAP], |r| r.get(0))?)
}

pub fn mark_read(conn: &Connection, agent_id: i64, post_id: Option<i64>) -> Result<i64> {
    let n = match post_id {
        Some(p) => conn
            .prepare_cached(
                "UPDATE notifications SET is_read = 1 WHERE agent_id = ?1 AND post_id = ?2 AND is_read = 0",
            )?
            .execute(params![agent_id, p])?,
        None => conn
            .prepare_cached(
                "UPDATE notifications SET is_read = 1 WHERE agent_id = ?1 AND is_read = 0",
            )?
            .execute([agent_id])?,
    };
    Ok(n as i64)
}
