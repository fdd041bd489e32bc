use serde_json::json;

use crate::TestServer;

#[tokio::test]
async fn register_returns_the_production_shape_and_the_key_works() {
    let s = TestServer::start_with(|c| c.rate_limits_enabled = false).await;
    let r = s
        .post(
            "/api/v1/agents/register",
            None,
            json!({"name": "Wally-for-Kevin", "description": "hi", "extra": 1}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201);
    let b = &r.body;
    assert_eq!(b["success"], true);
    assert_eq!(b["status"], "pending_claim");
    assert!(
        b["message"].is_string() && b["tweet_template"].is_string() && b["important"].is_string()
    );
    let a = &b["agent"];
    let key = a["api_key"].as_str().unwrap();
    assert!(
        key.starts_with("moltbook_sk_") && key.len() >= 12 + 32,
        "{key}"
    );
    assert!(
        a["claim_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/claim/moltbook_claim_", s.base))
    );
    let code = a["verification_code"].as_str().unwrap();
    assert!(code.contains('-'));
    assert_eq!(a["name"], "Wally-for-Kevin");
    assert_eq!(a["profile_url"], format!("{}/u/Wally-for-Kevin", s.base));
    assert!(a["id"].as_str().unwrap().len() == 36 && a["created_at"].is_string());

    // /agents/me: the agent under `agent` and at the top level (spec 7.2).
    let me = s.get("/api/v1/agents/me", Some(key)).await;
    let me = me.ok();
    for field in [
        "id",
        "name",
        "description",
        "karma",
        "created_at",
        "is_claimed",
    ] {
        assert!(!me[field].is_null(), "top-level {field} missing: {me}");
        assert_eq!(me[field], me["agent"][field]);
    }
    assert_eq!(me["is_claimed"], false);
    assert_eq!(me["agent"]["stats"]["posts"], 0);
    let st = s.get("/api/v1/agents/status", Some(key)).await;
    assert_eq!(st.ok()["status"], "pending_claim");
    assert!(st.body["message"].is_string());
}

#[tokio::test]
async fn names_are_unique_case_insensitively_and_validated() {
    let s = TestServer::start().await;
    s.register("Molty").await;
    let dup = s
        .post("/api/v1/agents/register", None, json!({"name": "molty"}))
        .await;
    dup.err(409);
    for bad in [
        json!({"name": "a"}),
        json!({"name": "has space"}),
        json!({"name": "x".repeat(33)}),
        json!({}),
        json!({"name": 5}),
    ] {
        s.post("/api/v1/agents/register", None, bad).await.err(400);
    }
    let long_desc = s
        .post(
            "/api/v1/agents/register",
            None,
            json!({"name": "okname", "description": "d".repeat(501)}),
        )
        .await;
    long_desc.err(400);
    // Nothing half-registered.
    assert_eq!(s.stats().await["agents"], 1);
}

#[tokio::test]
async fn claim_status_flips_and_unclaimed_agents_can_read_but_not_write() {
    let s = TestServer::start_with(|c| c.rate_limits_enabled = false).await;
    let a = s.register("Pending").await;
    assert_eq!(
        s.get("/api/v1/posts", Some(&a.key)).await.ok()["posts"],
        json!([])
    );
    let refused = s
        .post(
            "/api/v1/posts",
            Some(&a.key),
            json!({"submolt_name": "general", "title": "t", "content": "c"}),
        )
        .await;
    let body = refused.err(403);
    assert_eq!(body["error"], "Agent not yet claimed");
    assert!(body["hint"].as_str().unwrap().contains("claim_url"));
    s.claim("pending").await;
    let st = s.get("/api/v1/agents/status", Some(&a.key)).await;
    assert_eq!(st.ok()["status"], "claimed");
    assert!(st.body["agent"]["claimed_at"].is_string());
    s.create_post(&a, "general", "now I can", "post").await;
}

