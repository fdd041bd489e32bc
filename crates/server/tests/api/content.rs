use serde_json::{Value, json};

use crate::TestServer;

#[tokio::test]
async fn posts_have_the_canonical_shape() {
    let s = TestServer::start().await;
    let a = s.register("Poster").await;
    let p = s.create_post(&a, "general", "Hello", "World").await;
    for field in [
        "id",
        "title",
        "content",
        "url",
        "type",
        "author",
        "author_id",
        "author_name",
        "submolt",
        "submolt_name",
        "upvotes",
        "downvotes",
        "score",
        "comment_count",
        "is_pinned",
        "is_locked",
        "is_deleted",
        "created_at",
        "updated_at",
    ] {
        assert!(p.get(field).is_some(), "post lacks {field}: {p}");
    }
    assert_eq!(p["type"], "text");
    assert_eq!(p["author"]["name"], "Poster");
    assert_eq!(p["submolt"]["name"], "general");
    assert_eq!(p["submolt"]["display_name"], "General");
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));

    // Link post through the `submolt` alias.
    let r = s
        .post(
            "/api/v1/posts",
            Some(&a.key),
            json!({"submolt": "introductions", "title": "A link", "url": "https://example.org/x"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_eq!(r.body["post"]["type"], "link");
    assert_eq!(r.body["post"]["submolt_name"], "introductions");

    let got = s
        .get(
            &format!("/api/v1/posts/{}", p["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got.ok()["post"]["title"], "Hello");
    assert_eq!(got.body["comments"], json!([]));
    assert_eq!(s.stats().await["posts"], 2);
}

#[tokio::test]
async fn post_validation_is_clear_and_writes_nothing() {
    let s = TestServer::start().await;
    let a = s.register("Validator").await;
    let cases = [
        (json!({"title": "t", "content": "c"}), 400),
        (json!({"submolt_name": "general", "content": "c"}), 400),
        (
            json!({"submolt_name": "general", "title": "   ", "content": "c"}),
            400,
        ),
        (json!({"submolt_name": "general", "title": "t"}), 400),
        (
            json!({"submolt_name": "general", "title": "x".repeat(301), "content": "c"}),
            400,
        ),
        (
            json!({"submolt_name": "general", "title": "t", "content": "x".repeat(40_001)}),
            400,
        ),
        (
            json!({"submolt_name": "general", "title": "t", "url": "javascript:alert(1)"}),
            400,
        ),
        (
            json!({"submolt_name": "general", "title": "t", "url": "not a url"}),
            400,
        ),
        (
            json!({"submolt_name": "general", "title": "t", "content": "c", "type": "video"}),
            400,
        ),
        (
            json!({"submolt_name": "nowhere", "title": "t", "content": "c"}),
            404,
        ),
        (
            json!({"submolt_name": "general", "title": 7, "content": "c"}),
            400,
        ),
    ];
    for (body, status) in cases {
        let r = s.post("/api/v1/posts", Some(&a.key), body.clone()).await;
        r.err(status);
        assert!(r.body["hint"].is_string() || status == 400, "{body}");
    }
    // Exactly at the limits is fine.
    let ok = s.post("/api/v1/posts", Some(&a.key), json!({"submolt_name": "general", "title": "é".repeat(300), "content": "ü".repeat(40_000)})).await;
    assert_eq!(ok.status.as_u16(), 201);
    assert_eq!(s.stats().await["posts"], 1);
}

#[tokio::test]
async fn only_the_author_deletes_and_deleted_posts_vanish() {
    let s = TestServer::start().await;
    let a = s.register("Author").await;
    let b = s.register("Other").await;
    let p = s.create_post(&a, "general", "to delete", "soon gone").await;
    let id = p["id"].as_str().unwrap();
    s.delete(&format!("/api/v1/posts/{id}"), Some(&b.key))
        .await
        .err(403);
    let d = s.delete(&format!("/api/v1/posts/{id}"), Some(&a.key)).await;
    assert!(d.ok()["message"].is_string());
    s.get(&format!("/api/v1/posts/{id}"), None).await.err(404);
    s.delete(&format!("/api/v1/posts/{id}"), Some(&a.key))
        .await
        .err(404);
    assert_eq!(
        s.get("/api/v1/posts?sort=new", None).await.body["posts"],
        json!([])
    );
    assert_eq!(
        s.get("/api/v1/search?q=gone", None).await.body["results"],
        json!([])
    );
    assert_eq!(s.stats().await["posts"], 0);
}

async fn vote(s: &TestServer, key: &str, path: &str) -> Value {
    let r = s.post(path, Some(key), json!({})).await;
    r.ok().clone()
}

#[tokio::test]
async fn votes_toggle_change_and_move_karma() {
    let s = TestServer::start().await;
    let a = s.register("Votee").await;
    let b = s.register("VoterB").await;
    let c = s.register("VoterC").await;
    let p = s.create_post(&a, "general", "vote me", "please").await;
    let up = format!("/api/v1/posts/{}/upvote", p["id"].as_str().unwrap());
    let down = format!("/api/v1/posts/{}/downvote", p["id"].as_str().unwrap());

    let v = vote(&s, &b.key, &up).await;
    assert_eq!(v["action"], "upvoted");
    assert_eq!(v["author"]["name"], "Votee");
    assert_eq!(v["already_following"], false);
    assert!(v["message"].is_string() && v["tip"].is_string() && v["suggestion"].is_string());
    assert_eq!(vote(&s, &c.key, &down).await["action"], "downvoted");
    assert_eq!(vote(&s, &c.key, &up).await["action"], "changed");
    assert_eq!(vote(&s, &b.key, &up).await["action"], "removed");

    let got = s
        .get(
            &format!("/api/v1/posts/{}", p["id"].as_str().unwrap()),
            None,
        )
        .await;
    let post = &got.body["post"];
    assert_eq!(
        (
            post["score"].as_i64(),
            post["upvotes"].as_i64(),
            post["downvotes"].as_i64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(
        s.get("/api/v1/agents/me", Some(&a.key)).await.body["karma"],
        1
    );
    let own = s.post(&up, Some(&a.key), json!({})).await;
    assert_eq!(own.err(400)["error"], "Cannot vote on your own content");

    // Comment votes.
    let cm = s
        .comment(&a, p["id"].as_str().unwrap(), "comment to vote", None)
        .await;
    let cup = format!("/api/v1/comments/{}/upvote", cm["id"].as_str().unwrap());
    let cdown = format!("/api/v1/comments/{}/downvote", cm["id"].as_str().unwrap());
    assert_eq!(vote(&s, &b.key, &cup).await["action"], "upvoted");
    assert_eq!(vote(&s, &c.key, &cdown).await["action"], "downvoted");
    let got = s
        .get(
            &format!("/api/v1/comments/{}", cm["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (
            got.body["comment"]["upvotes"].as_i64(),
            got.body["comment"]["downvotes"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        s.get("/api/v1/agents/me", Some(&a.key)).await.body["karma"],
        1
    );
    s.post(
        "/api/v1/posts/00000000-0000-7000-8000-000000000000/upvote",
        Some(&b.key),
        json!({}),
    )
    .await
    .err(404);
}

#[tokio::test]
async fn comment_trees_nest_sort_and_cap_depth() {
    let s = TestServer::start().await;
    let a = s.register("Threader").await;
    let b = s.register("Replier").await;
    let p = s.create_post(&a, "general", "thread", "root").await;
    let pid = p["id"].as_str().unwrap();
    let c1 = s.comment(&b, pid, "first root", None).await;
    let c2 = s.comment(&b, pid, "second root", None).await;
    let r1 = s
        .comment(&a, pid, "reply to first", c1["id"].as_str())
        .await;
    assert_eq!(r1["parent_id"], c1["id"]);
    assert_eq!(r1["depth"], 1);
    assert_eq!(r1["author_name"], "Threader");
    s.post(
        &format!("/api/v1/comments/{}/upvote", c2["id"].as_str().unwrap()),
        Some(&a.key),
        json!({}),
    )
    .await
    .ok();

    let tree = s
        .get(&format!("/api/v1/posts/{pid}/comments?sort=top"), None)
        .await;
    let roots = tree.ok()["comments"].as_array().unwrap().clone();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[0]["content"], "second root");
    assert_eq!(roots[1]["replies"][0]["content"], "reply to first");
    let old = s
        .get(&format!("/api/v1/posts/{pid}/comments?sort=old"), None)
        .await;
    assert_eq!(old.body["comments"][0]["content"], "first root");
    let new = s
        .get(&format!("/api/v1/posts/{pid}/comments?sort=new"), None)
        .await;
    assert_eq!(new.body["comments"][0]["content"], "second root");
    for sort in ["best", "controversial"] {
        assert_eq!(
            s.get(&format!("/api/v1/posts/{pid}/comments?sort={sort}"), None)
                .await
                .ok()["comments"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
    // An unknown sort is the default (best), as on Moltbook.
    let weird = s
        .get(&format!("/api/v1/posts/{pid}/comments?sort=weird"), None)
        .await;
    assert_eq!(weird.ok()["sort"], "best");
    // Paging over roots.
    let page1 = s
        .get(
            &format!("/api/v1/posts/{pid}/comments?sort=new&limit=1"),
            None,
        )
        .await;
    assert_eq!(page1.body["has_more"], true);
    let cursor = page1.body["next_cursor"].as_str().unwrap().to_owned();
    let page2 = s
        .get(
            &format!("/api/v1/posts/{pid}/comments?sort=new&limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(page2.body["comments"][0]["content"], "first root");
    assert_eq!(page2.body["has_more"], false);

    // Depth: 0..=10 allowed, 11 refused.
    let mut parent = c2["id"].as_str().unwrap().to_owned();
    for _ in 1..=10 {
        parent = s.comment(&a, pid, "deeper", Some(&parent)).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let too_deep = s
        .post(
            &format!("/api/v1/posts/{pid}/comments"),
            Some(&a.key),
            json!({"content": "x", "parent_id": parent}),
        )
        .await;
    assert_eq!(too_deep.err(400)["error"], "Maximum comment depth exceeded");

    // A parent from another post is not found.
    let other = s.create_post(&b, "general", "other", "post").await;
    let cross = s
        .post(
            &format!("/api/v1/posts/{}/comments", other["id"].as_str().unwrap()),
            Some(&a.key),
            json!({"content": "x", "parent_id": c1["id"]}),
        )
        .await;
    cross.err(404);
    s.post(
        &format!("/api/v1/posts/{pid}/comments"),
        Some(&a.key),
        json!({"content": ""}),
    )
    .await
    .err(400);
    s.post(
        &format!("/api/v1/posts/{pid}/comments"),
        Some(&a.key),
        json!({"content": "x".repeat(10_001)}),
    )
    .await
    .err(400);
    let got = s.get(&format!("/api/v1/posts/{pid}"), None).await;
    assert_eq!(got.body["post"]["comment_count"], 13);
    assert!(!got.body["comments"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn deleted_comments_stay_in_the_tree_as_deleted() {
    let s = TestServer::start().await;
    let a = s.register("Cmt").await;
    let b = s.register("Cmt2").await;
    let p = s.create_post(&a, "general", "t", "c").await;
    let pid = p["id"].as_str().unwrap();
    let c = s.comment(&b, pid, "secretive words", None).await;
    let cid = c["id"].as_str().unwrap();
    s.comment(&a, pid, "a reply", Some(cid)).await;
    s.delete(&format!("/api/v1/comments/{cid}"), Some(&a.key))
        .await
        .err(403);
    s.delete(&format!("/api/v1/comments/{cid}"), Some(&b.key))
        .await
        .ok();
    let got = s.get(&format!("/api/v1/comments/{cid}"), None).await;
    assert_eq!(got.ok()["comment"]["content"], "[deleted]");
    assert_eq!(got.body["comment"]["is_deleted"], true);
    let tree = s.get(&format!("/api/v1/posts/{pid}/comments"), None).await;
    assert_eq!(tree.body["comments"][0]["replies"][0]["content"], "a reply");
    assert_eq!(
        s.get("/api/v1/search?q=secretive", None).await.body["results"],
        json!([])
    );
    s.get(
        "/api/v1/comments/00000000-0000-7000-8000-000000000000",
        None,
    )
    .await
    .err(404);
}

#[tokio::test]
async fn moderators_pin_at_most_three() {
    let s = TestServer::start().await;
    let owner = s.register("ModOwner").await;
    let other = s.register("NotMod").await;
    let r = s
        .post(
            "/api/v1/submolts",
            Some(&owner.key),
            json!({"name": "pins", "display_name": "Pins"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201);
    let mut ids = vec![];
    for i in 0..4 {
        ids.push(
            s.create_post(&other, "pins", &format!("p{i}"), "c").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    s.post(
        &format!("/api/v1/posts/{}/pin", ids[0]),
        Some(&other.key),
        json!({}),
    )
    .await
    .err(403);
    for id in &ids[..3] {
        assert_eq!(
            s.post(
                &format!("/api/v1/posts/{id}/pin"),
                Some(&owner.key),
                json!({})
            )
            .await
            .ok()["action"],
            "pinned"
        );
    }
    s.post(
        &format!("/api/v1/posts/{}/pin", ids[3]),
        Some(&owner.key),
        json!({}),
    )
    .await
    .err(400);
    let feed = s.get("/api/v1/submolts/pins/feed", None).await;
    let posts = feed.ok()["posts"].as_array().unwrap().clone();
    assert_eq!(posts.len(), 4);
    assert!(posts[..3].iter().all(|p| p["is_pinned"] == true));
    assert_eq!(
        s.delete(&format!("/api/v1/posts/{}/pin", ids[0]), Some(&owner.key))
            .await
            .ok()["action"],
        "unpinned"
    );
    s.post(
        &format!("/api/v1/posts/{}/pin", ids[3]),
        Some(&owner.key),
        json!({}),
    )
    .await
    .ok();
}
