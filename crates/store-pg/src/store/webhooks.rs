//! Webhooks and their delivery queue on PostgreSQL (the SQLite reference:
//! crates/store-sqlite/src/webhooks.rs).
//!
//! Several nodes run delivery loops against one database, so a claim leases its
//! deliveries in one statement: it picks the due ones with `FOR UPDATE SKIP LOCKED` (a
//! delivery another node is leasing right now is passed over, not waited for) and moves
//! their `next_attempt_at` to the end of the lease, which hides them from every later
//! claim until then. The lease is also the token of the attempt: its outcome is recorded
//! only while the delivery still carries it, so an attempt that outlived its lease (and
//! whose delivery another node has claimed since) changes nothing.
//!
//! Lock order: the agent's row (changes of one agent's webhook queue behind each other
//! and behind the agent's deletion), then the webhook's row, then its deliveries. Removing
//! a webhook locks its row before deleting its queue, and storing notifications locks the
//! webhooks they queue for (FOR KEY SHARE, see [`super::notifications`]): whichever comes
//! second waits, so a removal never misses a delivery queued meanwhile, and a delivery is
//! never queued for a webhook that is gone.

use tokio_postgres::Row;

use tidepool_core::model::webhooks::{Delivery, DeliveryOutcome, DeliveryStatus, Webhook};
use tidepool_store::{Result, StoreError};

use super::agents::lock_agent;
use super::notifications::{notification_at, notification_columns, notification_joins};
use super::post_rows::{get, parsed};
use crate::{PgPool, Sql, Tx, Type};

const WEBHOOK_OF: Sql = Sql::new(
    "SELECT id, agent_id, url, sealed_secret, created_at FROM webhooks WHERE agent_id = $1",
    &[Type::INT8],
);

/// The agent's webhook, locked against notifications queueing for it until commit.
const LOCK_WEBHOOK: Sql = Sql::new(
    "SELECT id FROM webhooks WHERE agent_id = $1 FOR UPDATE",
    &[Type::INT8],
);

const DELETE_QUEUE: Sql = Sql::new(
    "DELETE FROM webhook_deliveries WHERE webhook_id = $1",
    &[Type::INT8],
);

const DELETE_WEBHOOK: Sql = Sql::new("DELETE FROM webhooks WHERE id = $1", &[Type::INT8]);

const INSERT_WEBHOOK: Sql = Sql::new(
    "INSERT INTO webhooks(agent_id, url, sealed_secret, created_at) VALUES ($1, $2, $3, $4)
     RETURNING id",
    &[Type::INT8, Type::TEXT, Type::BYTEA, Type::INT8],
);

/// The 11 delivery columns [`delivery_from_row`] reads before the notification's, from a
/// delivery `d` joined to its webhook `w`.
macro_rules! delivery_columns {
    () => {
        "d.id, d.uuid, d.webhook_id, w.agent_id, w.url, w.sealed_secret, d.attempts, d.status,
         d.last_error, d.created_at, d.next_attempt_at, "
    };
}

/// Where the notification's columns start.
const DELIVERY_WIDTH: usize = 11;

/// Leases up to `$3` pending deliveries due at `$1` (oldest due first) until `$2`, and
/// answers them with their webhook and notification, oldest due first. Deliveries another
/// claim holds locked are skipped; one that another claim leased and committed since this
/// statement's snapshot is re-checked under its lock and left out (no longer due).
const CLAIM: Sql = Sql::new(
    concat!(
        "WITH due AS (
             SELECT id, next_attempt_at FROM webhook_deliveries
             WHERE status = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at LIMIT $3
             FOR UPDATE SKIP LOCKED
         ), d AS (
             UPDATE webhook_deliveries d SET next_attempt_at = $2 FROM due WHERE d.id = due.id
             RETURNING d.*, due.next_attempt_at AS due_at
         )
         SELECT ",
        delivery_columns!(),
        notification_columns!(),
        " FROM d JOIN webhooks w ON w.id = d.webhook_id
         JOIN notifications n ON n.id = d.notification_id ",
        notification_joins!(),
        " ORDER BY d.due_at, d.id"
    ),
    &[Type::INT8, Type::INT8, Type::INT8],
);

/// Records an attempt, only while the delivery is pending under the lease `$5`.
const FINISH: Sql = Sql::new(
    "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, last_error = $4,
         attempts = attempts + 1
     WHERE id = $1 AND status = 'pending' AND next_attempt_at = $5",
    &[Type::INT8, Type::TEXT, Type::INT8, Type::TEXT, Type::INT8],
);

