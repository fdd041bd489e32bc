//! `GET /metrics`: Prometheus text that moves by exactly what the server did, labelled by
//! route template (never by concrete path), and served only to whom it should be.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{BACKEND, Backend, TestServer};

/// One sample line of the text format: `name{label="value",...} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus's text format (version 0.0.4): comment lines are skipped, label
/// values are unescaped (`\\`, `\"`, `\n`). Panics on anything else, so a malformed
/// scrape fails the test.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = line[..name_end].to_owned();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut key = String::new();
            let end;
            loop {
                let (i, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("open labels: {line}"));
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            match chars
                                .next()
                                .unwrap_or_else(|| panic!("open value: {line}"))
                                .1
                            {
                                '"' => break,
                                '\\' => match chars.next().unwrap().1 {
                                    'n' => value.push('\n'),
                                    other => value.push(other),
                                },
                                other => value.push(other),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    other => key.push(other),
                }
            }
            rest = &body[end..];
        }
        let value = rest.trim();
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value {v:?} in {line}")),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

struct Scrape(Vec<Sample>);

impl Scrape {
    /// The value of the one sample named `name` whose labels include `want` (0 when there
    /// is none: a counter not yet created).
    fn get(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .0
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                want.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {want:?} matches {found:?}");
        found.first().map_or(0.0, |s| s.value)
    }

    /// Every value the label `label` takes on samples of `name`.
    fn values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.0
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }
}

