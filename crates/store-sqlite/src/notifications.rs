//! Notifications, newest first per agent.

use rusqlite::{Connection, Row, params};
use tidepool_core::model::notifications::{NewNotification, Notification, UNREAD_CAP};

use crate::Result;

const SELECT: &str =
    "SELECT n.id, n.uuid, n.agent_id, n.kind, a.name, p.uuid, p.title, s.name, c.uuid,
        n.message, n.is_read, n.created_at
    FROM notifications n
    LEFT JOIN agents a ON a.id = n.actor_id
    LEFT JOIN posts p ON p.id = n.post_id
    LEFT JOIN submolts s ON s.id = p.submolt_id
    LEFT JOIN comments c ON c.id = n.comment_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(0)?,
        uuid: r.get(1)?,
        agent_id: r.get(2)?,
        kind: crate::parsed(r, 3, str::parse)?,
        actor_name: r.get(4)?,
        post_uuid: r.get(5)?,
        post_title: r.get(6)?,
        submolt_name: r.get(7)?,
        comment_uuid: r.get(8)?,
        message: r.get(9)?,
        is_read: r.get(10)?,
        created_at: r.get(11)?,
    })
}

pub fn add(conn: &Connection, list: Vec<NewNotification>) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO notifications(uuid, agent_id, kind, actor_id, post_id, comment_id, message, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for n in list {
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
        "{SELECT} WHERE n.agent_id = ?1 AND n.id < ?2 {} ORDER BY n.id DESC LIMIT ?3",
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