/// The agent's newest deliveries (`$1` the agent, at most `$2`, NULL: no limit): its one
/// webhook by its unique agent, then that webhook's deliveries backwards.
const DELIVERIES_OF: Sql = Sql::new(
    concat!(
        "SELECT ",
        delivery_columns!(),
        notification_columns!(),
        " FROM webhooks w JOIN webhook_deliveries d ON d.webhook_id = w.id
         JOIN notifications n ON n.id = d.notification_id ",
        notification_joins!(),
        " WHERE w.agent_id = $1 ORDER BY d.id DESC LIMIT $2"
    ),
    &[Type::INT8, Type::INT8],
);

fn webhook_from_row(r: &Row) -> Result<Webhook> {
    Ok(Webhook {
        id: get(r, 0)?,
        agent_id: get(r, 1)?,
        url: get(r, 2)?,
        sealed_secret: get(r, 3)?,
        created_at: get(r, 4)?,
    })
}

fn delivery_from_row(r: &Row) -> Result<Delivery> {
    Ok(Delivery {
        id: get(r, 0)?,
        uuid: get(r, 1)?,
        webhook_id: get(r, 2)?,
        agent_id: get(r, 3)?,
        url: get(r, 4)?,
        sealed_secret: get(r, 5)?,
        attempts: get(r, 6)?,
        status: parsed(r, 7, str::parse::<DeliveryStatus>)?,
        last_error: get(r, 8)?,
        created_at: get(r, 9)?,
        next_attempt_at: get(r, 10)?,
        notification: notification_at(r, DELIVERY_WIDTH)?,
    })
}

/// Removes the agent's webhook and its queue inside `tx` (the caller holds the agent's
/// row lock); false when it had none.
pub(crate) async fn drop_in(tx: &Tx<'_>, agent_id: i64) -> Result<bool> {
    let Some(row) = tx.query_opt(&LOCK_WEBHOOK, &[&agent_id]).await? else {
        return Ok(false);
    };
    let id: i64 = get(&row, 0)?;
    tx.execute(&DELETE_QUEUE, &[&id]).await?;
    tx.execute(&DELETE_WEBHOOK, &[&id]).await?;
    Ok(true)
}

pub(crate) async fn set(
    db: &PgPool,
    agent_id: i64,
    url: String,
    sealed_secret: Vec<u8>,
    now: i64,
) -> Result<Webhook> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // Two registrations for one agent at once: the second waits, then replaces the first.
    if lock_agent(&tx, agent_id).await?.is_none() {
        return Err(StoreError::NotFound("Agent"));
    }
    // A new address starts with an empty queue: nothing meant for the old one goes there.
    drop_in(&tx, agent_id).await?;
    let row = tx
        .query_one(&INSERT_WEBHOOK, &[&agent_id, &url, &sealed_secret, &now])
        .await?;
    let id = get(&row, 0)?;
    tx.commit().await?;
    Ok(Webhook {
        id,
        agent_id,
        url,
        sealed_secret,
        created_at: now,
    })
}

pub(crate) async fn of(db: &PgPool, agent_id: i64) -> Result<Option<Webhook>> {
    db.query_opt(&WEBHOOK_OF, &[&agent_id])
        .await?
        .map(|r| webhook_from_row(&r))
        .transpose()
}

pub(crate) async fn delete(db: &PgPool, agent_id: i64) -> Result<bool> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // Behind a registration being committed, so that it removes what that one stored
    // (locking only the webhook's row would find the replaced one gone and answer false).
    lock_agent(&tx, agent_id).await?;
    let removed = drop_in(&tx, agent_id).await?;
    tx.commit().await?;
    Ok(removed)
}

pub(crate) async fn claim(
    db: &PgPool,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<Delivery>> {
    // A negative limit is no limit (NULL), as SQLite reads it.
    let limit = (limit >= 0).then_some(limit);
    db.query(&CLAIM, &[&now, &lease_until, &limit])
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
}

pub(crate) async fn finish(
    db: &PgPool,
    id: i64,
    lease: i64,
    outcome: DeliveryOutcome,
    now: i64,
) -> Result<()> {
    let (status, next, error) = match outcome {
        DeliveryOutcome::Delivered => (DeliveryStatus::Delivered, now, None),
        DeliveryOutcome::Retry { at, error } => (DeliveryStatus::Pending, at, Some(error)),
        DeliveryOutcome::Failed { error } => (DeliveryStatus::Failed, now, Some(error)),
    };
    db.execute(&FINISH, &[&id, &status.as_str(), &next, &error, &lease])
        .await?;
    Ok(())
}

pub(crate) async fn of_agent(db: &PgPool, agent_id: i64, limit: i64) -> Result<Vec<Delivery>> {
    // A negative limit is no limit (NULL), as SQLite reads it.
    let limit = (limit >= 0).then_some(limit);
    db.query(&DELIVERIES_OF, &[&agent_id, &limit])
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
}