#[tokio::test]
async fn profile_update_and_public_profile() {
    let s = TestServer::start().await;
    let a = s.register("Profiled").await;
    let b = s.register("Viewer").await;
    let upd = s
        .call(
            reqwest::Method::PATCH,
            "/api/v1/agents/me",
            Some(&a.key),
            Some(json!({"description": "new desc", "metadata": {"model": "x"}})),
        )
        .await;
    assert_eq!(upd.ok()["agent"]["description"], "new desc");
    assert_eq!(upd.body["metadata"]["model"], "x");
    s.call(
        reqwest::Method::PATCH,
        "/api/v1/agents/me",
        Some(&a.key),
        Some(json!({})),
    )
    .await
    .err(400);
    s.call(
        reqwest::Method::PATCH,
        "/api/v1/agents/me",
        Some(&a.key),
        Some(json!({"metadata": [1]})),
    )
    .await
    .err(400);
    s.call(
        reqwest::Method::PATCH,
        "/api/v1/agents/me",
        Some(&a.key),
        Some(json!({"metadata": {"big": "x".repeat(5000)}})),
    )
    .await
    .err(400);

    let post = s.create_post(&a, "general", "profile post", "body").await;
    s.comment(&a, post["id"].as_str().unwrap(), "profile comment", None)
        .await;
    let p = s
        .get("/api/v1/agents/profile?name=PROFILED", Some(&b.key))
        .await;
    let p = p.ok();
    assert_eq!(p["agent"]["name"], "Profiled");
    assert_eq!(p["name"], "Profiled");
    assert_eq!(p["recentPosts"][0]["title"], "profile post");
    assert_eq!(p["recentComments"][0]["content"], "profile comment");
    assert_eq!(p["agent"]["posts_count"], 1);
    assert_eq!(p["is_following"], false);
    s.get("/api/v1/agents/profile?name=nobody", Some(&b.key))
        .await
        .err(404);
    s.get("/api/v1/agents/profile", Some(&b.key)).await.err(400);
}

#[tokio::test]
async fn follow_and_unfollow_move_counters() {
    let s = TestServer::start().await;
    let a = s.register("Follower").await;
    let b = s.register("Followed").await;
    let f = s
        .post("/api/v1/agents/followed/follow", Some(&a.key), json!({}))
        .await;
    assert_eq!(f.ok()["action"], "followed");
    let again = s
        .post("/api/v1/agents/Followed/follow", Some(&a.key), json!({}))
        .await;
    assert_eq!(again.ok()["action"], "already_following");
    let me = s.get("/api/v1/agents/me", Some(&a.key)).await;
    assert_eq!(me.body["following_count"], 1);
    let them = s
        .get("/api/v1/agents/profile?name=Followed", Some(&a.key))
        .await;
    assert_eq!(them.body["follower_count"], 1);
    assert_eq!(them.body["is_following"], true);
    s.post("/api/v1/agents/Follower/follow", Some(&a.key), json!({}))
        .await
        .err(400);
    s.post("/api/v1/agents/ghost/follow", Some(&a.key), json!({}))
        .await
        .err(404);
    let u = s
        .delete("/api/v1/agents/Followed/follow", Some(&a.key))
        .await;
    assert_eq!(u.ok()["action"], "unfollowed");
    assert_eq!(
        s.delete("/api/v1/agents/Followed/follow", Some(&a.key))
            .await
            .ok()["action"],
        "not_following"
    );
    let them = s
        .get("/api/v1/agents/profile?name=Followed", Some(&b.key))
        .await;
    assert_eq!(them.body["follower_count"], 0);
}

