//! The page cache (public listings served for a moment from memory) and the key cache:
//! what they may and may not do.

use std::time::Duration;

use serde_json::json;

use crate::TestServer;

fn titles(v: &serde_json::Value) -> Vec<String> {
    v["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn cached_pages_are_shared_briefly_but_writers_always_see_their_own_writes() {
    let s = TestServer::start_with(|c| {
        c.auto_claim = true;
        c.rate_limits_enabled = false;
        c.page_cache_ms = 400;
    })
    .await;
    let a = s.register("Writer").await;
    let b = s.register("Reader").await;
    let feed = "/api/v1/posts?sort=new&limit=10";

    // Prime the cache, anonymously and as b.
    assert!(titles(s.get(feed, None).await.ok()).is_empty());
    assert!(titles(s.get(feed, Some(&b.key)).await.ok()).is_empty());

    // a writes; a sees its post at once, although the page is cached for others.
    s.create_post(&a, "general", "fresh from a", "body").await;
    assert_eq!(
        titles(s.get(feed, Some(&a.key)).await.ok()),
        ["fresh from a"]
    );
    // The anonymous page may still be the cached one, but only for the cache's moment.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(titles(s.get(feed, None).await.ok()), ["fresh from a"]);
    assert_eq!(
        titles(s.get(feed, Some(&b.key)).await.ok()),
        ["fresh from a"]
    );

    // A deletion leaves every cached page at once.
    let post = s.create_post(&a, "general", "to be deleted", "body").await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(titles(s.get(feed, None).await.ok()).len(), 2);
    let id = post["id"].as_str().unwrap();
    s.delete(&format!("/api/v1/posts/{id}"), Some(&a.key))
        .await
        .ok();
    assert_eq!(titles(s.get(feed, None).await.ok()), ["fresh from a"]);
    s.get(&format!("/api/v1/posts/{id}"), None).await.err(404);
}

#[tokio::test]
async fn a_cached_page_is_never_served_to_a_bad_or_rotated_key() {
    let s = TestServer::start().await;
    let a = s.register("Rotator").await;
    s.create_post(&a, "general", "hello", "world").await;
    let feed = "/api/v1/posts?sort=hot";
    s.get(feed, Some(&a.key)).await.ok();
    s.get(feed, None).await.ok();

    // Unknown keys are refused even though the page is cached.
    s.get(
        feed,
        Some("moltbook_sk_notARealKeyAtAll0000000000000000000000"),
    )
    .await
    .err(401);
    // After rotation the old key fails on the very next request (key cache dropped).
    let rotated = s
        .post("/api/v1/agents/me/rotate-key", Some(&a.key), json!({}))
        .await;
    let new_key = rotated.ok()["api_key"].as_str().unwrap().to_owned();
    s.get(feed, Some(&a.key)).await.err(401);
    s.get("/api/v1/agents/me", Some(&a.key)).await.err(401);
    s.get(feed, Some(&new_key)).await.ok();
}

#[tokio::test]
async fn spotlight_markers_stay_fresh_on_cached_pages() {
    let s = TestServer::start().await;
    let a = s.register("Marked").await;
    s.create_post(&a, "general", "three little words", "and some more")
        .await;
    let url = "/api/v1/posts?sort=new&spotlight=datamark";
    let first = s.get(url, None).await.ok().clone();
    let second = s.get(url, None).await.ok().clone();
    let (t1, t2) = (
        first["posts"][0]["title"].as_str().unwrap(),
        second["posts"][0]["title"].as_str().unwrap(),
    );
    assert_ne!(t1, t2, "each response draws its own marker");
    assert!(!t1.contains(' ') && !t2.contains(' '));
}

#[tokio::test]
async fn page_cache_can_be_turned_off() {
    let s = TestServer::start_with(|c| {
        c.auto_claim = true;
        c.rate_limits_enabled = false;
        c.page_cache_ms = 0;
    })
    .await;
    let a = s.register("NoCache").await;
    let b = s.register("Other").await;
    let feed = "/api/v1/posts?sort=new";
    assert!(titles(s.get(feed, Some(&b.key)).await.ok()).is_empty());
    s.create_post(&a, "general", "visible at once", "x").await;
    assert_eq!(
        titles(s.get(feed, Some(&b.key)).await.ok()),
        ["visible at once"]
    );
}

#[tokio::test]
async fn answers_that_depend_on_the_caller_are_never_shared() {
    let s = TestServer::start().await;
    let star = s.register("Star").await;
    let fan = s.register("Fan").await;
    let other = s.register("Other").await;
    s.post("/api/v1/agents/Star/follow", Some(&fan.key), json!({}))
        .await
        .ok();
    let path = "/api/v1/agents/profile?name=Star";
    let seen_by_fan = s.get(path, Some(&fan.key)).await.ok().clone();
    let seen_by_other = s.get(path, Some(&other.key)).await.ok().clone();
    assert_eq!(seen_by_fan["is_following"], true, "{seen_by_fan}");
    assert_eq!(seen_by_other["is_following"], false, "{seen_by_other}");
    let _ = star;
}
