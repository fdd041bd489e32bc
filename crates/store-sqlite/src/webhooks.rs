//! Webhooks and their delivery queue.

use rusqlite::{Connection, OptionalExtension, Row, params};
use tidepool_core::model::webhooks::{Delivery, DeliveryOutcome, DeliveryStatus, Webhook};

use crate::Result;
use crate::notifications::{COLUMNS, JOINS, from_row_at};

fn webhook_from_row(r: &Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        id: r.get(0)?,
        agent_id: r.get(1)?,
        url: r.get(2)?,
        sealed_secret: r.get(3)?,
        created_at: r.get(4)?,
    })
}

fn delivery_select() -> String {
    format!(
        "SELECT d.id, d.uuid, d.webhook_id, w.agent_id, w.url, w.sealed_secret, d.attempts, d.status,
                d.last_error, d.created_at, d.next_attempt_at, {COLUMNS}
         FROM webhook_deliveries d
         JOIN webhooks w ON w.id = d.webhook_id
         JOIN notifications n ON n.id = d.notification_id
         {JOINS}"
    )
}

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        uuid: r.get(1)?,
        webhook_id: r.get(2)?,
        agent_id: r.get(3)?,
        url: r.get(4)?,
        sealed_secret: r.get(5)?,
        attempts: r.get(6)?,
        status: crate::parsed(r, 7, str::parse::<DeliveryStatus>)?,
        last_error: r.get(8)?,
        created_at: r.get(9)?,
        next_attempt_at: r.get(10)?,
        notification: from_row_at(r, 11)?,
    })
}

pub fn set(
    conn: &Connection,
    agent_id: i64,
    url: &str,
    sealed_secret: &[u8],
    now: i64,
) -> Result<Webhook> {
    // A deleted agent gets no webhook, even one asked for just before the deletion.
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM agents WHERE id = ?1")?
        .query_row([agent_id], |r| r.get(0))
        .optional()?;
    if status.is_none_or(|s| s == "deleted") {
        return Err(crate::DbError::NotFound("Agent"));
    }
    // A new address starts with an empty queue: nothing meant for the old one goes there.
    delete(conn, agent_id)?;
    conn.prepare_cached(
        "INSERT INTO webhooks(agent_id, url, sealed_secret, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![agent_id, url, sealed_secret, now])?;
    Ok(Webhook {
        id: conn.last_insert_rowid(),
        agent_id,
        url: url.to_owned(),
        sealed_secret: sealed_secret.to_vec(),
        created_at: now,
    })
}

pub fn of(conn: &Connection, agent_id: i64) -> Result<Option<Webhook>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, agent_id, url, sealed_secret, created_at FROM webhooks WHERE agent_id = ?1",
        )?
        .query_row([agent_id], webhook_from_row)
        .optional()?)
}

pub fn delete(conn: &Connection, agent_id: i64) -> Result<bool> {
    conn.prepare_cached(
        "DELETE FROM webhook_deliveries WHERE webhook_id IN (SELECT id FROM webhooks WHERE agent_id = ?1)",
    )?
    .execute([agent_id])?;
    Ok(conn
        .prepare_cached("DELETE FROM webhooks WHERE agent_id = ?1")?
        .execute([agent_id])?
        == 1)
}

pub fn claim(conn: &Connection, now: i64, lease_until: i64, limit: i64) -> Result<Vec<Delivery>> {
    let mut due = conn
        .prepare_cached(&format!(
            "{} WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
             ORDER BY d.next_attempt_at LIMIT ?2",
            delivery_select()
        ))?
        .query_map(params![now, limit], delivery_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut lease =
        conn.prepare_cached("UPDATE webhook_deliveries SET next_attempt_at = ?2 WHERE id = ?1")?;
    for d in &mut due {
        lease.execute(params![d.id, lease_until])?;
        d.next_attempt_at = lease_until;
    }
    Ok(due)
}

pub fn finish(
    conn: &Connection,
    id: i64,
    lease: i64,
    outcome: &DeliveryOutcome,
    now: i64,
) -> Result<()> {
    let (status, next, error) = match outcome {
        DeliveryOutcome::Delivered => ("delivered", now, None),
        DeliveryOutcome::Retry { at, error } => ("pending", *at, Some(error.as_str())),
        DeliveryOutcome::Failed { error } => ("failed", now, Some(error.as_str())),
    };
    conn.prepare_cached(
        "UPDATE webhook_deliveries SET status = ?2, next_attempt_at = ?3, last_error = ?4,
                attempts = attempts + 1
         WHERE id = ?1 AND status = 'pending' AND next_attempt_at = ?5",
    )?
    .execute(params![id, status, next, error, lease])?;
    Ok(())
}

pub fn of_agent(conn: &Connection, agent_id: i64, limit: i64) -> Result<Vec<Delivery>> {
    Ok(conn
        .prepare_cached(&format!(
            "{} WHERE w.agent_id = ?1 ORDER BY d.id DESC LIMIT ?2",
            delivery_select()
        ))?
        .query_map(params![agent_id, limit], delivery_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}
