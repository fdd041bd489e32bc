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
///
/// The ids go through an array, so that every plan (a generic one too, which cannot know
/// `$3`) expects a small batch and reaches each delivery and what it joins by key: a
/// batch estimated as a tenth of the due ones would be joined by hashing whole tables.
const CLAIM: Sql = Sql::new(
    concat!(
        "WITH due AS (
             SELECT ARRAY(
                 SELECT id FROM webhook_deliveries
                 WHERE status = 'pending' AND next_attempt_at <= $1
                 ORDER BY next_attempt_at LIMIT $3
                 FOR UPDATE SKIP LOCKED
             ) AS ids
         ), d AS (
             UPDATE webhook_deliveries d SET next_attempt_at = $2
             FROM due WHERE d.id = ANY(due.ids)
             RETURNING d.*, array_position(due.ids, d.id) AS rank
         )
         SELECT ",
        delivery_columns!(),
        notification_columns!(),
        " FROM d JOIN webhooks w ON w.id = d.webhook_id
         JOIN notifications n ON n.id = d.notification_id ",
        notification_joins!(),
        " ORDER BY d.rank"
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
    // A deleted agent gets no webhook, even one asked for just before the deletion.
    match lock_agent(&tx, agent_id).await? {
        Some(a) if a.status != tidepool_core::model::agents::AgentStatus::Deleted => {}
        _ => return Err(StoreError::NotFound("Agent")),
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

#[cfg(test)]
mod tests {
    //! What the conformance suite cannot show on PostgreSQL: claims, removals and new
    //! notifications racing each other, each staged with a transaction of the test's own
    //! held open at the worst moment; and the queue's statements walk their indexes.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use tidepool_core::model::notifications::{NewNotification, NotificationKind};
    use tidepool_store::Store;

    use super::*;
    use crate::PgStore;
    use crate::store::test_support::{
        NOW, agent, assert_walks_indexes, open, scalar, until_one_waits,
    };

    fn follow(agent_id: i64, now: i64) -> NewNotification {
        NewNotification {
            agent_id,
            kind: NotificationKind::Follow,
            actor_id: None,
            post_id: None,
            comment_id: None,
            message: format!("followed at {now}"),
            now,
        }
    }

    /// An agent with a webhook and `n` deliveries due at NOW + 1 .. NOW + n.
    async fn hooked(store: &PgStore, name: &str, n: i64) -> (i64, Webhook) {
        let me = agent(store, name).await;
        let hook = store
            .set_webhook(me, format!("https://{name}.example/in"), vec![7; 4], NOW)
            .await
            .unwrap();
        let batch = (1..=n).map(|i| follow(me, NOW + i)).collect();
        store.add_notifications(batch).await.unwrap();
        (me, hook)
    }

    async fn count(store: &PgStore, text: &'static str, id: i64) -> i64 {
        store
            .pool()
            .query_one(&Sql::new(text, &[Type::INT8]), &[&id])
            .await
            .unwrap()
            .get(0)
    }

    /// A claim does not wait for a delivery another node holds locked (claiming it, or
    /// recording its attempt): it passes over it and takes the next due ones. Once that
    /// node commits its lease, no claim takes the delivery before the lease ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_passes_over_deliveries_another_node_holds() {
        let (_db, store) = open().await;
        let (me, _) = hooked(&store, "held", 3).await;
        let queued = store.deliveries_of(me, 10).await.unwrap();
        let oldest = queued.iter().min_by_key(|d| d.next_attempt_at).unwrap().id;
        let mut conn = store.pool().get().await.unwrap();
        let tx = conn.transaction().await.unwrap();
        tx.batch_execute(&format!(
            "UPDATE webhook_deliveries SET next_attempt_at = {} WHERE id = {oldest}",
            NOW + 1_000
        ))
        .await
        .unwrap();
        let claimed = tokio::time::timeout(
            Duration::from_secs(10),
            store.claim_deliveries(NOW + 10, NOW + 100, 10),
        )
        .await
        .expect("a claim waited for a locked delivery")
        .unwrap();
        let ids: Vec<i64> = claimed.iter().map(|d| d.id).collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert!(!ids.contains(&oldest));
        tx.commit().await.unwrap();
        // The other two's leases (NOW + 100) ended; this one's has not.
        let later = store
            .claim_deliveries(NOW + 999, NOW + 2_000, 10)
            .await
            .unwrap();
        assert_eq!(later.len(), 2);
        assert!(later.iter().all(|d| d.id != oldest));
        let again = store
            .claim_deliveries(NOW + 1_000, NOW + 2_000, 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, oldest);
    }

    /// Two claims at once, each in its own transaction (one of them the test's, holding
    /// its leases uncommitted), take disjoint deliveries; after both, nothing is due.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_claims_at_once_never_take_one_delivery() {
        let (_db, store) = open().await;
        let (me, _) = hooked(&store, "twice", 12).await;
        for round in 0..20 {
            let now = NOW + 1_000 * (round + 1);
            let lease = now + 1_000;
            let mut conn = store.pool().get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            let theirs: Vec<i64> = tx
                .query(&CLAIM, &[&now, &lease, &Some(5i64)])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(theirs.len(), 5, "round {round}");
            let mine: Vec<i64> = tokio::time::timeout(
                Duration::from_secs(10),
                store.claim_deliveries(now, lease, 100),
            )
            .await
            .expect("a claim waited for another")
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
            assert_eq!(mine.len(), 7, "round {round}");
            assert!(mine.iter().all(|id| !theirs.contains(id)), "round {round}");
            if round % 2 == 0 {
                tx.commit().await.unwrap();
                assert!(
                    store
                        .claim_deliveries(now, lease, 100)
                        .await
                        .unwrap()
                        .is_empty()
                );
            } else {
                // A claim that rolls back leaves its deliveries due.
                tx.rollback().await.unwrap();
                let back: Vec<i64> = store
                    .claim_deliveries(now, lease, 100)
                    .await
                    .unwrap()
                    .iter()
                    .map(|d| d.id)
                    .collect();
                assert_eq!(back.len(), 5, "round {round}");
                assert!(back.iter().all(|id| theirs.contains(id)));
            }
        }
        assert_eq!(store.deliveries_of(me, 100).await.unwrap().len(), 12);
    }

    /// A removal (and a replacement) of a webhook behind a batch that is queueing for it
    /// (holding the webhook's row as the batch's statement does) waits for the batch, then
    /// removes what it queued too: no delivery is left for a webhook that is gone, and the
    /// removal does not trip over the foreign key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removal_behind_a_batch_removes_what_it_queued() {
        let (_db, store) = open().await;
        for replace in [false, true] {
            let (me, hook) = hooked(&store, &format!("behind{replace}"), 1).await;
            let mut conn = store.pool().get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.batch_execute(&format!(
                "SELECT id FROM webhooks WHERE agent_id = {me} FOR KEY SHARE;
                 INSERT INTO notifications(uuid, agent_id, kind, message, created_at)
                     VALUES ('late-{replace}', {me}, 'follow', 'late', {NOW});
                 INSERT INTO webhook_deliveries(uuid, webhook_id, notification_id,
                         next_attempt_at, created_at)
                     SELECT 'late-d-{replace}', {}, id, {NOW}, {NOW} FROM notifications
                     WHERE uuid = 'late-{replace}'",
                hook.id
            ))
            .await
            .unwrap();
            let racing = {
                let store = store.clone();
                tokio::spawn(async move {
                    if replace {
                        store
                            .set_webhook(me, "https://new.example/in".into(), vec![8], NOW + 1)
                            .await
                            .map(|_| true)
                    } else {
                        store.delete_webhook(me).await
                    }
                })
            };
            until_one_waits(&store).await;
            tx.commit().await.unwrap();
            assert!(racing.await.unwrap().unwrap(), "replace {replace}");
            let left = "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1";
            assert_eq!(count(&store, left, hook.id).await, 0, "replace {replace}");
            assert!(store.deliveries_of(me, 10).await.unwrap().is_empty());
            let now = store.webhook_of(me).await.unwrap();
            assert_eq!(
                now.map(|h| h.url),
                replace.then(|| "https://new.example/in".into())
            );
        }
    }

    /// A batch behind a removal of the webhook it would queue for (the webhook's row held
    /// by the removal, its queue and row deleted but not committed) waits for it: when the
    /// removal commits, the batch stores its notifications and queues nothing (no foreign
    /// key error); when it rolls back, the batch queues for the webhook as usual.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_behind_a_removal_queues_for_what_is_left() {
        let (_db, store) = open().await;
        for ending in ["commit", "rollback"] {
            let (me, hook) = hooked(&store, &format!("removed{ending}"), 0).await;
            let mut conn = store.pool().get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.batch_execute(&format!(
                "SELECT id FROM webhooks WHERE agent_id = {me} FOR UPDATE;
                 DELETE FROM webhook_deliveries WHERE webhook_id = {0};
                 DELETE FROM webhooks WHERE id = {0}",
                hook.id
            ))
            .await
            .unwrap();
            let racing = {
                let store = store.clone();
                tokio::spawn(
                    async move { store.add_notifications(vec![follow(me, NOW + 5)]).await },
                )
            };
            until_one_waits(&store).await;
            if ending == "commit" {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            racing.await.unwrap().unwrap();
            assert_eq!(
                store
                    .notifications(me, false, None, 10)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            let queued = "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1";
            let expected = i64::from(ending == "rollback");
            assert_eq!(count(&store, queued, hook.id).await, expected, "{ending}");
        }
    }

    /// On 10,000 agents with a webhook and 3 deliveries each (30,000; all but the newest
    /// per agent delivered or failed), a claim reads the pending ones by due time and
    /// an agent's listing its webhook's newest deliveries (custom and generic plans): no
    /// sequential scan of either table, no sort beyond a claimed batch.
    #[tokio::test]
    async fn queue_statements_walk_their_indexes() {
        let (_db, store) = open().await;
        let conn = store.pool().get().await.unwrap();
        let client = conn.client();
        client
            .batch_execute(&format!(
                "INSERT INTO agents(uuid, name, name_key, created_at, last_active)
                     SELECT 'a' || g, 'a' || g, 'a' || g, 0, 0 FROM generate_series(1, 10000) g;
                 INSERT INTO webhooks(agent_id, url, sealed_secret, created_at)
                     SELECT id, 'https://x.example/' || id, '\\x00', {NOW} FROM agents;
                 INSERT INTO notifications(uuid, agent_id, kind, message, created_at)
                     SELECT 'n' || a.id || '-' || k, a.id, 'follow', 'm', {NOW} + k
                     FROM generate_series(1, 3) k, agents a ORDER BY k, a.id;
                 INSERT INTO webhook_deliveries(uuid, webhook_id, notification_id, status,
                         attempts, next_attempt_at, created_at)
                     SELECT 'd' || n.id, w.id, n.id,
                            CASE WHEN n.created_at = {NOW} + 3 THEN 'pending'
                                 WHEN n.id % 7 = 0 THEN 'failed' ELSE 'delivered' END,
                            1, n.created_at, n.created_at
                     FROM notifications n JOIN webhooks w ON w.agent_id = n.agent_id
                     ORDER BY n.id;
                 ANALYZE;"
            ))
            .await
            .unwrap();
        let me: i64 = scalar(client, "SELECT id FROM agents WHERE name = 'a5000'").await;
        let rows: i64 = scalar(client, "SELECT count(*) FROM webhook_deliveries").await;
        assert_eq!(rows, 30_000);
        assert_walks_indexes(
            client,
            "claim",
            &CLAIM,
            &[NOW + 1_000, NOW + 2_000, 20],
            (
                "webhook",
                &[
                    "webhook_deliveries_due",
                    "webhook_deliveries_pkey",
                    "webhooks_pkey",
                ],
            ),
            40.0,
        )
        .await;
        assert_walks_indexes(
            client,
            "deliveries of",
            &DELIVERIES_OF,
            &[me, 20],
            (
                "webhook",
                &["webhooks_agent_id_key", "webhook_deliveries_webhook"],
            ),
            40.0,
        )
        .await;
        drop(conn);
        let claimed = store
            .claim_deliveries(NOW + 1_000, NOW + 2_000, 1_000)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1_000);
        assert_eq!(store.deliveries_of(me, 20).await.unwrap().len(), 3);
    }
}
