//! What real Moltbook clients, run unchanged but for the base URL, tripped on: sorts they
//! send that we did not know, a response carrying two spellings one client maps to a
//! single field, and `DELETE /posts/{id}/vote`.

use serde_json::{Value, json};

use crate::{Agent, TestServer};

/// Pairs of keys a client reads as one field (KX, `kelexine/moltbook-cli` src/api/types.rs,
/// declares the second as a serde alias of the first), so an object must not carry both:
/// serde refuses it as a duplicate field.
const ONE_FIELD: &[(&str, &str)] = &[
    ("similarity", "relevance"),
    ("is_claimed", "isClaimed"),
    ("is_active", "isActive"),
    ("created_at", "createdAt"),
    ("last_active", "lastActive"),
    ("claimed_at", "claimedAt"),
    ("owner_id", "ownerId"),
    ("avatar_url", "avatarUrl"),
    ("follower_count", "followerCount"),
    ("following_count", "followingCount"),
    ("x_handle", "xHandle"),
    ("x_name", "xName"),
    ("x_avatar", "xAvatar"),
    ("x_bio", "xBio"),
    ("code", "verification_code"),
    ("challenge", "challenge_text"),
    ("sender", "from_agent"),
];

/// Keys one client reads as a field of a direct message, which must not come twice there
/// (KX's `Message` declares `from_agent` and `message` as aliases of `sender` and
/// `content`). Elsewhere `message` is the envelope's human text and may sit beside
/// `content`, so this pair is checked only inside DM messages.
const DM_MESSAGE_PAIR: (&str, &str) = ("content", "message");

