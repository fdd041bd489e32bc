//! Invalidations across nodes: two stores on one database, one of them listening. What
//! the writing store commits reaches the listener's sink, exactly (nothing from writes that
//! roll back or need no invalidation), in order, and again after its connection is killed;
//! through pgbouncer with `listen_url` direct; and a `LISTEN` through pgbouncer is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tidepool_core::model::agents::NewAgent;
use tidepool_core::model::comments::NewComment;
use tidepool_core::model::owners::SuspensionLevel;
use tidepool_core::model::posts::{NewPost, Safety};
use tidepool_store::{AdminClaim, Store, StoreError};
use tidepool_store_pg::testing::TestDb;
use tidepool_store_pg::{
    Invalidation, InvalidationSink, Listener, PgConfig, PgStore, Sql, StatementMode, Type,
};

const NOW: i64 = 1_700_000_000_000;

/// What a node's caches would have been told, and when.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(Invalidation, Instant)>>,
    caught_up: Mutex<Option<Instant>>,
}

impl InvalidationSink for Recorder {
    fn invalidate(&self, what: Invalidation) {
        self.events.lock().unwrap().push((what, Instant::now()));
    }
    fn caught_up(&self, through: Instant) {
        *self.caught_up.lock().unwrap() = Some(through);
    }
}

impl Recorder {
    fn events(&self) -> Vec<Invalidation> {
        self.events.lock().unwrap().iter().map(|e| e.0).collect()
    }
    fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }
    fn caught_up(&self) -> Option<Instant> {
        *self.caught_up.lock().unwrap()
    }
}

