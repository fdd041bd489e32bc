//! Read replicas through the HTTP API: two nodes on one primary with a streaming replica
//! ([`ReplicaPair`], started by this test whatever `TIDEPOOL_TEST_DATABASE_URL` says).
//! An agent that posts through one node sees its post through the other at once, even
//! with the replica's replay paused, while another agent's feed is still served by the
//! (stale) replica: the routing is per caller and holds across nodes. With the page cache
//! on, a page rendered from the stale replica is not served to the author; and a vote's
//! checks read the primary, so a just-deleted comment is not voted on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

pub use harness::*;
use serde_json::Value;
use tidepool_store_pg::testing::ReplicaPair;

/// The harness makes no database of its own here: each node gets the pair's below.
pub const BACKEND: Backend = Backend::Sqlite;

fn titles(feed: &Value) -> Vec<String> {
    feed["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_owned())
        .collect()
}

/// A budget far above any test's length: the paused replica stays in use for everyone,
/// so only an author's own write marks send its reads elsewhere.
const LARGE_BUDGET_MS: u64 = 600_000;
const WAIT: Duration = Duration::from_secs(30);

/// Two nodes `a` and `b` on the pair's primary and replica, sharing one server secret,
/// with the page cache on `b` as given (`0`: off).
async fn two_nodes(
    pair: &ReplicaPair,
    dirs: &tempfile::TempDir,
    page_cache_ms: u64,
) -> (TestServer, TestServer) {
    let mut pg = pair.config();
    pg.replica_lag_budget_ms = LARGE_BUDGET_MS;
    let node = |dir: &str, cache_ms: u64| {
        let (pg, data_dir) = (pg.clone(), dirs.path().join(dir));
        move |c: &mut tidepool_server::Config| {
            c.auto_claim = true;
            c.rate_limits_enabled = false;
            c.page_cache_ms = cache_ms;
            c.data_dir = data_dir;
            c.database = Some(pg);
        }
    };
    let a = TestServer::start_with(node("a", 0)).await;
    // Nodes of one database share the server secret.
    std::fs::create_dir_all(dirs.path().join("b")).unwrap();
    std::fs::copy(
        dirs.path().join("a/server.secret"),
        dirs.path().join("b/server.secret"),
    )
    .unwrap();
    let b = TestServer::start_with(node("b", page_cache_ms)).await;
    // Both nodes' lag samplers started: once the replica has replayed what they first
    // saw, its lag is measured against their history (a paused replica behind all of it
    // would count as over budget).
    pair.wait_caught_up().await.unwrap();
    (a, b)
}

/// Polls `GET path` as `key` on `node` until `check` holds for the body; panics with the
/// last body after `within`.
async fn poll(
    node: &TestServer,
    path: &str,
    key: Option<&str>,
    within: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let reply = node.get(path, key).await;
        let body = reply.ok().clone();
        if check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reads_its_own_post_through_another_node_while_replay_is_paused() {
    let pair = ReplicaPair::start().await;
    let dirs = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&pair, &dirs, 0).await;

    let author = a.register("ReplicaAuthor").await;
    let reader = a.register("ReplicaReader").await;
    a.create_post(&author, "general", "before the pause", "visible everywhere")
        .await;
    // Wait until the replica serves the first post to the other agent through node B.
    poll(
        &b,
        "/api/v1/posts?sort=new&limit=50",
        Some(&reader.key),
        WAIT,
        "the replica caught up",
        |feed| titles(feed).iter().any(|t| t == "before the pause"),
    )
    .await;

    pair.pause_replay().await.unwrap();

    let post = a
        .create_post(
            &author,
            "general",
            "after the pause",
            "written through node A",
        )
        .await;
    // The author, through node B: its post is there, in the feed and by id.
    let feed = b
        .get("/api/v1/posts?sort=new&limit=50", Some(&author.key))
        .await;
    assert!(
        titles(feed.ok()).iter().any(|t| t == "after the pause"),
        "the author must see its own post through another node: {:?}",
        titles(&feed.body)
    );
    let id = post["id"].as_str().unwrap();
    b.get(&format!("/api/v1/posts/{id}"), Some(&author.key))
        .await
        .ok();
    // Another agent, through node B: served by the paused replica, which does not have it
    // yet (and whose lag is still within this test's budget). A read may go to the
    // primary while a lag sample is late on a busy machine, so ask until the replica
    // answers.
    let feed = poll(
        &b,
        "/api/v1/posts?sort=new&limit=50",
        Some(&reader.key),
        Duration::from_secs(10),
        "another agent's feed served by the paused replica",
        |feed| !titles(feed).iter().any(|t| t == "after the pause"),
    )
    .await;
    let seen = titles(&feed);
    assert!(seen.iter().any(|t| t == "before the pause"), "{seen:?}");

    pair.resume_replay().await.unwrap();
    poll(
        &b,
        "/api/v1/posts?sort=new&limit=50",
        Some(&reader.key),
        WAIT,
        "the replica caught up again",
        |feed| titles(feed).iter().any(|t| t == "after the pause"),
    )
    .await;
    a.stop().await;
    b.stop().await;
}

/// With the page cache on: a page another agent had rendered from the paused replica after
/// the author's post is not served to the author, who sees its post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_cache_does_not_hide_a_writers_post_rendered_from_a_replica() {
    let pair = ReplicaPair::start().await;
    let dirs = tempfile::tempdir().unwrap();
    // Pages live 2 s on node B.
    let (a, b) = two_nodes(&pair, &dirs, 2_000).await;
    const FEED: &str = "/api/v1/posts?sort=new&limit=50";

    let author = b.register("CachedAuthor").await;
    let marker = a.register("CachedMarker").await;
    b.create_post(&author, "general", "cached before", "replayed")
        .await;
    poll(&b, FEED, None, WAIT, "the first post visible", |feed| {
        titles(feed).iter().any(|t| t == "cached before")
    })
    .await;

    pair.pause_replay().await.unwrap();
    // Readers here are anonymous: their pages are cached (a key the page cache does not
    // know yet would skip it). Evidence that node B serves them from the paused replica: once every page
    // cached before it has expired, an anonymous feed lacks a post written after the
    // pause.
    a.create_post(&marker, "general", "cached marker", "not replayed")
        .await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    poll(
        &b,
        FEED,
        None,
        WAIT,
        "an anonymous feed served by the paused replica",
        |feed| !titles(feed).iter().any(|t| t == "cached marker"),
    )
    .await;

    b.create_post(&author, "general", "cached after", "not replayed")
        .await;
    // Every page cached before the post expires; an anonymous next feed is rendered from
    // the paused replica (without the post) and cached.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    poll(
        &b,
        FEED,
        None,
        Duration::from_secs(10),
        "an anonymous feed rendered from the paused replica",
        |feed| !titles(feed).iter().any(|t| t == "cached after"),
    )
    .await;
    // The author, right after (its key checked again first: the key cache forgets keys
    // after 2 s, and the page cache serves only agents whose key it knows): not that
    // cached page, its own post.
    b.get("/api/v1/agents/me", Some(&author.key)).await.ok();
    let feed = b.get(FEED, Some(&author.key)).await;
    assert!(
        titles(feed.ok()).iter().any(|t| t == "cached after"),
        "the author got a cached page without its own post: {:?}",
        titles(&feed.body)
    );

    pair.resume_replay().await.unwrap();
    a.stop().await;
    b.stop().await;
}

