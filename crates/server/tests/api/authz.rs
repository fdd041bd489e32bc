//! The authorization matrix of SECURITY.md: every mutating endpoint, called with no key,
//! a revoked key, a read-only key, an unclaimed agent's key and (where the object belongs
//! to someone) another agent's key, is refused and changes nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::TestServer;

async fn snapshot(s: &TestServer, post: &str, comment: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/posts/{post}"),
        format!("/api/v1/comments/{comment}"),
        "/api/v1/submolts/owned".to_owned(),
        "/api/v1/submolts/owned/moderators".to_owned(),
        "/api/v1/agents/profile?name=Owner".to_owned(),
        "/api/v1/posts?sort=new".to_owned(),
        "/api/v1/submolts?sort=new".to_owned(),
        "/api/v1/stats".to_owned(),
    ] {
        out.push(s.get(&path, None).await.body);
    }
    out
}

#[tokio::test]
async fn every_mutation_is_refused_without_the_right_credentials() {
    let s = TestServer::start_with(|c| c.rate_limits_enabled = false).await;
    let owner = s.register("Owner").await;
    let other = s.register("Other").await;
    let rotated = s.register("Rotated").await;
    let unclaimed = s.register("Unclaimed").await;
    for n in ["owner", "other", "rotated"] {
        s.claim(n).await;
    }
    let read_key = s
        .post("/api/v1/agents/me/keys", Some(&other.key), json!({}))
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    s.post(
        "/api/v1/agents/me/rotate-key",
        Some(&rotated.key),
        json!({}),
    )
    .await
    .ok();
    let revoked_key = rotated.key.clone();

    s.post(
        "/api/v1/submolts",
        Some(&owner.key),
        json!({"name": "owned", "display_name": "Owned"}),
    )
    .await;
    let post = s.create_post(&owner, "owned", "owned post", "body").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let comment = s.comment(&owner, &post, "owned comment", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Other's votes are in the snapshot's scores, so withdrawing one with Other's
    // read-only key would show.
    for path in [
        format!("/api/v1/posts/{post}/upvote"),
        format!("/api/v1/comments/{comment}/upvote"),
    ] {
        s.post(&path, Some(&other.key), json!({})).await.ok();
    }

    // (method, path, body, belongs to the owner so another agent is refused too)
    let endpoints: Vec<(Method, String, Value, bool)> = vec![
        (
            Method::POST,
            "/api/v1/posts".into(),
            json!({"submolt_name": "owned", "title": "t", "content": "c"}),
            false,
        ),
        (
            Method::DELETE,
            format!("/api/v1/posts/{post}"),
            json!({}),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/posts/{post}/upvote"),
            json!({}),
            false,
        ),
        (
            Method::POST,
            format!("/api/v1/posts/{post}/downvote"),
            json!({}),
            false,
        ),
        (
            Method::DELETE,
            format!("/api/v1/posts/{post}/vote"),
            json!({}),
            false,
        ),
        (
            Method::POST,
            format!("/api/v1/posts/{post}/pin"),
            json!({}),
            true,
        ),
        (
            Method::DELETE,
            format!("/api/v1/posts/{post}/pin"),
            json!({}),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/posts/{post}/comments"),
            json!({"content": "c"}),
            false,
        ),
        (
            Method::DELETE,
            format!("/api/v1/comments/{comment}"),
            json!({}),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/comments/{comment}/upvote"),
            json!({}),
            false,
        ),
        (
            Method::POST,
            format!("/api/v1/comments/{comment}/downvote"),
            json!({}),
            false,
        ),
        (
            Method::DELETE,
            format!("/api/v1/comments/{comment}/vote"),
            json!({}),
            false,
        ),
        (
            Method::POST,
            "/api/v1/submolts".into(),
            json!({"name": "another", "display_name": "A"}),
            false,
        ),
        (
            Method::POST,
            "/api/v1/submolts/owned/subscribe".into(),
            json!({}),
            false,
        ),
        (
            Method::DELETE,
            "/api/v1/submolts/owned/subscribe".into(),
            json!({}),
            false,
        ),
        (
            Method::PATCH,
            "/api/v1/submolts/owned/settings".into(),
            json!({"description": "x"}),
            true,
        ),
        (
            Method::POST,
            "/api/v1/submolts/owned/moderators".into(),
            json!({"agent_name": "Other"}),
            true,
        ),
        (
            Method::DELETE,
            "/api/v1/submolts/owned/moderators".into(),
            json!({"agent_name": "Owner"}),
            true,
        ),
        (
            Method::POST,
            "/api/v1/agents/Owner/follow".into(),
            json!({}),
            false,
        ),
        (
            Method::DELETE,
            "/api/v1/agents/Owner/follow".into(),
            json!({}),
            false,
        ),
        (
            Method::PATCH,
            "/api/v1/agents/me".into(),
            json!({"description": "x"}),
            false,
        ),
    ];
    let before = snapshot(&s, &post, &comment).await;
    let mut checked = 0;
    for (method, path, body, owned) in &endpoints {
        let mut callers: Vec<(&str, Option<&str>, u16)> = vec![
            ("no key", None, 401),
            ("revoked key", Some(&revoked_key), 401),
            ("read-only key", Some(&read_key), 403),
            ("unclaimed agent", Some(&unclaimed.key), 403),
        ];
        if *owned {
            callers.push(("another agent", Some(&other.key), 403));
        }
        for (who, key, status) in callers {
            let r = s.call(method.clone(), path, key, Some(body.clone())).await;
            assert_eq!(
                r.status.as_u16(),
                status,
                "{method} {path} as {who}: {}",
                r.body
            );
            assert_eq!(r.body["success"], false);
            checked += 1;
        }
    }
    assert_eq!(
        snapshot(&s, &post, &comment).await,
        before,
        "a refused request changed state"
    );
    assert!(checked >= 80, "{checked}");
    // Key rotation and minting need a full key.
    s.post("/api/v1/agents/me/rotate-key", None, json!({}))
        .await
        .err(401);
    s.post(
        "/api/v1/agents/me/rotate-key",
        Some(&revoked_key),
        json!({}),
    )
    .await
    .err(401);
    s.post("/api/v1/agents/me/rotate-key", Some(&read_key), json!({}))
        .await
        .err(403);
    s.post("/api/v1/agents/me/keys", Some(&read_key), json!({}))
        .await
        .err(403);
}

/// The matrix for direct messages and notifications. A conversation belongs to its two
/// agents: anyone else gets "not found" (never a hint that it exists).
#[tokio::test]
async fn dm_and_notification_mutations_are_refused_without_the_right_credentials() {
    let s = TestServer::start_with(|c| c.rate_limits_enabled = false).await;
    let owner = s.register("Owner").await;
    let asker = s.register("Asker").await;
    let friend = s.register("Friend").await;
    let other = s.register("Other").await;
    let rotated = s.register("Rotated").await;
    let unclaimed = s.register("Unclaimed").await;
    for n in ["owner", "asker", "friend", "other", "rotated"] {
        s.claim(n).await;
    }
    let read_key = s
        .post("/api/v1/agents/me/keys", Some(&owner.key), json!({}))
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    s.post(
        "/api/v1/agents/me/rotate-key",
        Some(&rotated.key),
        json!({}),
    )
    .await
    .ok();
    let request = |from: &str, text: &str| json!({"to": from, "message": text});
    let pending = s
        .post(
            "/api/v1/agents/dm/request",
            Some(&asker.key),
            request("Owner", "Hello Owner, from Asker"),
        )
        .await
        .body["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let active = s
        .post(
            "/api/v1/agents/dm/request",
            Some(&friend.key),
            request("Owner", "Hello Owner, from Friend"),
        )
        .await
        .body["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.post(
        &format!("/api/v1/agents/dm/requests/{active}/approve"),
        Some(&owner.key),
        json!({}),
    )
    .await
    .ok();
    let post = s.create_post(&owner, "general", "mine", "body").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.comment(&friend, &post, "a comment", None).await;

    let state = async || {
        let mut out = Vec::new();
        for (key, path) in [
            (&owner.key, "/api/v1/agents/dm/conversations".to_owned()),
            (
                &owner.key,
                format!("/api/v1/agents/dm/conversations/{active}"),
            ),
            (
                &asker.key,
                format!("/api/v1/agents/dm/conversations/{pending}"),
            ),
            (&owner.key, "/api/v1/agents/dm/requests".to_owned()),
            (&owner.key, "/api/v1/notifications".to_owned()),
        ] {
            let mut body = s.get(&path, Some(key)).await.body;
            body.as_object_mut().unwrap().remove("spotlight");
            out.push(body);
        }
        out
    };
    // Reading marks read: read once, so the snapshots compare steady states.
    let _ = state().await;
    let before = state().await;

    // (method, path, body, status for an agent that is not in the conversation)
    let endpoints: Vec<(Method, String, Value, Option<u16>)> = vec![
        (
            Method::POST,
            "/api/v1/agents/dm/request".into(),
            request("Friend", "Hello Friend, again"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/agents/dm/requests/{pending}/approve"),
            json!({}),
            Some(404),
        ),
        (
            Method::POST,
            format!("/api/v1/agents/dm/requests/{pending}/reject"),
            json!({"block": true}),
            Some(404),
        ),
        (
            Method::POST,
            format!("/api/v1/agents/dm/conversations/{active}/send"),
            json!({"message": "hi"}),
            Some(404),
        ),
    ];
    let mut checked = 0;
    for (method, path, body, stranger) in &endpoints {
        let mut callers: Vec<(&str, Option<&str>, u16)> = vec![
            ("no key", None, 401),
            ("revoked key", Some(&rotated.key), 401),
            ("read-only key", Some(&read_key), 403),
            ("unclaimed agent", Some(&unclaimed.key), 403),
        ];
        if let Some(status) = stranger {
            callers.push(("another agent", Some(&other.key), *status));
        }
        for (who, key, status) in callers {
            let r = s.call(method.clone(), path, key, Some(body.clone())).await;
            assert_eq!(
                r.status.as_u16(),
                status,
                "{method} {path} as {who}: {}",
                r.body
            );
            assert_eq!(r.body["success"], false);
            checked += 1;
        }
    }
    // The asker may not decide its own request.
    s.post(
        &format!("/api/v1/agents/dm/requests/{pending}/approve"),
        Some(&asker.key),
        json!({}),
    )
    .await
    .err(403);
    // Notifications: a key is needed, and another agent's marks touch only its own.
    for path in [
        "/api/v1/notifications/read-all".to_owned(),
        format!("/api/v1/notifications/read-by-post/{post}"),
    ] {
        for key in [None, Some(rotated.key.as_str())] {
            s.post(&path, key, json!({})).await.err(401);
            checked += 1;
        }
        s.post(&path, Some(&other.key), json!({})).await.ok();
    }
    assert_eq!(checked, 23);
    assert_eq!(state().await, before, "a refused request changed state");
}

/// The matrix for the other routes of the wire contract: reports, avatars, identity
/// tokens and self-deletion. Unclaimed agents may delete themselves and ask for identity
/// tokens (they are who they say); everything else needs a claimed agent's full key.
#[tokio::test]
async fn report_avatar_identity_and_self_deletion_are_refused_without_the_right_credentials() {
    let s = TestServer::start_with(|c| c.rate_limits_enabled = false).await;
    let owner = s.register("Owner").await;
    let rotated = s.register("Rotated").await;
    let unclaimed = s.register("Unclaimed").await;
    for n in ["owner", "rotated"] {
        s.claim(n).await;
    }
    let read_key = s
        .post("/api/v1/agents/me/keys", Some(&owner.key), json!({}))
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    s.post(
        "/api/v1/agents/me/rotate-key",
        Some(&rotated.key),
        json!({}),
    )
    .await
    .ok();
    let post = s.create_post(&owner, "general", "reportable", "body").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // (method, path, body, whether an unclaimed agent is refused too)
    let endpoints: Vec<(Method, String, Value, bool)> = vec![
        (
            Method::POST,
            format!("/api/v1/posts/{post}/report"),
            json!({"reason": "spam"}),
            true,
        ),
        (
            Method::POST,
            "/api/v1/agents/me/avatar".into(),
            json!({}),
            true,
        ),
        (
            Method::DELETE,
            "/api/v1/agents/me/avatar".into(),
            json!({}),
            true,
        ),
        (
            Method::POST,
            "/api/v1/agents/me/identity-token".into(),
            json!({"audience": "app"}),
            false,
        ),
        (Method::DELETE, "/api/v1/agents/me".into(), json!({}), false),
    ];
    let mut checked = 0;
    for (method, path, body, unclaimed_refused) in &endpoints {
        let mut callers: Vec<(&str, Option<&str>, u16)> = vec![
            ("no key", None, 401),
            ("revoked key", Some(&rotated.key), 401),
            ("read-only key", Some(&read_key), 403),
        ];
        if *unclaimed_refused {
            callers.push(("unclaimed agent", Some(&unclaimed.key), 403));
        }
        for (who, key, status) in callers {
            let r = s.call(method.clone(), path, key, Some(body.clone())).await;
            // A JSON body where a multipart one is expected is a 400 for whoever may
            // upload: every refusal above must come first.
            assert_eq!(
                r.status.as_u16(),
                status,
                "{method} {path} as {who}: {}",
                r.body
            );
            assert_eq!(r.body["success"], false);
            checked += 1;
        }
    }
    assert_eq!(checked, 18);
    // Nothing changed: the owner still works and has no avatar, the post has no report.
    let me = s.get("/api/v1/agents/me", Some(&owner.key)).await;
    assert_eq!(me.ok()["agent"]["avatar_url"], Value::Null);
    let r = s
        .post(
            &format!("/api/v1/posts/{post}/report"),
            Some(&owner.key),
            json!({"reason": "first"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The unclaimed agent may ask for an identity token and delete itself.
    let r = s
        .post(
            "/api/v1/agents/me/identity-token",
            Some(&unclaimed.key),
            json!({"audience": "app"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    s.delete("/api/v1/agents/me", Some(&unclaimed.key))
        .await
        .ok();
}
