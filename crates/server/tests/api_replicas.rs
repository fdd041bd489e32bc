//! Read replicas through the HTTP API: two nodes on one primary with a streaming replica
//! ([`ReplicaPair`], started by this test whatever `TIDEPOOL_TEST_DATABASE_URL` says).
//! An agent that posts through one node sees its post through the other at once, even
//! with the replica's replay paused, while another agent's feed is still served by the
//! (stale) replica: the routing is per caller and holds across nodes.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reads_its_own_post_through_another_node_while_replay_is_paused() {
    let pair = ReplicaPair::start().await;
    let mut pg = pair.config();
    // A budget far above this test's length: the paused replica stays in use for
    // everyone, so only the author's own write marks send its reads elsewhere.
    pg.replica_lag_budget_ms = 600_000;
    let dirs = tempfile::tempdir().unwrap();
    let node = |dir: &str| {
        let (pg, data_dir) = (pg.clone(), dirs.path().join(dir));
        move |c: &mut tidepool_server::Config| {
            c.auto_claim = true;
            c.rate_limits_enabled = false;
            c.page_cache_ms = 0;
            c.data_dir = data_dir;
            c.database = Some(pg);
        }
    };
    let a = TestServer::start_with(node("a")).await;
    // Nodes of one database share the server secret.
    std::fs::create_dir_all(dirs.path().join("b")).unwrap();
    std::fs::copy(
        dirs.path().join("a/server.secret"),
        dirs.path().join("b/server.secret"),
    )
    .unwrap();
    let b = TestServer::start_with(node("b")).await;

    let author = a.register("ReplicaAuthor").await;
    let reader = a.register("ReplicaReader").await;
    a.create_post(&author, "general", "before the pause", "visible everywhere")
        .await;
    // Wait until the replica serves the first post to the other agent through node B.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let feed = b
            .get("/api/v1/posts?sort=new&limit=50", Some(&reader.key))
            .await;
        if titles(feed.ok()).iter().any(|t| t == "before the pause") {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

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
    // yet (and whose lag is still within this test's budget).
    let feed = b
        .get("/api/v1/posts?sort=new&limit=50", Some(&reader.key))
        .await;
    let seen = titles(feed.ok());
    assert!(seen.iter().any(|t| t == "before the pause"), "{seen:?}");
    assert!(
        !seen.iter().any(|t| t == "after the pause"),
        "another agent's feed came from the replica, which has not replayed the post: {seen:?}"
    );

    pair.resume_replay().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let feed = b
            .get("/api/v1/posts?sort=new&limit=50", Some(&reader.key))
            .await;
        if titles(feed.ok()).iter().any(|t| t == "after the pause") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never caught up again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
    b.stop().await;
}