/// A vote's checks read the primary: a comment deleted through one node cannot be voted
/// on through another while the replica still has it undeleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_deleted_on_the_primary_cannot_be_voted_on_through_a_stale_replica() {
    let pair = ReplicaPair::start().await;
    let dirs = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&pair, &dirs, 0).await;

    let author = a.register("DeletingAuthor").await;
    let voter = a.register("LateVoter").await;
    let post = a
        .create_post(&author, "general", "a thread", "with a comment")
        .await;
    let post_id = post["id"].as_str().unwrap().to_owned();
    let comment = a.comment(&author, &post_id, "soon gone", None).await;
    let comment_id = comment["id"].as_str().unwrap().to_owned();
    let thread = format!("/api/v1/posts/{post_id}/comments");
    let has_comment = |body: &Value| body.to_string().contains(&comment_id);
    poll(
        &b,
        &thread,
        Some(&voter.key),
        WAIT,
        "the replica has the comment",
        has_comment,
    )
    .await;

    pair.pause_replay().await.unwrap();
    a.delete(&format!("/api/v1/comments/{comment_id}"), Some(&author.key))
        .await
        .ok();
    let vote = b
        .post(
            &format!("/api/v1/comments/{comment_id}/upvote"),
            Some(&voter.key),
            serde_json::json!({}),
        )
        .await;
    let body = vote.err(400);
    assert!(
        body["error"].as_str().unwrap().contains("deleted"),
        "{body}"
    );

    pair.resume_replay().await.unwrap();
    a.stop().await;
    b.stop().await;
}