#[tokio::test]
async fn rotate_key_kills_the_old_key_at_once_and_read_keys_only_read() {
    let s = TestServer::start().await;
    let a = s.register("Rotator").await;
    let r = s
        .post("/api/v1/agents/me/rotate-key", Some(&a.key), json!({}))
        .await;
    let new_key = r.ok()["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, a.key);
    let old = s.get("/api/v1/agents/me", Some(&a.key)).await;
    assert_eq!(old.err(401)["error"], "Invalid API key");
    s.get("/api/v1/agents/me", Some(&new_key)).await.ok();

    let rk = s
        .post(
            "/api/v1/agents/me/keys",
            Some(&new_key),
            json!({"scope": "read"}),
        )
        .await;
    assert_eq!(rk.status.as_u16(), 201);
    let read_key = rk.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(
        s.get("/api/v1/agents/me", Some(&read_key)).await.ok()["name"],
        "Rotator"
    );
    s.get("/api/v1/posts", Some(&read_key)).await.ok();
    let w = s
        .post(
            "/api/v1/posts",
            Some(&read_key),
            json!({"submolt_name": "general", "title": "t", "content": "c"}),
        )
        .await;
    assert_eq!(w.err(403)["error"], "This API key is read-only");
    s.post("/api/v1/agents/me/rotate-key", Some(&read_key), json!({}))
        .await
        .err(403);
    s.post(
        "/api/v1/agents/me/keys",
        Some(&new_key),
        json!({"scope": "full"}),
    )
    .await
    .err(400);
    // Rotation leaves read-only keys alone.
    s.post("/api/v1/agents/me/rotate-key", Some(&new_key), json!({}))
        .await
        .ok();
    s.get("/api/v1/agents/me", Some(&read_key)).await.ok();
}

#[tokio::test]
async fn x_api_key_header_and_root_routes_work() {
    let s = TestServer::start().await;
    let a = s.register("Rooted").await;
    let r = s
        .client
        .get(format!("{}/agents/me", s.base))
        .header("X-API-Key", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .get(format!("{}/api/v1/agents/me", s.base))
        .header("Authorization", format!("bearer {}", a.key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.get("/api/v1/agents/me", None).await;
    assert_eq!(r.err(401)["error"], "Authentication required");
    let r = s
        .client
        .get(format!("{}/api/v1/agents/me", s.base))
        .header("Authorization", "Token abc def")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A wrong key on an open read is refused, not silently ignored.
    s.get("/api/v1/posts", Some("moltbook_sk_wrong"))
        .await
        .err(401);
}

#[tokio::test]
async fn an_agent_deletes_itself_and_its_owner_sees_it() {
    use crate::security::{claimed_by, owner, server};
    let s = server().await;
    let mut ann = owner(&s, "ann@example.com").await;
    let a = claimed_by(&s, &mut ann, "Leaver").await;
    let post = s
        .create_post(&a, "general", "Parting words", "Goodbye")
        .await;
    let read_key = s
        .post("/api/v1/agents/me/keys", Some(&a.key), json!({}))
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    s.delete("/api/v1/agents/me", Some(&read_key))
        .await
        .err(403);
    s.delete("/api/v1/agents/me", None).await.err(401);
    let r = s.delete("/api/v1/agents/me", Some(&a.key)).await;
    assert!(
        r.ok()["message"]
            .as_str()
            .unwrap()
            .contains("Leaver is deleted")
    );
    // Every key is dead, the name stays taken, the post stays.
    s.get("/api/v1/agents/me", Some(&a.key)).await.err(401);
    s.get("/api/v1/agents/me", Some(&read_key)).await.err(401);
    s.post("/api/v1/agents/register", None, json!({"name": "Leaver"}))
        .await
        .err(409);
    let id = post["id"].as_str().unwrap();
    let r = s.get(&format!("/api/v1/posts/{id}"), None).await;
    assert_eq!(r.ok()["post"]["title"], "Parting words");
    let dash = ann.get("/dashboard").await;
    assert!(dash.body.contains("agent_deleted_itself"), "{}", dash.body);
    assert!(dash.body.contains("status-deleted"), "{}", dash.body);
}
