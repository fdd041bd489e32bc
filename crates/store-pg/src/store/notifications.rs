//! Notifications on PostgreSQL, newest first per agent (the SQLite reference:
//! crates/store-sqlite/src/notifications.rs).
//!
//! A batch is one INSERT over arrays (with its webhook deliveries), so it lands whole or
//! not at all in one round trip.
//! Marking read is one conditional UPDATE: of two marks at once, the second re-checks
//! `is_read = 0` on each row the first changed and skips it, so every notification is
//! counted by exactly one of them.

use tokio_postgres::Row;

use tidepool_core::model::notifications::{
    NewNotification, Notification, NotificationKind, UNREAD_CAP,
};
use tidepool_store::Result;

use super::post_rows::{get, parsed};
use crate::{PgPool, Sql, ToSql, Type};

/// The 12 notification columns [`notification_at`] reads, from `notifications n` joined
/// as [`notification_joins!`] does (NULL where a joined row is absent). A quarantined
/// post's title is never shown (it may have been quarantined after the notification).
macro_rules! notification_columns {
    () => {
        "n.id, n.uuid, n.agent_id, n.kind, a.name, p.uuid,
         CASE WHEN p.is_quarantined = 1 THEN NULL ELSE p.title END, s.name, c.uuid,
         n.message, n.is_read, n.created_at"
    };
}
pub(crate) use notification_columns;

/// The joins [`notification_columns!`] reads from, after `notifications n`.
macro_rules! notification_joins {
    () => {
        "LEFT JOIN agents a ON a.id = n.actor_id
         LEFT JOIN posts p ON p.id = n.post_id
         LEFT JOIN submolts s ON s.id = p.submolt_id
         LEFT JOIN comments c ON c.id = n.comment_id"
    };
}
pub(crate) use notification_joins;

/// A listing's statement: the agent's notifications (`$1`) below id `$2`, newest first, at
/// most `$3` (NULL: no limit). `$filter` narrows the rows further.
macro_rules! listing {
    ($filter:literal) => {
        concat!(
            "SELECT ",
            notification_columns!(),
            " FROM notifications n ",
            notification_joins!(),
            " WHERE n.agent_id = $1 AND n.id < $2 ",
            $filter,
            " ORDER BY n.id DESC LIMIT $3"
        )
    };
}

const ALL: Sql = Sql::new(listing!(""), &[Type::INT8, Type::INT8, Type::INT8]);

// `is_read = 0` spelled as the partial index's predicate, so the planner may use it.
const UNREAD: Sql = Sql::new(
    listing!("AND n.is_read = 0"),
    &[Type::INT8, Type::INT8, Type::INT8],
);

/// Counting stops at the cap: the inner LIMIT keeps an agent with a huge backlog cheap.
const UNREAD_COUNT: Sql = Sql::new(
    "SELECT count(*) FROM (
         SELECT 1 FROM notifications WHERE agent_id = $1 AND is_read = 0 LIMIT $2
     ) u",
    &[Type::INT8, Type::INT8],
);

/// Stores the batch in list order (`ORDER BY i`, so ids ascend through it as SQLite's
/// row-by-row inserts do), and queues a delivery (public id `$9[i]`) of each stored
/// notification to its agent's webhook, if it has one, due at once. An `upvote` one the
/// agent has already (same post, comment and message: a milestone reached again after a
/// vote was taken back) is not stored again.
///
/// The webhooks are locked FOR KEY SHARE, as the deliveries' foreign key would lock them:
/// a webhook being replaced or removed meanwhile is waited for and then left out (its
/// removal deletes its queue under its row lock, so it never finds a delivery it did not
/// see; see [`super::webhooks`]).
const INSERT: Sql = Sql::new(
    "WITH x AS (
         SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[],
                              $6::int8[], $7::text[], $8::int8[], $9::text[])
             WITH ORDINALITY AS x(u, g, k, ac, p, c, m, t, d, i)
     ), n AS (
         INSERT INTO notifications(uuid, agent_id, kind, actor_id, post_id, comment_id,
             message, created_at)
         SELECT u, g, k, ac, p, c, m, t FROM x
         WHERE NOT (k = 'upvote' AND EXISTS (
             SELECT 1 FROM notifications e
             WHERE e.agent_id = x.g AND e.kind = 'upvote' AND e.post_id IS NOT DISTINCT FROM x.p
               AND e.comment_id IS NOT DISTINCT FROM x.c AND e.message = x.m))
         ORDER BY i
         RETURNING id, uuid, agent_id, created_at
     )
     INSERT INTO webhook_deliveries(uuid, webhook_id, notification_id, next_attempt_at,
         created_at)
     SELECT x.d, w.id, n.id, n.created_at, n.created_at
     FROM n JOIN x ON x.u = n.uuid JOIN webhooks w ON w.agent_id = n.agent_id
     ORDER BY n.id
     FOR KEY SHARE OF w",
    &[
        Type::TEXT_ARRAY,
        Type::INT8_ARRAY,
        Type::TEXT_ARRAY,
        Type::INT8_ARRAY,
        Type::INT8_ARRAY,
        Type::INT8_ARRAY,
        Type::TEXT_ARRAY,
        Type::INT8_ARRAY,
        Type::TEXT_ARRAY,
    ],
);

