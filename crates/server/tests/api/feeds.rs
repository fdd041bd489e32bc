use std::collections::HashSet;

use serde_json::{Value, json};

use crate::TestServer;

#[tokio::test]
async fn personal_feed_merges_subscriptions_and_follows() {
    let s = TestServer::start().await;
    let me = s.register("Reader").await;
    let friend = s.register("Friend").await;
    let stranger = s.register("Stranger").await;
    s.post(
        "/api/v1/submolts",
        Some(&stranger.key),
        json!({"name": "niche", "display_name": "Niche"}),
    )
    .await;
    s.post("/api/v1/submolts/niche/subscribe", Some(&me.key), json!({}))
        .await
        .ok();
    s.post("/api/v1/agents/Friend/follow", Some(&me.key), json!({}))
        .await
        .ok();
    s.create_post(&friend, "general", "from friend", "x").await;
    s.create_post(&stranger, "niche", "in niche", "x").await;
    s.create_post(&stranger, "general", "unrelated", "x").await;

    let feed = s.get("/api/v1/feed?sort=new", Some(&me.key)).await;
    let titles: Vec<&str> = feed.ok()["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["in niche", "from friend"]);
    let following = s.get("/api/v1/feed?filter=following", Some(&me.key)).await;
    assert_eq!(following.ok()["posts"].as_array().unwrap().len(), 1);
    assert_eq!(following.body["feed_type"], "following");
    for sort in ["hot", "top", "rising"] {
        s.get(&format!("/api/v1/feed?sort={sort}"), Some(&me.key))
            .await
            .ok();
    }
    s.get("/api/v1/feed?filter=weird", Some(&me.key))
        .await
        .err(400);
    s.get("/api/v1/feed", None).await.err(401);
}

/// Walks a listing with cursors, inserting a new post between pages; every post that
/// existed before the walk must be seen exactly once.
async fn walk(s: &TestServer, path: &str, poster: &crate::Agent, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0.. {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let page = s.get(&url, None).await;
        let page = page.ok();
        for p in page["posts"].as_array().unwrap() {
            seen.push(p["id"].as_str().unwrap().to_owned());
        }
        s.create_post(poster, "general", &format!("arrival {round}"), "late")
            .await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert_eq!(page["has_more"], true);
    }
    seen
}

#[tokio::test]
async fn cursor_paging_has_no_duplicates_or_gaps_while_posts_arrive() {
    let s = TestServer::start().await;
    let a = s.register("Pager").await;
    let b = s.register("Voter").await;
    let late = s.register("Latecomer").await;
    let mut before = HashSet::new();
    for i in 0..23 {
        let p = s
            .create_post(&a, "general", &format!("post {i}"), "body")
            .await;
        if i % 3 == 0 {
            s.post(
                &format!("/api/v1/posts/{}/upvote", p["id"].as_str().unwrap()),
                Some(&b.key),
                json!({}),
            )
            .await
            .ok();
        }
        before.insert(p["id"].as_str().unwrap().to_owned());
    }
    for path in [
        "/api/v1/posts?sort=new",
        "/api/v1/posts?sort=hot",
        "/api/v1/posts?sort=top",
        "/api/v1/submolts/general/feed?sort=new",
    ] {
        let seen = walk(&s, path, &late, 5).await;
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{path}: duplicates in {seen:?}");
        for id in &before {
            assert!(seen.contains(id), "{path}: gap, {id} never seen");
        }
    }
    // Offset paging still works for era-1 clients.
    let p1 = s
        .get("/api/v1/posts?sort=new&limit=10&offset=0", None)
        .await;
    let p2 = s
        .get("/api/v1/posts?sort=new&limit=10&offset=10", None)
        .await;
    assert_eq!(p1.body["next_offset"], 10);
    let ids1: HashSet<&str> = p1.body["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        p2.body["posts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| !ids1.contains(p["id"].as_str().unwrap()))
    );
}

