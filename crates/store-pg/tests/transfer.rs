//! A whole network moves between the stores and back, unchanged: export from SQLite,
//! import into PostgreSQL (directly and through pgbouncer), export again: byte for byte
//! the same; and back into SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tidepool_store::Store;
use tidepool_store::conformance;
use tidepool_store::transfer::{TABLES, export_table, import_table};
use tidepool_store_pg::PgStore;
use tidepool_store_pg::testing::TestDb;
use tidepool_store_sqlite::{SqliteStore, StoreOptions};

async fn export_all(store: &dyn Store) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    for t in TABLES {
        let mut lines = Vec::new();
        export_table(store, t, |l| {
            lines.push(l);
            Ok(())
        })
        .await
        .unwrap();
        out.push((t.name, lines));
    }
    out
}

async fn import_all(store: &dyn Store, export: &[(&'static str, Vec<String>)]) {
    store.import_begin().await.unwrap();
    for (t, (name, lines)) in TABLES.iter().zip(export) {
        assert_eq!(t.name, *name);
        import_table(store, t, lines.iter().cloned().map(Ok), |_| {})
            .await
            .unwrap();
    }
    store.import_finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_moves_between_stores_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("a"), StoreOptions::default()).unwrap());
    // A network with every kind of row: owners and sessions, claims, keys, submolts and
    // moderators, posts, comments, votes, quarantine and its release, the logs, DMs,
    // notifications.
    conformance::owners_accounts_sessions_and_claims(sqlite.as_ref()).await;
    conformance::agents_keys(sqlite.as_ref()).await;
    conformance::submolts_lifecycle(sqlite.as_ref()).await;
    conformance::votes_move_counters_and_karma(sqlite.as_ref()).await;
    conformance::comments_tree_and_counts(sqlite.as_ref()).await;
    conformance::quarantine_visibility_and_release(sqlite.as_ref()).await;
    conformance::owners_suspension_levels(sqlite.as_ref()).await;
    // Direct messages: conversations in every status, sealed bytes, read marks, a
    // labelled message and a released one.
    conformance::dms_request_and_decide(sqlite.as_ref()).await;
    conformance::dms_messages_and_read_marks(sqlite.as_ref()).await;
    conformance::dms_safety_and_held_messages(sqlite.as_ref()).await;
    // Notifications of every kind, pointing at agents, posts and comments or at nothing,
    // read and unread.
    conformance::notifications_listed_newest_first_with_names(sqlite.as_ref()).await;
    conformance::notifications_unread_and_marking(sqlite.as_ref()).await;
    // Open reports (one of a deleted post among them) and an avatar (bytes of every
    // value).
    conformance::reports_listed_newest_first_by_scope(sqlite.as_ref()).await;
    conformance::avatars_replaced_removed_and_deleted_with_the_agent(sqlite.as_ref()).await;
    // Webhooks (sealed secrets) and their queue: deliveries failed and delivered with
    // their errors and attempts (first: its claims take every due delivery), then
    // pending ones.
    conformance::webhooks_outcomes_under_their_lease(sqlite.as_ref()).await;
    conformance::webhooks_queue_notifications_of_agents_with_one(sqlite.as_ref()).await;
    // Votes that stay (the scenarios above take theirs back).
    let fan = sqlite
        .register_agent(conformance::new_agent("Fan", true))
        .await
        .unwrap();
    let post = sqlite
        .list_posts(
            tidepool_core::model::feed::FeedScope::All,
            tidepool_core::model::feed::PostSort::New,
            tidepool_core::model::feed::Window::All,
            false,
            tidepool_core::model::feed::PageRequest {
                limit: 1,
                after: None,
                offset: 0,
                now: conformance::NOW,
                include_quarantined: false,
            },
        )
        .await
        .unwrap()
        .items
        .remove(0);
    sqlite
        .cast_vote(tidepool_core::model::votes::Ballot {
            voter_id: fan.id,
            weight: 0.75,
            kind: tidepool_core::model::votes::TargetKind::Post,
            target_id: post.id,
            author_id: post.author.id,
            value: 1,
            now: conformance::NOW,
        })
        .await
        .unwrap();
    let owner = sqlite
        .owner_by_email("human@example.com")
        .await
        .unwrap()
        .unwrap();
    sqlite
        .create_session(vec![1, 2, 3, 255], owner.id, conformance::NOW, i64::MAX / 2)
        .await
        .unwrap();
    let first = export_all(sqlite.as_ref()).await;
    let rows: usize = first.iter().map(|(_, l)| l.len()).sum();
    assert!(rows > 50, "{rows} rows");
    for name in [
        "owners",
        "agents",
        "posts",
        "comments",
        "votes",
        "sessions",
        "mod_log",
        "dm_conversations",
        "dm_messages",
        "notifications",
        "post_reports",
        "avatars",
        "webhooks",
        "webhook_deliveries",
    ] {
        let (_, lines) = first.iter().find(|(n, _)| *n == name).unwrap();
        assert!(!lines.is_empty(), "no {name} exported");
    }

    let db = TestDb::new().await;
    let pg: Arc<dyn Store> = Arc::new(PgStore::open(&db.config()).await.unwrap());
    import_all(pg.as_ref(), &first).await;
    let second = export_all(pg.as_ref()).await;
    for ((name, a), (_, b)) in first.iter().zip(&second) {
        assert_eq!(a, b, "{name} differs after SQLite -> PostgreSQL");
    }
    // The imported network works: search finds imported text, new rows get new ids.
    assert_eq!(
        pg.search_posts("discuss", 10, false).await.unwrap().len(),
        1
    );
    let stats_pg = pg.stats().await.unwrap();
    assert_eq!(stats_pg, sqlite.stats().await.unwrap());
    conformance::agents_register_and_find_more(pg.as_ref()).await;
    // New conversations and messages get ids after the imported ones.
    conformance::dms_conversations_of_an_agent(pg.as_ref()).await;
    // So do notifications (an id taken twice would fail the insert); the imported ones
    // read back with their names.
    conformance::notifications_page_without_gaps_or_duplicates(pg.as_ref()).await;
    let reader = pg.agent_by_name("ntreader").await.unwrap().unwrap();
    let imported = pg.notifications(reader.id, false, None, 100).await.unwrap();
    assert_eq!(imported.len(), 7);
    let oldest = imported.last().unwrap();
    assert_eq!(
        (
            oldest.actor_name.as_deref(),
            oldest.submolt_name.as_deref(),
            oldest.comment_uuid.is_some()
        ),
        (Some("NtActor"), Some("tidewatch"), true)
    );
    assert_eq!(pg.unread_notifications(reader.id).await.unwrap(), 7);
    // The reported posts list as they did, reasons and all, and decisions work on them.
    let summary = |list: Vec<tidepool_core::model::moderation::ReportedPost>| {
        list.into_iter()
            .map(|r| (r.post.uuid, r.reports, r.latest_at, r.reasons))
            .collect::<Vec<_>>()
    };
    let scope = tidepool_core::model::moderation::QueueScope::All;
    let reported = summary(pg.reported_posts(scope.clone(), 50).await.unwrap());
    assert_eq!(reported.len(), 4);
    assert_eq!(
        reported,
        summary(sqlite.reported_posts(scope, 50).await.unwrap())
    );
    conformance::reports_resolved_and_logged(pg.as_ref()).await;
    // The avatar reads back by its public id, the agent pointing at it.
    let owner_of_avatar = pg.agent_by_name("avfirst").await.unwrap().unwrap();
    let url = owner_of_avatar.avatar_url.unwrap();
    let uuid = url
        .rsplit('/')
        .next()
        .and_then(|f| f.strip_suffix(".png"))
        .unwrap();
    let png = pg.avatar(uuid).await.unwrap().unwrap();
    assert_eq!(png, sqlite.avatar(uuid).await.unwrap().unwrap());
    // The queue carries on: the imported pending deliveries are claimed, with their
    // webhook and notification, and a new notification is queued after them (an id taken
    // twice would fail the insert).
    let hooked = pg.agent_by_name("whhooked").await.unwrap().unwrap();
    let imported = pg.deliveries_of(hooked.id, 10).await.unwrap();
    assert_eq!(imported.len(), 3);
    let claimed = pg
        .claim_deliveries(conformance::NOW + 10, conformance::NOW + 20, 10)
        .await
        .unwrap();
    let mut ids: Vec<i64> = claimed.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    let mut want: Vec<i64> = imported.iter().map(|d| d.id).collect();
    want.sort_unstable();
    assert_eq!(ids, want);
    assert!(claimed.iter().all(|d| d.url == "https://hooked.example/in"));
    pg.add_notifications(vec![tidepool_core::model::notifications::NewNotification {
        agent_id: hooked.id,
        kind: tidepool_core::model::notifications::NotificationKind::Follow,
        actor_id: None,
        post_id: None,
        comment_id: None,
        message: "after the move".into(),
        now: conformance::NOW + 30,
    }])
    .await
    .unwrap();
    let now = pg.deliveries_of(hooked.id, 10).await.unwrap();
    assert_eq!(now.len(), 4);
    assert!(now[0].id > imported[0].id);
    assert_eq!(now[0].notification.message, "after the move");

    // The same import (binary COPY) through pgbouncer in transaction mode, where
    // statements are unnamed.
    let bounced = TestDb::through_pgbouncer().await;
    let via: Arc<dyn Store> = Arc::new(PgStore::open(&bounced.config()).await.unwrap());
    import_all(via.as_ref(), &first).await;
    for ((name, a), (_, b)) in first.iter().zip(&export_all(via.as_ref()).await) {
        assert_eq!(
            a, b,
            "{name} differs after SQLite -> PostgreSQL through pgbouncer"
        );
    }
    assert_eq!(
        via.search_posts("discuss", 10, false).await.unwrap().len(),
        1
    );
    via.shutdown();

    // And back into a fresh SQLite store.
    let back: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("b"), StoreOptions::default()).unwrap());
    import_all(back.as_ref(), &second).await;
    let third = export_all(back.as_ref()).await;
    for ((name, a), (_, b)) in first.iter().zip(&third) {
        assert_eq!(a, b, "{name} differs after PostgreSQL -> SQLite");
    }
    assert_eq!(
        back.search_posts("discuss", 10, false).await.unwrap().len(),
        1
    );
    // Importing into a store that holds a network is refused.
    assert!(back.import_begin().await.is_err());
    sqlite.shutdown();
    back.shutdown();
}
