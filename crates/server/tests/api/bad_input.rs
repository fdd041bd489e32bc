//! Bad input of every kind gets a clear 4xx in the error envelope, never a 500, and
//! writes nothing.

use reqwest::Method;
use serde_json::json;

use crate::TestServer;

async fn raw(
    s: &TestServer,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, serde_json::Value) {
    let mut req = s
        .client
        .request(method, format!("{}{path}", s.base))
        .header("content-type", content_type)
        .body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path} answered non-JSON {status}: {text}"));
    (status, body)
}

#[tokio::test]
async fn malformed_requests_are_clear_4xx() {
    let s = TestServer::start().await;
    let a = s.register("Tester").await;
    let post = s.create_post(&a, "general", "t", "c").await;
    let pid = post["id"].as_str().unwrap().to_owned();
    let before = s.stats().await;

    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("malformed JSON", b"{\"title\": ".to_vec()),
        ("not an object", b"[1,2,3]".to_vec()),
        ("a string", b"\"hello\"".to_vec()),
        ("empty", b"".to_vec()),
        (
            "wrong types",
            br#"{"submolt_name": ["general"], "title": {"a": 1}, "content": 5}"#.to_vec(),
        ),
        (
            "non-UTF-8",
            b"{\"submolt_name\": \"general\", \"title\": \"\xff\xfe\", \"content\": \"c\"}"
                .to_vec(),
        ),
        (
            "null fields",
            br#"{"submolt_name": null, "title": null, "content": null}"#.to_vec(),
        ),
        (
            "deeply nested",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
    ];
    for (path, method) in [
        ("/api/v1/posts", Method::POST),
        ("/api/v1/agents/register", Method::POST),
        ("/api/v1/submolts", Method::POST),
        (
            &format!("/api/v1/posts/{pid}/comments") as &str,
            Method::POST,
        ),
        ("/api/v1/agents/me", Method::PATCH),
    ] {
        for (what, body) in &bodies {
            let (status, json) = raw(
                &s,
                method.clone(),
                path,
                Some(&a.key),
                body.clone(),
                "application/json",
            )
            .await;
            assert!(
                (400..500).contains(&status),
                "{method} {path} with {what}: {status} {json}"
            );
            assert_eq!(json["success"], false);
            assert!(
                json["error"].is_string() && json["hint"].is_string() || json["error"].is_string(),
                "{json}"
            );
        }
    }
    // Oversize body: 413 in the envelope.
    let big =
        json!({"submolt_name": "general", "title": "t", "content": "x".repeat(2 * 1024 * 1024)})
            .to_string()
            .into_bytes();
    let (status, body) = raw(
        &s,
        Method::POST,
        "/api/v1/posts",
        Some(&a.key),
        big,
        "application/json",
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["success"], false);
    // Missing content type is tolerated (the body is still JSON).
    let (status, _) = raw(
        &s,
        Method::POST,
        &format!("/api/v1/posts/{pid}/comments"),
        Some(&a.key),
        br#"{"content":"plain"}"#.to_vec(),
        "text/plain",
    )
    .await;
    assert_eq!(status, 201);
    let after = s.stats().await;
    assert_eq!(before["posts"], after["posts"]);
    assert_eq!(before["agents"], after["agents"]);
    assert_eq!(before["submolts"], after["submolts"]);
}

#[tokio::test]
async fn bad_ids_names_cursors_routes_and_methods() {
    let s = TestServer::start().await;
    let a = s.register("Prober").await;
    for path in [
        "/api/v1/posts/not-a-uuid",
        "/api/v1/posts/123",
        "/api/v1/posts/%FF%FE",
        "/api/v1/posts/not-a-uuid/comments",
        "/api/v1/comments/zzz",
        "/api/v1/submolts/%00bad",
        "/api/v1/submolts/x/feed",
        "/api/v1/agents/profile?name=%FF",
        "/api/v1/posts?cursor=garbage!!",
        "/api/v1/posts?cursor=eyJrIjoiYSJ9",
        "/api/v1/posts?limit=-1",
        "/api/v1/posts?limit=abc",
        "/api/v1/posts?offset=1e9",
        "/api/v1/posts?offset=99999999999",
        "/api/v1/posts?sort=%FF",
        "/api/v1/search?q=%FF%FE",
        "/api/v1/nothing/here",
        "/definitely/not/a/route",
    ] {
        let r = s.get(path, Some(&a.key)).await;
        assert!(
            r.status.is_client_error(),
            "{path}: {} {}",
            r.status,
            r.body
        );
        assert_eq!(r.body["success"], false, "{path}");
    }
    for (method, path) in [
        (Method::PUT, "/api/v1/posts"),
        (Method::DELETE, "/api/v1/agents/register"),
        (Method::POST, "/api/v1/feed"),
        (Method::PATCH, "/api/v1/posts"),
        (Method::PUT, "/api/v1/agents/me"),
    ] {
        let r = s.call(method.clone(), path, Some(&a.key), None).await;
        assert_eq!(r.status.as_u16(), 405, "{method} {path}: {}", r.body);
        r.err(405);
    }
    // A limit over the maximum is clamped, not refused.
    assert_eq!(
        s.get("/api/v1/posts?limit=1000", None)
            .await
            .status
            .as_u16(),
        200
    );
    // Unknown query parameters are ignored.
    assert_eq!(
        s.get("/api/v1/posts?whatever=1", None)
            .await
            .status
            .as_u16(),
        200
    );
    let nf = s.get("/api/v1/nothing", None).await;
    assert_eq!(nf.err(404)["error"], "Endpoint not found");
    assert!(
        nf.body["hint"]
            .as_str()
            .unwrap()
            .contains("GET /api/v1/nothing")
    );
}