/// Serialises the batches that carry an agent's upvote milestones (`$1`: the agent's
/// key): the second of two batches announcing the same milestone at once waits for the
/// first, and its INSERT (a new snapshot, under READ COMMITTED) sees it. The two-key form
/// keeps these keys apart from the one-key ones (votes, migrations).
const UPVOTE_LOCK: Sql = Sql::new(
    "SELECT pg_advisory_xact_lock($1, $2)",
    &[Type::INT4, Type::INT4],
);

/// [`UPVOTE_LOCK`]'s first key ("upvn").
const UPVOTE_LOCK_CLASS: i32 = 0x7570_766e;

const MARK_POST: Sql = Sql::new(
    "UPDATE notifications SET is_read = 1 WHERE agent_id = $1 AND post_id = $2 AND is_read = 0",
    &[Type::INT8, Type::INT8],
);

const MARK_ALL: Sql = Sql::new(
    "UPDATE notifications SET is_read = 1 WHERE agent_id = $1 AND is_read = 0",
    &[Type::INT8],
);

/// A notification from [`notification_columns!`], starting at column `at`.
pub(crate) fn notification_at(r: &Row, at: usize) -> Result<Notification> {
    Ok(Notification {
        id: get(r, at)?,
        uuid: get(r, at + 1)?,
        agent_id: get(r, at + 2)?,
        kind: parsed(r, at + 3, str::parse)?,
        actor_name: get(r, at + 4)?,
        post_uuid: get(r, at + 5)?,
        post_title: get(r, at + 6)?,
        submolt_name: get(r, at + 7)?,
        comment_uuid: get(r, at + 8)?,
        message: get(r, at + 9)?,
        is_read: get::<i16>(r, at + 10)? != 0,
        created_at: get(r, at + 11)?,
    })
}

fn from_row(r: &Row) -> Result<Notification> {
    notification_at(r, 0)
}

/// Whether `n` repeats an upvote milestone an earlier entry of the same batch announces
/// (the INSERT's look-back sees only rows stored before it).
fn repeats(earlier: &[NewNotification], n: &NewNotification) -> bool {
    n.kind == NotificationKind::Upvote
        && earlier.iter().any(|e| {
            e.kind == NotificationKind::Upvote
                && (e.agent_id, e.post_id, e.comment_id, &e.message)
                    == (n.agent_id, n.post_id, n.comment_id, &n.message)
        })
}