#[tokio::test]
async fn listings_filter_by_submolt_author_and_window() {
    let s = TestServer::start().await;
    let a = s.register("Alpha").await;
    let b = s.register("Beta").await;
    s.create_post(&a, "general", "a in general", "x").await;
    s.create_post(&b, "introductions", "b in intros", "x").await;
    let by_sub = s.get("/api/v1/posts?submolt=introductions", None).await;
    assert_eq!(by_sub.ok()["posts"].as_array().unwrap().len(), 1);
    let by_author = s.get("/api/v1/posts?author=alpha&sort=new", None).await;
    assert_eq!(by_author.ok()["posts"][0]["title"], "a in general");
    for t in ["hour", "day", "week", "month", "year", "all"] {
        assert_eq!(
            s.get(&format!("/api/v1/posts?sort=top&t={t}"), None)
                .await
                .ok()["posts"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
    assert_eq!(
        s.get("/api/v1/posts?sort=rising", None).await.ok()["posts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    s.get("/api/v1/posts?sort=top&t=decade", None)
        .await
        .err(400);
    // An unknown sort is the default (hot), as on Moltbook; an unknown window still fails.
    s.get("/api/v1/posts?sort=best", None).await.ok();
    s.get("/api/v1/posts?submolt=nowhere", None).await.err(404);
    s.get("/api/v1/posts?author=nobody", None).await.err(404);
    let sub_feed = s.get("/api/v1/submolts/general/feed?sort=new", None).await;
    assert_eq!(sub_feed.ok()["posts"].as_array().unwrap().len(), 1);
    assert_eq!(sub_feed.body["submolt"]["name"], "general");
}

#[tokio::test]
async fn search_finds_posts_and_comments_with_relevance() {
    let s = TestServer::start().await;
    let a = s.register("Searcher").await;
    let p = s
        .create_post(
            &a,
            "general",
            "Coral bleaching report",
            "Warm water is bleaching the coral reef",
        )
        .await;
    s.create_post(&a, "general", "Unrelated", "Kelp forests are lovely")
        .await;
    s.comment(
        &a,
        p["id"].as_str().unwrap(),
        "The coral will recover if the water cools",
        None,
    )
    .await;

    let all = s.get("/api/v1/search?q=coral", None).await;
    let all = all.ok();
    let results = all["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(all["query"], "coral");
    for r in results {
        let sim = r["similarity"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&sim));
        assert!(r["author"]["name"].is_string() && r["id"].is_string() && r["upvotes"].is_i64());
    }
    let types: HashSet<&str> = results
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, HashSet::from(["post", "comment"]));
    let comment = results.iter().find(|r| r["type"] == "comment").unwrap();
    assert_eq!(comment["post"]["id"], p["id"]);
    assert_eq!(comment["title"], Value::Null);
    assert_eq!(all["posts"].as_array().unwrap().len(), 1);

    let posts_only = s.get("/api/v1/search?q=coral&type=posts", None).await;
    assert_eq!(posts_only.body["results"].as_array().unwrap().len(), 1);
    let comments_only = s.get("/api/v1/search?q=coral&type=comments", None).await;
    assert_eq!(comments_only.body["results"][0]["type"], "comment");
    // Paging.
    let page1 = s.get("/api/v1/search?q=coral&limit=1", None).await;
    assert_eq!(page1.body["has_more"], true);
    let cur = page1.body["next_cursor"].as_str().unwrap().to_owned();
    let page2 = s
        .get(
            &format!("/api/v1/search?q=coral&limit=1&cursor={cur}"),
            None,
        )
        .await;
    assert_eq!(page2.body["results"].as_array().unwrap().len(), 1);
    assert_ne!(
        page2.body["results"][0]["id"],
        page1.body["results"][0]["id"]
    );
    // FTS syntax in the query is matched literally, never a 500.
    for q in ["\"", "coral OR", "NEAR(", "*", "title:coral", "\u{0}"] {
        s.get(&format!("/api/v1/search?q={}", urlencode(q)), None)
            .await
            .ok();
    }
    s.get("/api/v1/search", None).await.err(400);
    s.get(&format!("/api/v1/search?q={}", "a".repeat(501)), None)
        .await
        .err(400);
    s.get("/api/v1/search?q=x&type=agents", None).await.err(400);
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}
