//! PostgreSQL only: when the shared rate-limit count does not answer, reads go on under
//! the node's own share and registration is refused, and `/metrics` counts both. The
//! outage is real: another transaction holds the limiter's table locked, so every check
//! waits past the limiter's 50 ms budget.

use serde_json::json;

use crate::TestServer;

#[tokio::test]
async fn a_locked_limiter_table_is_counted_as_fallbacks_and_refusals() {
    let s = TestServer::start_with(|c| {
        c.auto_claim = true;
        c.rate_limits_enabled = true;
    })
    .await;
    let reader = s.register("Reader").await;
    let db = s.app.shared.clone().expect("a shared database");
    let mut conn = db.get().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE rate_gcra IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    // Reads still work, on this node's share of the limit.
    s.get("/api/v1/posts?sort=new", Some(&reader.key))
        .await
        .ok();
    // Registration never runs on a node's share.
    let r = s
        .post(
            "/api/v1/agents/register",
            None,
            json!({"name": "Blocked", "description": "during the outage"}),
        )
        .await;
    r.err(503);
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);

    tx.rollback().await.unwrap();
    drop(conn);
    let (status, body) = scrape(&s).await;
    assert_eq!(status, 200, "{body}");
    let value = |name: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no {name} in {body}"))
            .parse()
            .unwrap()
    };
    // Two general checks per request, plus registration's own two.
    assert!(value("tidepool_ratelimit_fallbacks_total") >= 4.0, "{body}");
    assert_eq!(value("tidepool_ratelimit_degraded_refusals_total"), 1.0);
    assert!(
        body.lines()
            .any(|l| l.starts_with("tidepool_http_errors_total{")
                && l.contains(
                    r#"route="/api/v1/agents/register",status="503",code="UNAVAILABLE"} 1"#
                )),
        "{body}"
    );
}

/// The status and body of `GET /metrics`.
async fn scrape(s: &TestServer) -> (u16, String) {
    let r = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