/// Waits (at most `limit`) for `ready`.
async fn wait(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Starts a listener on `store`'s configuration and waits until it proves it hears.
async fn listening(store: &PgStore, node: &str) -> (Listener, Arc<Recorder>) {
    let sink = Arc::new(Recorder::default());
    let listener = store.pool().listen(node, sink.clone());
    let started = Instant::now();
    wait("the listener catching up", Duration::from_secs(10), || {
        sink.caught_up().is_some_and(|t| t > started)
    })
    .await;
    assert!(listener.status().listening, "{:?}", listener.status());
    // A (re)connect drops every cache first: notifications may have been missed.
    assert_eq!(
        sink.events(),
        [Invalidation::AllKeys, Invalidation::Pages],
        "on connect"
    );
    (listener, sink)
}

fn hash(tag: &str) -> Vec<u8> {
    let mut h = [0u8; 32];
    for (i, b) in tag.bytes().enumerate() {
        h[i % 32] ^= b.wrapping_add(i as u8);
    }
    h[31] ^= tag.len() as u8;
    h.to_vec()
}

fn new_agent(name: &str, auto_claim: bool) -> NewAgent {
    NewAgent {
        name: name.to_owned(),
        name_key: name.to_lowercase(),
        description: format!("I am {name}"),
        key_hash: hash(&format!("key-{name}")),
        claim_token_hash: hash(&format!("claim-{name}")),
        claim_expires_at: NOW + 3_600_000,
        verification_code_hash: hash(&format!("code-{name}")),
        auto_claim,
        now: NOW,
    }
}

fn new_post(author: i64, submolt: i64) -> NewPost {
    NewPost {
        author_id: author,
        submolt_id: submolt,
        title: "soon gone".into(),
        content: Some("a post to delete".into()),
        url: None,
        post_type: tidepool_core::model::posts::PostType::Text,
        safety: Safety::allow(),
        now: NOW,
    }
}

/// Runs `write` on the writing store and waits for the listener to have heard exactly
/// `expect` more (checked in full at the end of the test); returns how long after the
/// write began the first of them arrived (an upper bound of commit to delivery: it
/// includes the write itself).
async fn expect<T>(
    sink: &Recorder,
    expect: &[Invalidation],
    write: impl std::future::Future<Output = T>,
) -> (T, Option<Duration>) {
    let before = sink.len();
    let started = Instant::now();
    let out = write.await;
    if expect.is_empty() {
        return (out, None);
    }
    wait(&format!("{expect:?}"), Duration::from_secs(5), || {
        sink.len() >= before + expect.len()
    })
    .await;
    let first = sink.events.lock().unwrap()[before].1;
    (out, Some(first.saturating_duration_since(started)))
}

/// Every write that must reach other nodes' caches does, once committed; the others
/// (registration, posting, a refused revocation that rolls back) send nothing.
async fn every_invalidating_write_reaches_the_other_node(mode: StatementMode) {
    let db = TestDb::new().await;
    let mut config: PgConfig = db.config();
    config.statements = mode;
    let a = PgStore::open(&config).await.unwrap();
    let b = PgStore::open(&config).await.unwrap();
    let (_listener, sink) = listening(&b, "b").await;
    let mut delays = Vec::new();
    let mut took = |d: Option<Duration>| delays.extend(d);

    let (alice, d) = expect(&sink, &[], a.register_agent(new_agent("Alice", true))).await;
    took(d);
    let alice = alice.unwrap().id;
    let (r, d) = expect(
        &sink,
        &[Invalidation::KeysOf(alice)],
        a.rotate_key(alice, hash("key-Alice-2"), NOW),
    )
    .await;
    r.unwrap();
    took(d);
    // Rolled back (no such key): nothing is sent.
    let (r, _) = expect(&sink, &[], a.revoke_read_key(alice, 999_999, NOW)).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    let (r, d) = expect(
        &sink,
        &[Invalidation::KeysOf(alice)],
        a.revoke_all_keys(alice, NOW),
    )
    .await;
    assert_eq!(r.unwrap(), 1);
    took(d);

    let general = a.submolt_by_name("general").await.unwrap().unwrap().id;
    let (post, _) = expect(&sink, &[], a.create_post(new_post(alice, general))).await;
    let post = post.unwrap();
    let (comment, _) = expect(
        &sink,
        &[],
        a.create_comment(NewComment {
            post_id: post.id,
            author_id: alice,
            parent_uuid: None,
            content: "soon gone too".into(),
            safety: Safety::allow(),
            now: NOW,
        }),
    )
    .await;
    let (r, d) = expect(
        &sink,
        &[Invalidation::Pages],
        a.delete_comment(comment.unwrap().id),
    )
    .await;
    r.unwrap();
    took(d);
    let (r, d) = expect(&sink, &[Invalidation::Pages], a.delete_post(post.id)).await;
    r.unwrap();
    took(d);
    let (r, d) = expect(
        &sink,
        &[Invalidation::KeysOf(alice), Invalidation::Pages],
        a.set_suspended(
            alice,
            SuspensionLevel::Owner,
            Some(("owner".into(), "a test".into())),
            None,
        ),
    )
    .await;
    r.unwrap();
    took(d);

    let bob = a.register_agent(new_agent("Bob", false)).await.unwrap().id;
    let (r, d) = expect(
        &sink,
        &[Invalidation::KeysOf(bob)],
        a.admin_claim(
            "bob",
            AdminClaim::WithoutOwner {
                link_expires_at: NOW + 3_600_000,
            },
            NOW,
        ),
    )
    .await;
    r.unwrap();
    took(d);
    let owner = a
        .create_owner("owner@example.org", "not-a-real-hash", false, NOW)
        .await
        .unwrap();
    let carol = a
        .register_agent(new_agent("Carol", false))
        .await
        .unwrap()
        .id;
    let (r, d) = expect(
        &sink,
        &[Invalidation::KeysOf(carol)],
        a.claim_with_token(hash("claim-Carol"), hash("code-Carol"), owner.id, 20, NOW),
    )
    .await;
    r.unwrap();
    took(d);
    // Bob's key leaked in someone's content: revoked, and every node forgets it.
    let mut leaked = [0u8; 32];
    leaked.copy_from_slice(&hash("key-Bob"));
    let (r, d) = expect(
        &sink,
        &[Invalidation::KeysOf(bob)],
        a.block_content(
            vec![leaked],
            Some(carol),
            json!({"labels": ["secret"]}),
            NOW,
        ),
    )
    .await;
    assert_eq!(r.unwrap(), 1);
    took(d);
    let (r, d) = expect(
        &sink,
        &[Invalidation::KeysOf(bob), Invalidation::Pages],
        a.delete_agent(bob, NOW),
    )
    .await;
    r.unwrap();
    took(d);

    // Nothing more, nothing less, in commit order.
    tokio::time::sleep(Duration::from_millis(100)).await;
    use Invalidation::{AllKeys, KeysOf, Pages};
    assert_eq!(
        sink.events(),
        [
            AllKeys,
            Pages,
            KeysOf(alice),
            KeysOf(alice),
            Pages,
            Pages,
            KeysOf(alice),
            Pages,
            KeysOf(bob),
            KeysOf(carol),
            KeysOf(bob),
            KeysOf(bob),
            Pages,
        ]
    );
    delays.sort();
    println!(
        "{mode:?}: write begun to the other node's sink, {} writes: min {:?}, median {:?}, max {:?}",
        delays.len(),
        delays[0],
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalidating_write_reaches_the_other_node_prepared() {
    every_invalidating_write_reaches_the_other_node(StatementMode::Prepared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalidating_write_reaches_the_other_node_unnamed() {
    every_invalidating_write_reaches_the_other_node(StatementMode::Unnamed).await;
}

/// `pg_terminate_backend` on the listener's connection: it reconnects, drops every cache
/// (what was sent meanwhile is lost), proves itself again and goes on hearing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_when_its_connection_is_killed() {
    let db = TestDb::new().await;
    let a = PgStore::open(&db.config()).await.unwrap();
    let (listener, sink) = listening(&a, "b").await;
    let first = listener.status();
    assert_eq!(first.sessions, 1);
    let pid = first.backend_pid.unwrap();

    // The connection is findable by its application name, as an operator would.
    const BY_NAME: Sql = Sql::new(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        &[Type::TEXT],
    );
    let rows = a
        .pool()
        .query(&BY_NAME, &[&"tidepool-listen b"])
        .await
        .unwrap();
    let pids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(pids, [pid]);

    const KILL: Sql = Sql::new("SELECT pg_terminate_backend($1)", &[Type::INT4]);
    let killed = Instant::now();
    a.pool().query_one(&KILL, &[&pid]).await.unwrap();
    wait("a new session", Duration::from_secs(10), || {
        let s = listener.status();
        s.listening && s.sessions == 2
    })
    .await;
    let status = listener.status();
    assert_ne!(status.backend_pid, Some(pid));
    assert!(status.last_error.is_some(), "{status:?}");
    wait("proofs again", Duration::from_secs(5), || {
        sink.caught_up().is_some_and(|t| t > killed)
    })
    .await;
    println!(
        "reconnected and caught up {:?} after the kill",
        killed.elapsed()
    );
    let events = sink.events();
    assert_eq!(
        events[2..],
        [Invalidation::AllKeys, Invalidation::Pages],
        "the reconnect dropped every cache"
    );

    let agent = a.register_agent(new_agent("Dora", true)).await.unwrap().id;
    let (r, _) = expect(
        &sink,
        &[Invalidation::KeysOf(agent)],
        a.revoke_all_keys(agent, NOW),
    )
    .await;
    assert_eq!(r.unwrap(), 1);
    assert_eq!(sink.events().last(), Some(&Invalidation::KeysOf(agent)));
}

/// Nodes writing through pgbouncer (transaction mode, `unnamed`) with `listen_url`
/// straight at PostgreSQL: the writes' notifications pass through pgbouncer and arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgbouncer_with_listen_url_direct() {
    let db = TestDb::through_pgbouncer().await;
    let mut config = db.config();
    assert_eq!(config.statements, StatementMode::Unnamed);
    config.listen_url = Some(db.direct_url());
    let a = PgStore::open(&config).await.unwrap();
    let b = PgStore::open(&config).await.unwrap();
    let (_listener, sink) = listening(&b, "b").await;
    let agent = a.register_agent(new_agent("Erin", true)).await.unwrap().id;
    let (r, d) = expect(
        &sink,
        &[Invalidation::KeysOf(agent), Invalidation::Pages],
        a.set_suspended(
            agent,
            SuspensionLevel::Owner,
            Some(("owner".into(), "a test".into())),
            None,
        ),
    )
    .await;
    r.unwrap();
    println!("through pgbouncer: write begun to the other node's sink {d:?}");
}

/// A `LISTEN` through a transaction-mode pooler would hear nothing (or, worse, hear its
/// pings while missing invalidations): the listener refuses it, says which setting to
/// change, and never claims to be caught up, so caches stay on their short lifetimes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_through_pgbouncer_is_refused() {
    let db = TestDb::through_pgbouncer().await;
    let store = Arc::new(PgStore::open(&db.config()).await.unwrap());
    // Other clients of the same pool keep its server connections busy, as a node's own
    // requests do: the check must not pass by luck when they shuffle the connections.
    let busy = {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(conn) = store.pool().get().await {
                    let _ = conn.batch_execute("SELECT pg_sleep(0.003)").await;
                }
            }
        })
    };
    let sink = Arc::new(Recorder::default());
    let listener = store.pool().listen("b", sink.clone());
    wait("the refusal", Duration::from_secs(15), || {
        listener.status().last_error.is_some()
    })
    .await;
    // The listener retries with backoff (100 ms doubling): about five more attempts.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let status = listener.status();
        assert!(!status.listening && status.sessions == 0, "{status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    busy.abort();
    let status = listener.status();
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("listen_url"), "{error}");
    assert!(sink.caught_up().is_none());
    assert!(sink.events().is_empty(), "{:?}", sink.events());
}