/// Stores a non-empty batch and queues its webhook deliveries (see [`INSERT`]).
pub(crate) async fn add(db: &PgPool, list: Vec<NewNotification>) -> Result<()> {
    let mut kept: Vec<NewNotification> = Vec::with_capacity(list.len());
    for n in list {
        if !repeats(&kept, &n) {
            kept.push(n);
        }
    }
    let list = kept;
    let uuids: Vec<String> = list
        .iter()
        .map(|_| tidepool_store::new_public_id())
        .collect();
    let deliveries: Vec<String> = list
        .iter()
        .map(|_| tidepool_store::new_public_id())
        .collect();
    let agents: Vec<i64> = list.iter().map(|n| n.agent_id).collect();
    let kinds: Vec<&str> = list.iter().map(|n| n.kind.as_str()).collect();
    let actors: Vec<Option<i64>> = list.iter().map(|n| n.actor_id).collect();
    let posts: Vec<Option<i64>> = list.iter().map(|n| n.post_id).collect();
    let comments: Vec<Option<i64>> = list.iter().map(|n| n.comment_id).collect();
    let messages: Vec<&str> = list.iter().map(|n| n.message.as_str()).collect();
    let times: Vec<i64> = list.iter().map(|n| n.now).collect();
    let params: [&(dyn ToSql + Sync); 9] = [
        &uuids,
        &agents,
        &kinds,
        &actors,
        &posts,
        &comments,
        &messages,
        &times,
        &deliveries,
    ];
    // Agents told of an upvote milestone, each locked once, in key order (no deadlock
    // between two batches).
    let mut milestones: Vec<i32> = list
        .iter()
        .filter(|n| n.kind == NotificationKind::Upvote)
        .map(|n| upvote_lock_key(n.agent_id))
        .collect();
    milestones.sort_unstable();
    milestones.dedup();
    if milestones.is_empty() {
        // One statement, one round trip: the common case.
        db.execute(&INSERT, &params).await?;
        return Ok(());
    }
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    for key in &milestones {
        tx.query_one(&UPVOTE_LOCK, &[&UPVOTE_LOCK_CLASS, key])
            .await?;
    }
    tx.execute(&INSERT, &params).await?;
    tx.commit().await?;
    Ok(())
}

/// [`UPVOTE_LOCK`]'s second key for an agent. Agents whose ids differ by a multiple of
/// 2^31 share one: they then wait for each other, nothing worse.
fn upvote_lock_key(agent_id: i64) -> i32 {
    (agent_id & 0x7fff_ffff) as i32
}

