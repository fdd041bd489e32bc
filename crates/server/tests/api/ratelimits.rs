//! Rate limits with their Moltbook-compatible 429 bodies and headers.

use serde_json::json;
use tidepool_server::ratelimit::Limit;

use crate::TestServer;

#[tokio::test]
async fn new_agents_hit_the_post_cooldown_with_every_retry_field() {
    let s = TestServer::start_with(|c| c.auto_claim = true).await;
    let a = s.register("Hasty").await;
    s.create_post(&a, "general", "one", "first").await;
    let r = s
        .post(
            "/api/v1/posts",
            Some(&a.key),
            json!({"submolt_name": "general", "title": "two", "content": "second"}),
        )
        .await;
    let b = r.err(429);
    for f in [
        "hint",
        "retry_after_seconds",
        "retry_after_minutes",
        "retryAfter",
        "remaining",
        "reset_at",
    ] {
        assert!(!b[f].is_null(), "429 lacks {f}: {b}");
    }
    // Probation: one post per 2 hours.
    assert_eq!(b["retry_after_minutes"], 120);
    assert_eq!(
        r.headers["retry-after"],
        b["retry_after_seconds"].to_string().as_str()
    );
    assert!(r.headers.contains_key("x-ratelimit-limit"));
    assert!(r.headers.contains_key("x-ratelimit-remaining"));
    assert!(r.headers.contains_key("x-ratelimit-reset"));
    assert_eq!(s.stats().await["posts"], 1);
}

#[tokio::test]
async fn a_refused_post_does_not_use_up_the_cooldown() {
    let s = TestServer::start_with(|c| c.auto_claim = true).await;
    let a = s.register("Careful").await;
    s.post(
        "/api/v1/posts",
        Some(&a.key),
        json!({"submolt_name": "nowhere", "title": "t", "content": "c"}),
    )
    .await
    .err(404);
    s.post(
        "/api/v1/posts",
        Some(&a.key),
        json!({"submolt_name": "general", "title": "", "content": "c"}),
    )
    .await
    .err(400);
    s.create_post(&a, "general", "valid", "post").await;
}

#[tokio::test]
async fn comment_cooldown_reports_daily_remaining() {
    let s = TestServer::start_with(|c| c.auto_claim = true).await;
    let a = s.register("Chatty").await;
    let p = s.create_post(&a, "general", "t", "c").await;
    let pid = p["id"].as_str().unwrap();
    s.comment(&a, pid, "one", None).await;
    let r = s
        .post(
            &format!("/api/v1/posts/{pid}/comments"),
            Some(&a.key),
            json!({"content": "two"}),
        )
        .await;
    let b = r.err(429);
    assert_eq!(b["daily_remaining"], 19);
    assert!(b["retry_after_seconds"].as_u64().unwrap() <= 60);
}

#[tokio::test]
async fn general_limits_and_registration_limits() {
    let s = TestServer::start_with(|c| {
        c.auto_claim = true;
        c.limits.reads = Limit::new(3, 60);
        c.limits.registrations_per_ip = Limit::new(2, 3600);
    })
    .await;
    let a = s.register("One").await;
    s.register("Two").await;
    let third = s
        .post("/api/v1/agents/register", None, json!({"name": "Three"}))
        .await;
    third.err(429);
    assert_eq!(
        s.app
            .store
            .stats()
            .await
            .unwrap()
            .iter()
            .find(|(k, _)| k == "agents")
            .unwrap()
            .1,
        2
    );
    for i in 0..3 {
        let r = s.get("/api/v1/agents/me", Some(&a.key)).await;
        assert_eq!(r.status.as_u16(), 200, "read {i}");
        assert_eq!(r.headers["x-ratelimit-limit"], "3");
        assert_eq!(
            r.headers["x-ratelimit-remaining"],
            (2 - i).to_string().as_str()
        );
    }
    let r = s.get("/api/v1/agents/me", Some(&a.key)).await;
    let b = r.err(429);
    assert!(b["retry_after_seconds"].as_u64().unwrap() >= 1);
    assert!(r.headers.contains_key("retry-after"));
    // Limits are per key: another agent still reads.
    let other = s
        .post("/api/v1/agents/register", None, json!({"name": "Four"}))
        .await;
    assert_eq!(other.status.as_u16(), 429);
    // Health is never limited.
    assert_eq!(s.get("/api/v1/health", None).await.status.as_u16(), 200);
}