/// Every object in `v` that carries both keys of a pair, as (path, pair).
fn doubled(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (a, b) in ONE_FIELD {
                if m.contains_key(*a) && m.contains_key(*b) {
                    out.push(format!("{path}: {a} + {b}"));
                }
            }
            for (k, child) in m {
                doubled(child, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                doubled(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().or(x["id"].as_str()).unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn unknown_sorts_fall_back_to_the_listing_default() {
    let s = TestServer::start().await;
    let a = s.register("Sorter").await;
    let b = s.register("Other").await;
    s.post(
        "/api/v1/submolts",
        Some(&a.key),
        json!({"name": "busy", "display_name": "Busy"}),
    )
    .await
    .ok();
    for agent in [&a, &b] {
        s.post(
            "/api/v1/submolts/busy/subscribe",
            Some(&agent.key),
            json!({}),
        )
        .await
        .ok();
    }
    let p1 = s.create_post(&a, "busy", "first", "x").await;
    let p2 = s.create_post(&a, "busy", "second", "x").await;
    // Two upvotes put the older post first in hot (log10(2) is worth hours), not in new.
    let c = s.register("Third").await;
    for voter in [&b, &c] {
        s.post(
            &format!("/api/v1/posts/{}/upvote", p1["id"].as_str().unwrap()),
            Some(&voter.key),
            json!({}),
        )
        .await
        .ok();
    }
    let pid = p2["id"].as_str().unwrap();
    s.comment(&b, pid, "one", None).await;
    s.comment(&b, pid, "two", None).await;

    // Clients send `hot` to /submolts: it is the popular order.
    let popular = s.get("/api/v1/submolts?sort=popular", None).await;
    let popular = names(&popular.ok()["submolts"]);
    for sort in ["hot", "HOT", "trending", "", "%20"] {
        let r = s.get(&format!("/api/v1/submolts?sort={sort}"), None).await;
        assert_eq!(names(&r.ok()["submolts"]), popular, "sort={sort}");
    }
    let by_name = s.get("/api/v1/submolts?sort=alphabetical", None).await;
    let by_name = names(&by_name.ok()["submolts"]);
    assert_ne!(by_name, popular);
    let r = s.get("/api/v1/submolts?sort=name", None).await;
    assert_eq!(names(&r.ok()["submolts"]), by_name);

    // Post listings: anything unknown is hot.
    for (path, key) in [
        ("/api/v1/posts", None),
        ("/api/v1/submolts/busy/feed", None),
        ("/api/v1/feed", Some(a.key.as_str())),
    ] {
        let hot = s.get(&format!("{path}?sort=hot"), key).await;
        let hot = names(&hot.ok()["posts"]);
        let new = s.get(&format!("{path}?sort=new"), key).await;
        assert_ne!(names(&new.ok()["posts"]), hot, "{path}");
        for sort in ["best", "popular", "bogus", "Hot"] {
            let r = s.get(&format!("{path}?sort={sort}"), key).await;
            assert_eq!(names(&r.ok()["posts"]), hot, "{path}?sort={sort}");
        }
    }

    // Comment trees: anything unknown is best, and the response names the sort applied.
    let best = s
        .get(&format!("/api/v1/posts/{pid}/comments?sort=best"), None)
        .await;
    let best = names(&best.ok()["comments"]);
    for sort in ["weird", "hot", "oldest"] {
        let r = s
            .get(&format!("/api/v1/posts/{pid}/comments?sort={sort}"), None)
            .await;
        assert_eq!(names(&r.ok()["comments"]), best, "sort={sort}");
        assert_eq!(r.body["sort"], "best");
    }
    let old = s
        .get(&format!("/api/v1/posts/{pid}/comments?sort=OLD"), None)
        .await;
    assert_eq!(old.ok()["sort"], "old");
}

#[tokio::test]
async fn no_object_carries_two_spellings_of_one_client_field() {
    let s = TestServer::start().await;
    let a = s.register("Speller").await;
    let b = s.register("Reader").await;
    let p = s
        .create_post(&a, "general", "Tide tables", "The tide turns twice a day")
        .await;
    let pid = p["id"].as_str().unwrap();
    s.comment(&b, pid, "tide pools are full of life", None)
        .await;
    s.post(
        &format!("/api/v1/posts/{pid}/upvote"),
        Some(&b.key),
        json!({}),
    )
    .await
    .ok();

    let search = s.get("/api/v1/search?q=tide", None).await;
    let results = search.ok()["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert!(r["similarity"].is_f64(), "{r}");
        assert!(r.get("relevance").is_none(), "{r}");
    }
    let me = s.get("/api/v1/agents/me", Some(&a.key)).await;
    assert_eq!(me.ok()["agent"]["is_claimed"], true);
    assert!(me.body["agent"]["created_at"].is_string());

    let mut found = Vec::new();
    for (path, key) in [
        ("/api/v1/search?q=tide".to_owned(), None),
        ("/api/v1/search?q=tide&type=comments".to_owned(), None),
        ("/api/v1/agents/me".to_owned(), Some(a.key.as_str())),
        (
            "/api/v1/agents/profile?name=Speller".to_owned(),
            Some(b.key.as_str()),
        ),
        ("/api/v1/agents/status".to_owned(), Some(a.key.as_str())),
        ("/api/v1/posts?sort=new".to_owned(), None),
        ("/api/v1/feed".to_owned(), Some(a.key.as_str())),
        (format!("/api/v1/posts/{pid}"), None),
        (format!("/api/v1/posts/{pid}/comments"), None),
        ("/api/v1/submolts".to_owned(), None),
        ("/api/v1/submolts/general".to_owned(), Some(a.key.as_str())),
        ("/api/v1/submolts/general/feed".to_owned(), None),
        ("/api/v1/submolts/general/moderators".to_owned(), None),
    ] {
        let r = s.get(&path, key).await;
        doubled(r.ok(), &path, &mut found);
    }
    let vote = s
        .post(
            &format!("/api/v1/posts/{pid}/downvote"),
            Some(&b.key),
            json!({}),
        )
        .await;
    doubled(vote.ok(), "downvote", &mut found);
    let unvote = s
        .delete(&format!("/api/v1/posts/{pid}/vote"), Some(&b.key))
        .await;
    doubled(unvote.ok(), "DELETE vote", &mut found);

    // Direct messages, notifications and /home.
    let c = s
        .post(
            "/api/v1/agents/dm/request",
            Some(&a.key),
            json!({"to": "Reader", "message": "Hello Reader, about tides"}),
        )
        .await;
    let cid = c.ok()["conversation_id"].as_str().unwrap().to_owned();
    doubled(&c.body, "dm request", &mut found);
    s.post(
        &format!("/api/v1/agents/dm/requests/{cid}/approve"),
        Some(&b.key),
        json!({}),
    )
    .await
    .ok();
    let sent = s
        .post(
            &format!("/api/v1/agents/dm/conversations/{cid}/send"),
            Some(&b.key),
            json!({"message": "Hi back"}),
        )
        .await;
    doubled(sent.ok(), "dm send", &mut found);
    let mut messages = Vec::new();
    for (path, key) in [
        ("/api/v1/agents/dm/check".to_owned(), a.key.as_str()),
        ("/api/v1/agents/dm/requests".to_owned(), b.key.as_str()),
        ("/api/v1/agents/dm/conversations".to_owned(), a.key.as_str()),
        (
            format!("/api/v1/agents/dm/conversations/{cid}"),
            a.key.as_str(),
        ),
        ("/api/v1/notifications".to_owned(), a.key.as_str()),
        ("/api/v1/home".to_owned(), a.key.as_str()),
    ] {
        let r = s.get(&path, Some(key)).await;
        doubled(r.ok(), &path, &mut found);
        if let Some(list) = r.body["messages"].as_array() {
            messages.extend(list.iter().cloned());
        }
    }
    messages.push(sent.body["sent"].clone());
    for m in &messages {
        let (x, y) = DM_MESSAGE_PAIR;
        assert!(m.get(x).is_some() && m.get(y).is_none(), "{m}");
        assert!(m["sender"]["name"].is_string(), "{m}");
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// What a vote moves: the post's counters and rank, and its author's karma.
async fn post_state(s: &TestServer, pid: &str, author: &str, reader: &Agent) -> Value {
    // Read with the voter's key: an agent always sees its own writes, never a cached page.
    let post = s
        .get(&format!("/api/v1/posts/{pid}"), Some(&reader.key))
        .await;
    let post = post.ok()["post"].clone();
    let profile = s
        .get(
            &format!("/api/v1/agents/profile?name={author}"),
            Some(&reader.key),
        )
        .await;
    json!({
        "score": post["score"],
        "upvotes": post["upvotes"],
        "downvotes": post["downvotes"],
        "hot_score": post["hot_score"],
        "karma": profile.ok()["agent"]["karma"],
    })
}

#[tokio::test]
async fn delete_vote_withdraws_it_as_if_never_cast() {
    let s = TestServer::start().await;
    let author = s.register("Author").await;
    let voter = s.register("Voter").await;
    let p = s.create_post(&author, "general", "vote on me", "x").await;
    let pid = p["id"].as_str().unwrap();
    let before = post_state(&s, pid, "Author", &voter).await;

    for (way, delta) in [("upvote", 1), ("downvote", -1)] {
        s.post(
            &format!("/api/v1/posts/{pid}/{way}"),
            Some(&voter.key),
            json!({}),
        )
        .await
        .ok();
        let voted = post_state(&s, pid, "Author", &voter).await;
        assert_eq!(
            voted["score"].as_i64().unwrap(),
            before["score"].as_i64().unwrap() + delta
        );
        assert_eq!(
            voted["karma"].as_i64().unwrap(),
            before["karma"].as_i64().unwrap() + delta
        );

        let r = s
            .delete(&format!("/api/v1/posts/{pid}/vote"), Some(&voter.key))
            .await;
        let body = r.ok();
        assert_eq!(body["action"], "removed");
        assert_eq!(body["author"]["name"], "Author");
        assert_eq!(post_state(&s, pid, "Author", &voter).await, before, "{way}");

        // Idempotent: nothing left to withdraw is a success that changes nothing.
        let again = s
            .delete(&format!("/api/v1/posts/{pid}/vote"), Some(&voter.key))
            .await;
        assert_eq!(again.ok()["action"], "not_voted");
        assert_eq!(post_state(&s, pid, "Author", &voter).await, before);
    }
    // After a withdrawal, voting starts afresh (no stale toggle).
    let up = s
        .post(
            &format!("/api/v1/posts/{pid}/upvote"),
            Some(&voter.key),
            json!({}),
        )
        .await;
    assert_eq!(up.ok()["action"], "upvoted");

    // Only the caller's own vote goes: another agent's DELETE leaves it.
    let third = s.register("Third").await;
    s.delete(&format!("/api/v1/posts/{pid}/vote"), Some(&third.key))
        .await
        .ok();
    let still = post_state(&s, pid, "Author", &voter).await;
    assert_eq!(
        still["score"].as_i64().unwrap(),
        before["score"].as_i64().unwrap() + 1
    );

    s.delete(
        "/api/v1/posts/00000000-0000-7000-8000-000000000000/vote",
        Some(&voter.key),
    )
    .await
    .err(404);
    s.delete("/api/v1/posts/nope/vote", Some(&voter.key))
        .await
        .err(400);
}

/// What a comment vote moves: the comment's counters and its author's karma.
async fn comment_state(s: &TestServer, cid: &str, reader: &Agent) -> Value {
    let c = s
        .get(&format!("/api/v1/comments/{cid}"), Some(&reader.key))
        .await;
    let c = c.ok()["comment"].clone();
    let profile = s
        .get("/api/v1/agents/profile?name=Author", Some(&reader.key))
        .await;
    json!([
        c["score"],
        c["upvotes"],
        c["downvotes"],
        profile.ok()["agent"]["karma"]
    ])
}

#[tokio::test]
async fn delete_comment_vote_withdraws_it() {
    let s = TestServer::start().await;
    let author = s.register("Author").await;
    let voter = s.register("Voter").await;
    let p = s.create_post(&voter, "general", "thread", "x").await;
    let pid = p["id"].as_str().unwrap();
    let c = s.comment(&author, pid, "a comment", None).await;
    let cid = c["id"].as_str().unwrap();
    let before = comment_state(&s, cid, &voter).await;
    s.post(
        &format!("/api/v1/comments/{cid}/upvote"),
        Some(&voter.key),
        json!({}),
    )
    .await
    .ok();
    assert_ne!(comment_state(&s, cid, &voter).await, before);
    let r = s
        .delete(&format!("/api/v1/comments/{cid}/vote"), Some(&voter.key))
        .await;
    assert_eq!(r.ok()["action"], "removed");
    assert_eq!(comment_state(&s, cid, &voter).await, before);
    let again = s
        .delete(&format!("/api/v1/comments/{cid}/vote"), Some(&voter.key))
        .await;
    assert_eq!(again.ok()["action"], "not_voted");
    assert_eq!(comment_state(&s, cid, &voter).await, before);
}
