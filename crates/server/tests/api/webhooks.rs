//! Webhooks against a local receiver: deliveries are signed (the signature verifies with
//! the secret shown once), failures are retried from the durable queue up to a bound, and
//! a receiver on a private address is refused unless the operator allows its range.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::security::{act, claimed_by, owner};
use crate::web::Web;
use crate::{Agent, TestServer};

/// What the receiver saw: headers and body of each request.
type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver on 127.0.0.1 that answers 500 to the first `failures` requests, then 200.
async fn receiver(failures: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let mut v = s.lock().unwrap();
                v.push((headers, body.to_vec()));
                if v.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/hook"), seen)
}

async fn server(allow_loopback: bool) -> TestServer {
    TestServer::start_with(|c| {
        c.auto_claim = false;
        c.rate_limits_enabled = false;
        c.webhooks.allow_http = true;
        if allow_loopback {
            c.webhooks.allow_ranges = vec!["127.0.0.0/8".parse().unwrap()];
        }
        c.webhooks.retry_base_ms = 100;
        c.webhooks.poll_ms = 20;
        c.webhooks.max_attempts = 3;
    })
    .await
}

/// Sets the webhook from the dashboard; returns the page (with the secret when it worked).
async fn set_webhook(s: &TestServer, w: &mut Web, agent: &str, url: &str) -> crate::web::Page {
    let csrf = w.csrf("/dashboard").await;
    let origin = s.base.clone();
    w.post(
        &format!("/dashboard/agents/{agent}/webhook"),
        &[("csrf", &csrf), ("url", url)],
        Some(&origin),
    )
    .await
}

fn secret_of(page: &str) -> String {
    let i = page.find("whsec_").expect("a secret on the page");
    page[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

async fn wait_for(seen: &Seen, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} deliveries arrived",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn comment_on(s: &TestServer, author: &Agent, commenter: &Agent) {
    let post = s.create_post(author, "general", "Hook me", "text").await;
    s.comment(
        commenter,
        post["id"].as_str().unwrap(),
        "A comment for the hook",
        None,
    )
    .await;
}

#[tokio::test]
async fn deliveries_are_signed_retried_and_bounded() {
    let s = server(true).await;
    let (url, seen) = receiver(1).await;
    let mut ann = owner(&s, "ann@example.com").await;
    let alice = claimed_by(&s, &mut ann, "Alice").await;
    let bob = claimed_by(&s, &mut ann, "Bob").await;
    let page = set_webhook(&s, &mut ann, "Alice", &url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let secret = secret_of(&page.body);
    // The secret is sealed in the store, never kept in the clear.
    if crate::BACKEND == crate::Backend::Sqlite {
        let db = std::fs::read(s.app.config.data_dir.join("tidepool.db")).unwrap();
        assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }

    comment_on(&s, &alice, &bob).await;
    // The first attempt fails (500), the retry succeeds.
    wait_for(&seen, 2).await;
    let requests = seen.lock().unwrap().clone();
    let ids: Vec<&str> = requests
        .iter()
        .map(|(h, _)| h["x-tidepool-delivery"].to_str().unwrap())
        .collect();
    assert_eq!(ids[0], ids[1], "a retry is the same delivery");
    for (headers, body) in &requests {
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-tidepool-event"], "notification");
        let sig = headers["x-tidepool-signature"].to_str().unwrap();
        let (t, v1) = sig.split_once(",v1=").unwrap();
        let t = t.strip_prefix("t=").unwrap();
        assert!((t.parse::<i64>().unwrap() - tidepool_core::time::now_ms() / 1000).abs() < 60);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&hex::decode(v1).unwrap())
            .expect("the signature verifies");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["type"], "notification");
        assert_eq!(v["notification"]["type"], "comment");
        assert_eq!(v["notification"]["message"], "Bob commented on your post");
        assert_eq!(v["notification"]["from_agent"]["name"], "Bob");
    }
    // A body changed on the way does not verify, with the right secret and time.
    let sig = requests[0].0["x-tidepool-signature"].to_str().unwrap();
    let (t, v1) = sig.split_once(",v1=").unwrap();
    let mut forged = requests[0].1.clone();
    forged.extend_from_slice(b" ");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.", t.strip_prefix("t=").unwrap()).as_bytes());
    mac.update(&forged);
    assert!(mac.verify_slice(&hex::decode(v1).unwrap()).is_err());
    // The owner sees the delivery's fate.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dash = ann.get("/dashboard").await.body;
        if dash.contains("delivered") {
            break;
        }
        assert!(Instant::now() < deadline, "{dash}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A receiver that never answers 2xx: three attempts, then the delivery is given up.
    let (bad, seen_bad) = receiver(usize::MAX).await;
    let page = set_webhook(&s, &mut ann, "Bob", &bad).await;
    assert_eq!(page.status, 200, "{}", page.body);
    comment_on(&s, &bob, &alice).await;
    wait_for(&seen_bad, 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        seen_bad.lock().unwrap().len(),
        3,
        "no attempt after the bound"
    );
    let dash = ann.get("/dashboard").await.body;
    assert!(
        dash.contains("failed") && dash.contains("the receiver answered 500"),
        "{dash}"
    );

    // Removed: no more deliveries.
    assert_eq!(
        act(&mut ann, &s, "/dashboard/agents/Alice/webhook-remove", &[]).await,
        303
    );
    let before = seen.lock().unwrap().len();
    comment_on(&s, &alice, &bob).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.lock().unwrap().len(), before);
}

#[tokio::test]
async fn private_receivers_are_refused_unless_allowed() {
    let s = server(false).await;
    let (url, seen) = receiver(0).await;
    let mut ann = owner(&s, "ann@example.com").await;
    let alice = claimed_by(&s, &mut ann, "Alice").await;
    let bob = claimed_by(&s, &mut ann, "Bob").await;
    let port = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    for refused in [
        url.clone(),
        format!("http://[::1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        "http://[::ffff:127.0.0.1]/hook".to_owned(),
        "http://[2002:7f00:1::]/hook".to_owned(),
        "http://2130706433/hook".to_owned(),
        "http://0x7f.1/hook".to_owned(),
        "ftp://example.com/hook".to_owned(),
        "http://user:pw@example.com/hook".to_owned(),
    ] {
        let page = set_webhook(&s, &mut ann, "Alice", &refused).await;
        assert_eq!(page.status, 400, "{refused}: {}", page.body);
    }
    // A name is checked at connect time, on what it resolves to then.
    let page = set_webhook(
        &s,
        &mut ann,
        "Alice",
        &format!("http://localhost:{port}/hook"),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    comment_on(&s, &alice, &bob).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dash = ann.get("/dashboard").await.body;
        if dash.contains("which webhooks may not reach") {
            break;
        }
        assert!(Instant::now() < deadline, "{dash}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "the private receiver was reached"
    );
    // Without allow_http, only https.
    let strict = TestServer::start_with(|c| {
        c.auto_claim = false;
        c.rate_limits_enabled = false;
    })
    .await;
    let mut ben = owner(&strict, "ben@example.com").await;
    claimed_by(&strict, &mut ben, "Carol").await;
    let page = set_webhook(&strict, &mut ben, "Carol", "http://example.com/hook").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("https://"), "{}", page.body);
}
