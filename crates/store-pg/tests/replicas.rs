//! Read replicas: reads go to a streaming replica while its lag is within the budget, an
//! agent reads its own writes on any node, and a paused or stopped replica is skipped.
//!
//! Each test starts its own primary + replica ([`ReplicaPair`]: `pg_basebackup -R` from
//! the same Debian binaries as the throwaway cluster), whatever
//! `TIDEPOOL_TEST_DATABASE_URL` says, and stops it when done. Waits are bounded (30 s)
//! and fail the test with what was seen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tidepool_core::model::feed::{FeedScope, PageRequest, PostSort, Window};
use tidepool_core::model::posts::{NewPost, Post, Safety};
use tidepool_store::Store;
use tidepool_store::consistency::{self, Reader};
use tidepool_store_pg::testing::ReplicaPair;
use tidepool_store_pg::{PgConfig, PgStore, ReadStats, Sql, Type};

/// A small budget keeps the paused-replay test short; the sampler runs every 100 ms.
const BUDGET_MS: u64 = 400;
const WAIT: Duration = Duration::from_secs(30);

fn config(pair: &ReplicaPair) -> PgConfig {
    let mut config = pair.config();
    config.replica_lag_budget_ms = BUDGET_MS;
    config
}

/// Polls `check` on the store's stats until it holds; panics with the last stats after
/// [`WAIT`].
async fn wait_for(store: &PgStore, what: &str, check: impl Fn(&ReadStats) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = store.read_stats();
        if check(&stats) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; stats: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn in_use(s: &ReadStats) -> bool {
    s.replicas[0].in_use
}

const NEW_AGENT: Sql = Sql::new(
    "INSERT INTO agents(uuid, name, name_key, created_at, last_active)
     VALUES ($1, $2, lower($2), 0, 0) RETURNING id",
    &[Type::TEXT, Type::TEXT],
);

async fn agent(store: &PgStore, name: &str) -> i64 {
    let uuid = tidepool_store::new_public_id();
    store
        .pool()
        .query_one(&NEW_AGENT, &[&uuid, &name])
        .await
        .unwrap()
        .get(0)
}

async fn general(store: &PgStore) -> i64 {
    store
        .submolt_by_name("general")
        .await
        .unwrap()
        .expect("the default submolt")
        .id
}

fn new_post(author: i64, submolt: i64, title: &str) -> NewPost {
    NewPost {
        author_id: author,
        submolt_id: submolt,
        title: title.into(),
        content: Some("body".into()),
        url: None,
        post_type: "text".into(),
        safety: Safety::allow(),
        now: tidepool_core::time::now_ms(),
    }
}

/// The newest posts site-wide, as a feed read.
async fn newest(store: &PgStore) -> Vec<Post> {
    store
        .list_posts(
            FeedScope::All,
            PostSort::New,
            Window::All,
            false,
            PageRequest {
                limit: 50,
                after: None,
                offset: 0,
                now: tidepool_core::time::now_ms(),
                include_quarantined: false,
            },
        )
        .await
        .unwrap()
        .items
}

fn has(posts: &[Post], id: i64) -> bool {
    posts.iter().any(|p| p.id == id)
}

/// A direct connection to one server, for the test's own statements.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_are_served_by_a_caught_up_replica() {
    let pair = ReplicaPair::start().await;
    let store = PgStore::open(&config(&pair)).await.unwrap();
    wait_for(&store, "replica in use", in_use).await;
    let stats = store.read_stats();
    assert_eq!(stats.lag_budget_ms, BUDGET_MS);
    let replica = &stats.replicas[0];
    assert!(replica.healthy && replica.error.is_none(), "{stats:?}");
    assert!(replica.lag_ms.is_some_and(|l| l <= BUDGET_MS), "{stats:?}");
    assert!(!replica.url.is_empty());

    // Written anonymously (no reader named): nothing waits for it, it shows on the
    // replica once replayed.
    let author = agent(&store, "Writer").await;
    let sub = general(&store).await;
    let post = store
        .create_post(new_post(author, sub, "hello replica"))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !has(&newest(&store).await, post.id) {
        assert!(Instant::now() < deadline, "the post never reached a read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = store.read_stats();
    for _ in 0..5 {
        assert!(has(&newest(&store).await, post.id));
    }
    let after = store.read_stats();
    assert_eq!(
        after.replicas[0].reads,
        before.replicas[0].reads + 5,
        "each read went to the replica: {before:?} -> {after:?}"
    );
    assert_eq!(after.primary_reads, before.primary_reads);

    // The replica really is the server that answered: the store's own pool has sessions
    // open on it (application_name tidepool), and it is a standby.
    let direct = connect(&pair.replica_url()).await;
    let sessions: i64 = direct
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE application_name = 'tidepool' AND datname = 'tidepool'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(sessions >= 1, "no tidepool session on the replica");
    let standby: bool = direct
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(standby);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_replay_sends_reads_to_the_primary_and_writers_see_their_writes() {
    let pair = ReplicaPair::start().await;
    // Two nodes on the same database and replica.
    let node_a = PgStore::open(&config(&pair)).await.unwrap();
    let node_b = PgStore::open(&config(&pair)).await.unwrap();
    wait_for(&node_a, "replica in use on node A", in_use).await;
    wait_for(&node_b, "replica in use on node B", in_use).await;
    let author = agent(&node_a, "Author").await;
    let sub = general(&node_a).await;

    pair.pause_replay().await.unwrap();

    // One request on node A: the agent writes, then reads in the same request.
    let mine = consistency::scope(async {
        consistency::identify(Reader::Agent(author));
        let post = node_a
            .create_post(new_post(author, sub, "written while replay is paused"))
            .await
            .unwrap();
        assert!(
            has(&newest(&node_a).await, post.id),
            "same request, same node"
        );
        post
    })
    .await;

    // Its next request, on the other node: it sees its post, read from the primary (the
    // replica has not replayed it), whether or not the replica is still within budget.
    let before = node_b.read_stats();
    consistency::scope(async {
        consistency::identify(Reader::Agent(author));
        assert!(
            has(&newest(&node_b).await, mine.id),
            "next request, other node"
        );
        let found = node_b.post_by_id(mine.id).await.unwrap();
        assert_eq!(found.map(|p| p.id), Some(mine.id));
    })
    .await;
    let after = node_b.read_stats();
    assert_eq!(
        after.replicas[0].reads, before.replicas[0].reads,
        "the author's reads must not use the paused replica: {before:?} -> {after:?}"
    );
    assert!(after.primary_reads >= before.primary_reads + 2);

    // Replay stays paused while the primary moves on: the lag grows past the budget and
    // every read, anonymous ones too, goes to the primary and sees fresh data.
    wait_for(&node_b, "lag over budget", |s| {
        !s.replicas[0].in_use && s.replicas[0].lag_ms.is_some_and(|l| l > BUDGET_MS)
    })
    .await;
    let stats = node_b.read_stats();
    assert!(stats.replicas[0].healthy, "paused, not down: {stats:?}");
    let before = node_b.read_stats();
    assert!(
        has(&newest(&node_b).await, mine.id),
        "anonymous read, fresh"
    );
    let after = node_b.read_stats();
    assert_eq!(after.replicas[0].reads, before.replicas[0].reads);
    assert_eq!(after.primary_reads, before.primary_reads + 1);

    // Resumed, the replica catches up and serves reads again.
    pair.resume_replay().await.unwrap();
    wait_for(&node_b, "replica back in use", in_use).await;
    let before = node_b.read_stats();
    assert!(has(&newest(&node_b).await, mine.id));
    let after = node_b.read_stats();
    assert_eq!(after.replicas[0].reads, before.replicas[0].reads + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_is_skipped_and_comes_back() {
    let pair = ReplicaPair::start().await;
    let store = PgStore::open(&config(&pair)).await.unwrap();
    wait_for(&store, "replica in use", in_use).await;
    let author = agent(&store, "Steady").await;
    let sub = general(&store).await;
    let post = store
        .create_post(new_post(author, sub, "survives a replica"))
        .await
        .unwrap();

    pair.stop_replica().await.unwrap();
    // Every read succeeds, from the first one after the stop (a pooled connection to the
    // stopped replica fails and the read is repeated on the primary).
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(has(&newest(&store).await, post.id));
        assert_eq!(
            store.post_by_id(post.id).await.unwrap().map(|p| p.id),
            Some(post.id)
        );
        let stats = store.read_stats();
        if !stats.replicas[0].healthy {
            assert!(!stats.replicas[0].in_use);
            assert!(stats.replicas[0].error.is_some(), "{stats:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stop was never noticed: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = store.read_stats();
    assert!(has(&newest(&store).await, post.id));
    let after = store.read_stats();
    assert_eq!(after.primary_reads, before.primary_reads + 1);

    pair.start_replica().await.unwrap();
    wait_for(&store, "replica back in use", in_use).await;
    let before = store.read_stats();
    assert!(has(&newest(&store).await, post.id));
    let after = store.read_stats();
    assert_eq!(after.replicas[0].reads, before.replicas[0].reads + 1);
}

/// A URL that names a primary as a replica is refused as a read target (it is not a
/// standby), and reads go to the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_url_naming_a_primary_is_never_used() {
    let pair = ReplicaPair::start().await;
    let mut config = config(&pair);
    config.replica_urls = vec![pair.primary_url()];
    let store = PgStore::open(&config).await.unwrap();
    wait_for(&store, "the wrong replica reported", |s| {
        s.replicas[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("not a standby"))
    })
    .await;
    let before = store.read_stats();
    newest(&store).await;
    let after = store.read_stats();
    assert!(!after.replicas[0].in_use);
    assert_eq!(after.replicas[0].reads, 0);
    assert_eq!(after.primary_reads, before.primary_reads + 1);
}
