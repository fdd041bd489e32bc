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
/// Where lag is not what a test is about: a loaded machine never pushes the replica out.
const LARGE_BUDGET_MS: u64 = 60_000;
const WAIT: Duration = Duration::from_secs(30);
/// How long a test retries reads that should reach the replica (a sample may go stale
/// for a moment on a busy machine, and the read then goes to the primary).
const RETRY: Duration = Duration::from_secs(10);

fn config(pair: &ReplicaPair) -> PgConfig {
    let mut config = pair.config();
    config.replica_lag_budget_ms = BUDGET_MS;
    config
}

fn relaxed_config(pair: &ReplicaPair) -> PgConfig {
    let mut config = pair.config();
    config.replica_lag_budget_ms = LARGE_BUDGET_MS;
    config
}

/// Repeats `n` reads of the newest posts until, in one round, all `n` showed `post` and
/// were answered by the replica and none by the primary; panics after [`RETRY`]. (A round
/// missing the post is retried: once, in a full CI run, the first reads right after a
/// replica restart did not show a post written before the stop; see docs/SCALE-OUT.md.)
async fn replica_serves(store: &PgStore, n: u64, post: i64) {
    let deadline = Instant::now() + RETRY;
    loop {
        let before = store.read_stats();
        let mut all_shown = true;
        for _ in 0..n {
            all_shown &= has(&newest(store).await, post);
        }
        let after = store.read_stats();
        if all_shown
            && after.replicas[0].reads == before.replicas[0].reads + n
            && after.primary_reads == before.primary_reads
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "reads did not all go to the replica and show the post within {RETRY:?} \
             (shown: {all_shown}): {before:?} -> {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
        post_type: tidepool_core::model::posts::PostType::Text,
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
    let store = PgStore::open(&relaxed_config(&pair)).await.unwrap();
    wait_for(&store, "replica in use", in_use).await;
    let stats = store.read_stats();
    assert_eq!(stats.lag_budget_ms, LARGE_BUDGET_MS);
    let replica = &stats.replicas[0];
    assert!(replica.healthy && replica.error.is_none(), "{stats:?}");
    assert!(
        replica.lag_ms.is_some_and(|l| l <= LARGE_BUDGET_MS),
        "{stats:?}"
    );
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
    replica_serves(&store, 5, post.id).await;

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
    replica_serves(&node_b, 1, mine.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_is_skipped_and_comes_back() {
    let pair = ReplicaPair::start().await;
    let store = PgStore::open(&relaxed_config(&pair)).await.unwrap();
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
    replica_serves(&store, 1, post.id).await;
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

/// The lag sampler has its own connections: with the primary's pool exhausted (one
/// connection, held here) the replica is still sampled, stays in use and serves reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_goes_on_while_the_primary_pool_is_exhausted() {
    let pair = ReplicaPair::start().await;
    let mut config = relaxed_config(&pair);
    config.pool_size = 1;
    let store = PgStore::open(&config).await.unwrap();
    let author = agent(&store, "Busy").await;
    let sub = general(&store).await;
    let post = store
        .create_post(new_post(author, sub, "read while the pool is busy"))
        .await
        .unwrap();
    wait_for(&store, "replica in use", in_use).await;
    let held = store.pool().get().await.unwrap();
    // Longer than a sample may be stale: an unsampled replica would be out by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for(&store, "replica in use with the primary pool held", |s| {
        in_use(s) && s.replicas[0].lag_ms.is_some()
    })
    .await;
    // Anonymous reads need nothing from the primary: the replica answers them.
    let deadline = Instant::now() + WAIT;
    while !has(&newest(&store).await, post.id) {
        assert!(
            Instant::now() < deadline,
            "the post never reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replica_serves(&store, 3, post.id).await;
    drop(held);
}

/// One replica that never answers (a listener that accepts and stays silent) does not
/// hold up the sampling of the other, which stays in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_replica_does_not_delay_the_others() {
    let pair = ReplicaPair::start().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let mut config = relaxed_config(&pair);
    config
        .replica_urls
        .push(format!("postgres://postgres@127.0.0.1:{port}/tidepool"));
    let store = PgStore::open(&config).await.unwrap();
    let author = agent(&store, "Patient").await;
    let sub = general(&store).await;
    let post = store
        .create_post(new_post(author, sub, "one replica is enough"))
        .await
        .unwrap();
    wait_for(
        &store,
        "the silent replica reported, the other in use",
        |s| in_use(s) && !s.replicas[1].in_use && s.replicas[1].error.is_some(),
    )
    .await;
    let deadline = Instant::now() + WAIT;
    while !has(&newest(&store).await, post.id) {
        assert!(Instant::now() < deadline, "the post never reached a read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replica_serves(&store, 3, post.id).await;
    assert_eq!(store.read_stats().replicas[1].reads, 0);
    held.abort();
}