pub(crate) async fn list(
    db: &PgPool,
    agent_id: i64,
    unread_only: bool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Notification>> {
    let sql = if unread_only { &UNREAD } else { &ALL };
    let before = before.unwrap_or(i64::MAX);
    // A negative limit is no limit (NULL), as SQLite reads it.
    let limit = (limit >= 0).then_some(limit);
    db.query(sql, &[&agent_id, &before, &limit])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub(crate) async fn unread(db: &PgPool, agent_id: i64) -> Result<i64> {
    get(
        &db.query_one(&UNREAD_COUNT, &[&agent_id, &UNREAD_CAP])
            .await?,
        0,
    )
}

pub(crate) async fn mark_read(db: &PgPool, agent_id: i64, post_id: Option<i64>) -> Result<i64> {
    let changed = match post_id {
        Some(post) => db.execute(&MARK_POST, &[&agent_id, &post]).await?,
        None => db.execute(&MARK_ALL, &[&agent_id]).await?,
    };
    Ok(changed as i64)
}

#[cfg(test)]
mod tests {
    //! What the conformance suite cannot show on PostgreSQL: a mark racing another
    //! transaction's change of the same rows, staged with the test's own transaction held
    //! open; and the statements walk their indexes.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tidepool_store::Store;

    use super::*;
    use crate::store::test_support::{
        NOW, agent, assert_walks_indexes, open, rows_scanned, scalar, until_one_waits,
    };

    /// A mark waits for another transaction that marks some of the same rows read: when
    /// that one commits, the mark counts only the rest (they were read already); when it
    /// rolls back, the mark counts them all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mark_behind_another_counts_only_what_it_changed() {
        let (_db, store) = open().await;
        for ending in ["commit", "rollback"] {
            let me = agent(&store, &format!("Marker{ending}")).await;
            let batch = (0..5)
                .map(|i| NewNotification {
                    agent_id: me,
                    kind: NotificationKind::Follow,
                    actor_id: None,
                    post_id: None,
                    comment_id: None,
                    message: format!("follow {i}"),
                    now: NOW + i,
                })
                .collect();
            store.add_notifications(batch).await.unwrap();
            let mut conn = store.pool().get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.batch_execute(&format!(
                "UPDATE notifications SET is_read = 1
                  WHERE id IN (SELECT id FROM notifications WHERE agent_id = {me}
                               ORDER BY id LIMIT 2)"
            ))
            .await
            .unwrap();
            let racing = {
                let store = store.clone();
                tokio::spawn(async move { store.mark_notifications_read(me, None).await })
            };
            until_one_waits(&store).await;
            if ending == "commit" {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            let changed = racing.await.unwrap().unwrap();
            assert_eq!(changed, if ending == "commit" { 3 } else { 5 }, "{ending}");
            assert_eq!(store.unread_notifications(me).await.unwrap(), 0);
        }
    }

    /// A batch announcing an upvote milestone while another transaction announces the same
    /// one (under the same lock, not committed yet) waits for it: when that one commits,
    /// the batch stores nothing (and queues nothing); when it rolls back, the batch stores
    /// the milestone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_milestone_racing_the_same_is_told_once() {
        let (_db, store) = open().await;
        for ending in ["commit", "rollback"] {
            let me = agent(&store, &format!("Milestone{ending}")).await;
            store
                .set_webhook(me, "https://x.example/h".into(), vec![1], NOW)
                .await
                .unwrap();
            let message = "Your post reached 10 upvotes";
            let mut conn = store.pool().get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.query_one(&UPVOTE_LOCK, &[&UPVOTE_LOCK_CLASS, &upvote_lock_key(me)])
                .await
                .unwrap();
            tx.batch_execute(&format!(
                "INSERT INTO notifications(uuid, agent_id, kind, message, created_at)
                 VALUES ('other-{ending}', {me}, 'upvote', '{message}', {NOW})"
            ))
            .await
            .unwrap();
            let racing = {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .add_notifications(vec![NewNotification {
                            agent_id: me,
                            kind: NotificationKind::Upvote,
                            actor_id: None,
                            post_id: None,
                            comment_id: None,
                            message: message.into(),
                            now: NOW + 1,
                        }])
                        .await
                })
            };
            until_one_waits(&store).await;
            if ending == "commit" {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            racing.await.unwrap().unwrap();
            let told = store.notifications(me, false, None, 10).await.unwrap();
            assert_eq!(told.len(), 1, "{ending}");
            assert_eq!(told[0].created_at == NOW, ending == "commit", "{ending}");
            let queued = store.deliveries_of(me, 10).await.unwrap().len();
            assert_eq!(queued, usize::from(ending == "rollback"), "{ending}");
        }
    }

    /// On 400 agents with 100 notifications each (40,000; the older nine in ten read, half
    /// about one of 50 posts), an agent's listing (all, and unread only), its unread count
    /// and both marks read through the notifications indexes meant for them (custom and
    /// generic plans): no sequential scan of the table, and no sort beyond a page or one
    /// agent's unread ones.
    #[tokio::test]
    async fn notification_statements_walk_their_indexes() {
        let (_db, store) = open().await;
        let conn = store.pool().get().await.unwrap();
        let client = conn.client();
        client
            .batch_execute(&format!(
                "INSERT INTO agents(uuid, name, name_key, created_at, last_active)
                     SELECT 'a' || g, 'a' || g, 'a' || g, 0, 0 FROM generate_series(1, 400) g;
                 INSERT INTO posts(uuid, author_id, submolt_id, title, post_type, hot_rank,
                         created_at, updated_at)
                     SELECT 'p' || g, (SELECT min(id) FROM agents),
                            (SELECT min(id) FROM submolts), 'post ' || g, 'text', 0, {NOW}, {NOW}
                     FROM generate_series(1, 50) g;
                 INSERT INTO notifications(uuid, agent_id, kind, actor_id, post_id, message,
                         is_read, created_at)
                     SELECT 'n' || a.id || '-' || k, a.id, 'comment', a.id,
                            CASE WHEN k % 2 = 0 THEN p.id END, 'm',
                            CASE WHEN k <= 90 THEN 1 ELSE 0 END, {NOW} + k
                     FROM generate_series(1, 100) k, agents a,
                          LATERAL (SELECT id FROM posts WHERE uuid = 'p' || (k % 50 + 1)) p
                     ORDER BY k, a.id;
                 ANALYZE;"
            ))
            .await
            .unwrap();
        let me: i64 = scalar(client, "SELECT id FROM agents WHERE name = 'a200'").await;
        let post: i64 = scalar(client, "SELECT id FROM posts WHERE uuid = 'p7'").await;
        let rows: i64 = scalar(client, "SELECT count(*) FROM notifications").await;
        assert_eq!(rows, 40_000);
        let top = i64::MAX;
        let by_agent: &[&str] = &["notifications_agent"];
        let by_post: &[&str] = &["notifications_unread"];
        let any_unread: &[&str] = &["notifications_unread", "notifications_unread_new"];
        let statements: [(&str, &Sql, Vec<i64>, &[&str]); 6] = [
            ("all", &ALL, vec![me, top, 20], by_agent),
            ("all, a later page", &ALL, vec![me, top / 2, 20], by_agent),
            // Few unread ones here: either partial index serves (the backlog test below
            // shows why the newest-first one exists).
            ("unread", &UNREAD, vec![me, top, 20], any_unread),
            (
                "unread count",
                &UNREAD_COUNT,
                vec![me, UNREAD_CAP],
                any_unread,
            ),
            ("mark by post", &MARK_POST, vec![me, post], by_post),
            ("mark all", &MARK_ALL, vec![me], any_unread),
        ];
        for (what, stmt, args, indexes) in statements {
            assert_walks_indexes(client, what, stmt, &args, ("notifications", indexes), 40.0).await;
        }
    }

    /// An agent with a backlog (12,000 notifications among 72,000, the older 3,000 never
    /// read, the newer ones read) pages its unread ones through `notifications_unread_new`
    /// without reading the read ones: a page of the unread listing and a later page touch
    /// about a page of rows (walking `notifications_agent` reads every read one above
    /// them), the capped count at most the agent's unread ones (a bitmap scan cannot stop
    /// at the cap, but it reads index entries of unread ones only). Custom and generic
    /// plans.
    #[tokio::test]
    async fn an_unread_backlog_is_paged_without_reading_it() {
        let (_db, store) = open().await;
        let me = agent(&store, "Backlogged").await;
        let conn = store.pool().get().await.unwrap();
        let client = conn.client();
        client
            .batch_execute(&format!(
                "INSERT INTO agents(uuid, name, name_key, created_at, last_active)
                     SELECT 'a' || g, 'a' || g, 'a' || g, 0, 0 FROM generate_series(1, 600) g;
                 INSERT INTO notifications(uuid, agent_id, kind, message, is_read, created_at)
                     SELECT 'n' || a.id || '-' || k, a.id, 'follow', 'm',
                            CASE WHEN k <= 90 THEN 1 ELSE 0 END, {NOW} + k
                     FROM generate_series(1, 100) k, agents a WHERE a.id <> {me}
                     ORDER BY k, a.id;
                 INSERT INTO notifications(uuid, agent_id, kind, message, is_read, created_at)
                     SELECT 'b' || k, {me}, 'follow', 'm',
                            CASE WHEN k <= 3000 THEN 0 ELSE 1 END, {NOW} + k
                     FROM generate_series(1, 12000) k;
                 ANALYZE;"
            ))
            .await
            .unwrap();
        let middle: i64 = scalar(client, "SELECT id FROM notifications WHERE uuid = 'b1500'").await;
        let page = 20;
        for (what, stmt, args, most) in [
            ("unread", &UNREAD, vec![me, i64::MAX, page], 2 * page),
            (
                "unread, a later page",
                &UNREAD,
                vec![me, middle, page],
                2 * page,
            ),
            (
                "unread count",
                &UNREAD_COUNT,
                vec![me, UNREAD_CAP],
                3_000 + UNREAD_CAP,
            ),
        ] {
            let scanned = rows_scanned(client, stmt, &args, "notifications").await;
            assert!(scanned <= most as f64, "{what}: {scanned} rows scanned");
        }
        assert_eq!(
            store
                .notifications(me, true, None, page)
                .await
                .unwrap()
                .len(),
            page as usize
        );
        assert_eq!(
            store.unread_notifications(me).await.unwrap(),
            UNREAD_CAP.min(3_000)
        );
        // Without the index, the first page reads the backlog (the read ones, or every
        // unread one to sort them).
        client
            .batch_execute("DROP INDEX notifications_unread_new")
            .await
            .unwrap();
        let scanned = rows_scanned(client, &UNREAD, &[me, i64::MAX, page], "notifications").await;
        assert!(
            scanned > 1_000.0,
            "{scanned} rows scanned without the index"
        );
    }
}