async fn scrape_raw(
    s: &TestServer,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = s.client.get(format!("{}/metrics", s.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let h = r.headers().clone();
    (status, h, r.text().await.unwrap())
}

async fn scrape(s: &TestServer) -> Scrape {
    let (status, headers, body) = scrape_raw(s, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        headers[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    Scrape(parse(&body))
}

/// An error answer in the JSON envelope with this status.
fn envelope(status: StatusCode, body: &str, want: StatusCode) -> Value {
    assert_eq!(status, want, "{body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["statusCode"], want.as_u16(), "{v}");
    assert!(v["error"].is_string() && v["hint"].is_string(), "{v}");
    v
}

const REQUESTS: &str = "tidepool_http_requests_total";
const LATENCY_COUNT: &str = "tidepool_http_request_duration_seconds_count";
const LATENCY_BUCKET: &str = "tidepool_http_request_duration_seconds_bucket";
const LATENCY_SUM: &str = "tidepool_http_request_duration_seconds_sum";
const ERRORS: &str = "tidepool_http_errors_total";
const POST_ROUTE: &str = "/api/v1/posts/{id}";

#[tokio::test]
async fn requests_latency_and_errors_are_counted_per_route_template() {
    let s = TestServer::start().await;
    let a = s.register("Counted").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let p = s
            .create_post(&a, "general", &format!("post {i}"), "words")
            .await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let before = scrape(&s).await;
    for id in &ids {
        s.get(&format!("/api/v1/posts/{id}"), None).await.ok();
    }
    // The same template without the prefix, and a missing post under the prefix.
    s.get(&format!("/posts/{}", ids[0]), None).await.ok();
    let missing = "00000000-0000-7000-8000-000000000000";
    s.get(&format!("/api/v1/posts/{missing}"), None)
        .await
        .err(404);
    let after = scrape(&s).await;

    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let get_post = [("method", "GET"), ("route", POST_ROUTE)];
    assert_eq!(
        delta(REQUESTS, &[get_post[0], get_post[1], ("status", "2xx")]),
        3.0
    );
    assert_eq!(
        delta(REQUESTS, &[get_post[0], get_post[1], ("status", "4xx")]),
        1.0
    );
    assert_eq!(
        delta(
            REQUESTS,
            &[
                ("method", "GET"),
                ("route", "/posts/{id}"),
                ("status", "2xx")
            ]
        ),
        1.0
    );
    assert_eq!(delta(LATENCY_COUNT, &get_post), 4.0);
    let inf = [get_post[0], get_post[1], ("le", "+Inf")];
    assert_eq!(delta(LATENCY_BUCKET, &inf), 4.0);
    assert!(delta(LATENCY_SUM, &get_post) > 0.0);
    // Buckets are cumulative and end at the count.
    let buckets: Vec<f64> = after
        .0
        .iter()
        .filter(|x| {
            x.name == LATENCY_BUCKET
                && x.labels["route"] == POST_ROUTE
                && x.labels["method"] == "GET"
        })
        .map(|x| x.value)
        .collect();
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(
        *buckets.last().unwrap(),
        after.get(LATENCY_COUNT, &get_post)
    );
    assert_eq!(
        delta(
            ERRORS,
            &[
                ("route", POST_ROUTE),
                ("status", "404"),
                ("code", "NOT_FOUND")
            ]
        ),
        1.0
    );
    // Three posts written since start-up, each one request.
    assert_eq!(
        after.get(
            REQUESTS,
            &[
                ("method", "POST"),
                ("route", "/api/v1/posts"),
                ("status", "2xx")
            ]
        ),
        3.0
    );
    // No concrete path anywhere, and the node and version are stated.
    let routes = after.values(REQUESTS, "route");
    for id in ids.iter().chain([&missing.to_owned()]) {
        assert!(
            !routes.iter().any(|r| r.contains(id.as_str())),
            "{routes:?}"
        );
    }
    let node = s.app.config.node_id.clone();
    assert!(after.0.iter().all(|x| x.labels.get("node") == Some(&node)));
    assert_eq!(
        after.get(
            "tidepool_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

#[tokio::test]
async fn unknown_paths_share_one_label() {
    let s = TestServer::start().await;
    // The scrape route and the unmatched label exist from here on (a scrape is counted
    // once it has answered, so in the next one).
    s.get("/no/such/thing", None).await.err(404);
    scrape(&s).await;
    let before = scrape(&s).await;
    let routes_before = before.values(REQUESTS, "route");
    for i in 0..5 {
        s.get(&format!("/no/such/{i}-{}", "x".repeat(i)), None)
            .await
            .err(404);
    }
    s.call(
        reqwest::Method::DELETE,
        "/api/v1/definitely/not/here",
        None,
        None,
    )
    .await
    .err(404);
    let after = scrape(&s).await;
    assert_eq!(after.values(REQUESTS, "route"), routes_before);
    assert_eq!(
        after.values(ERRORS, "route"),
        before.values(ERRORS, "route")
    );
    let unmatched = |sc: &Scrape, m: &str| {
        sc.get(
            REQUESTS,
            &[("method", m), ("route", "<unmatched>"), ("status", "4xx")],
        )
    };
    assert_eq!(unmatched(&after, "GET") - unmatched(&before, "GET"), 5.0);
    assert_eq!(unmatched(&after, "DELETE"), 1.0);
}

#[tokio::test]
async fn guard_verdicts_count_a_blocked_post() {
    let s = TestServer::start().await;
    let a = s.register("Guarded").await;
    let verdict = |sc: &Scrape, v: &str| sc.get("tidepool_guard_verdicts_total", &[("verdict", v)]);
    let finding = |sc: &Scrape, k: &str| sc.get("tidepool_guard_findings_total", &[("kind", k)]);
    let before = scrape(&s).await;
    let token = "ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5";
    s.post(
        "/api/v1/posts",
        Some(&a.key),
        json!({"submolt_name": "general", "title": "my setup", "content": format!("config: {token}")}),
    )
    .await
    .err(422);
    let mid = scrape(&s).await;
    assert_eq!(verdict(&mid, "block") - verdict(&before, "block"), 1.0);
    assert_eq!(verdict(&mid, "allow"), verdict(&before, "allow"));
    assert!(finding(&mid, "secret") - finding(&before, "secret") >= 1.0);
    s.create_post(
        &a,
        "general",
        "Tide tables",
        "Spring tides come twice a month.",
    )
    .await;
    let after = scrape(&s).await;
    assert_eq!(verdict(&after, "allow") - verdict(&mid, "allow"), 1.0);
    assert_eq!(verdict(&after, "block"), verdict(&mid, "block"));
    assert_eq!(
        after.values("tidepool_guard_verdicts_total", "verdict"),
        ["allow", "block", "label", "quarantine"]
            .map(String::from)
            .into()
    );
    // The refusal is an error of its route, with the envelope's code.
    assert_eq!(
        after.get(
            ERRORS,
            &[
                ("route", "/api/v1/posts"),
                ("status", "422"),
                ("code", "VALIDATION_ERROR")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn the_store_reports_its_writer_and_pools() {
    let s = TestServer::start().await;
    let before = scrape(&s).await;
    s.register("Writer").await;
    let after = scrape(&s).await;
    match BACKEND {
        Backend::Sqlite => {
            // A registration is at least one write job, committed in some group.
            let jobs = |sc: &Scrape| sc.get("tidepool_writer_jobs_total", &[]);
            let batches = |sc: &Scrape| sc.get("tidepool_writer_batches_total", &[]);
            assert!(jobs(&after) > jobs(&before), "{:?}", after.0);
            assert!(batches(&after) > batches(&before));
            assert!(batches(&after) <= jobs(&after));
            assert_eq!(after.get("tidepool_writer_queue_depth", &[]), 0.0);
            let read = [("pool", "read")];
            assert_eq!(after.get("tidepool_db_pool_max_connections", &read), 8.0);
            assert!(after.get("tidepool_db_pool_idle_connections", &read) <= 8.0);
            assert_eq!(after.get("tidepool_db_pool_waiting", &read), 0.0);
        }
        Backend::Postgres | Backend::PgBouncer => {
            let primary = [("pool", "primary")];
            let max = after.get("tidepool_db_pool_max_connections", &primary);
            assert!(max >= 1.0, "{:?}", after.0);
            let open = after.get("tidepool_db_pool_open_connections", &primary);
            assert!(open >= 1.0 && open <= max, "{open} of {max}");
            assert!(after.get("tidepool_db_pool_idle_connections", &primary) <= open);
            assert!(
                after
                    .values("tidepool_writer_jobs_total", "node")
                    .is_empty()
            );
        }
    }
    // No replicas configured: no replica series. One node: nothing decided alone.
    assert!(
        after
            .values("tidepool_db_replica_lag_seconds", "replica")
            .is_empty()
    );
    assert_eq!(after.get("tidepool_ratelimit_fallbacks_total", &[]), 0.0);
    assert_eq!(
        after.get("tidepool_ratelimit_degraded_refusals_total", &[]),
        0.0
    );
}

#[tokio::test]
async fn without_a_token_only_this_machine_may_scrape() {
    // 127.0.0.1 is a trusted proxy here, so a forwarded client is believed.
    let s = TestServer::start_with(|c| {
        c.auto_claim = true;
        c.rate_limits_enabled = false;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    scrape(&s).await;
    for headers in [
        // A remote client through the trusted proxy.
        vec![("x-forwarded-for", "203.0.113.7")],
        vec![("forwarded", "for=203.0.113.7")],
        // Even a proxy that says its client was local relays for someone: refused.
        vec![("x-forwarded-for", "127.0.0.1")],
        vec![("x-real-ip", "127.0.0.1")],
    ] {
        let (status, _, body) = scrape_raw(&s, &headers).await;
        let v = envelope(status, &body, StatusCode::FORBIDDEN);
        assert_eq!(v["error"], "Metrics are served only to this machine");
        assert!(
            v["hint"].as_str().unwrap().contains("[metrics] token"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn forwarded_requests_are_refused_from_an_untrusted_peer_too() {
    // No trusted proxies: the header is not believed for the client address, but it still
    // shows a proxy in front, relaying someone who may be anywhere.
    let s = TestServer::start().await;
    let (status, _, body) = scrape_raw(&s, &[("x-forwarded-for", "203.0.113.7")]).await;
    envelope(status, &body, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_token_is_required_once_configured() {
    let token = "scrape-me-7f3a9c1e5b";
    let s = TestServer::start_with(|c| {
        c.auto_claim = true;
        c.rate_limits_enabled = false;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.metrics.token = Some(token.to_owned());
    })
    .await;
    let (status, headers, body) = scrape_raw(&s, &[]).await;
    let v = envelope(status, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "Metrics need a token");
    assert!(
        headers[reqwest::header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    for wrong in [
        "Bearer scrape-me-7f3a9c1e5c".to_owned(),
        format!("Bearer {token}x"),
        format!("Basic {token}"),
        "Bearer".to_owned(),
    ] {
        let (status, _, body) = scrape_raw(&s, &[("authorization", &wrong)]).await;
        envelope(status, &body, StatusCode::UNAUTHORIZED);
    }
    // The token opens it from anywhere, through a proxy too.
    let bearer = format!("Bearer {token}");
    let (status, _, body) = scrape_raw(
        &s,
        &[
            ("authorization", &bearer),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sc = Scrape(parse(&body));
    assert!(sc.get(REQUESTS, &[("route", "/metrics"), ("status", "4xx")]) >= 5.0);
    // The token itself never appears.
    assert!(!body.contains(token));
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let s = TestServer::start_with(|c| {
        c.auto_claim = true;
        c.rate_limits_enabled = false;
        c.metrics.enabled = false;
    })
    .await;
    let (status, _, body) = scrape_raw(&s, &[]).await;
    let v = envelope(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "Metrics are disabled");
}
