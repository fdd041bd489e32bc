//! Behind a reverse proxy: forwarding headers are believed from trusted proxies only, the
//! client they name is who rate limits count, and the Origin check accepts the public URL
//! (the proxy may rewrite `Host`) and insists on the scheme.

use std::collections::BTreeMap;

use serde_json::json;

use crate::TestServer;

/// A browser as a proxy forwards it: every request carries the same extra headers (the
/// ones the proxy adds), cookies are kept, redirects are not followed.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
    extra: Vec<(&'static str, String)>,
}

impl Browser {
    fn new(base: &str, extra: &[(&'static str, &str)]) -> Self {
        Browser {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            extra: extra.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("cookie", cookie);
        for (k, v) in &self.extra {
            req = req.header(*k, v);
        }
        req
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> (u16, String) {
        let r = req.send().await.unwrap();
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let kv = c.split(';').next().unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.insert(k.to_owned(), v.to_owned());
        }
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// Signs up through `/signup` with the given Origin; the status of the POST.
    async fn sign_up(&mut self, email: &str, origin: &str) -> (u16, String) {
        let (status, page) = self
            .send(self.request(reqwest::Method::GET, "/signup"))
            .await;
        assert_eq!(status, 200, "{page}");
        let i = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
        let csrf = page[i..i + 32].to_owned();
        let req = self
            .request(reqwest::Method::POST, "/signup")
            .header("origin", origin)
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", email),
                ("password", "password-long-enough"),
            ]);
        self.send(req).await
    }
}

async fn register(s: &TestServer, name: &str, forwarded_for: &str) -> u16 {
    s.client
        .post(format!("{}/api/v1/agents/register", s.base))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"name": name, "description": "behind a proxy"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn forms_work_behind_a_proxy_that_rewrites_host() {
    let s = TestServer::start_with(|c| {
        c.public_url = "https://social.example".into();
        c.trusted_proxies = vec![tidepool_server::client::parse_trusted("127.0.0.1").unwrap()];
    })
    .await;
    // What nginx sends by default: Host is the upstream's name, the client's address and
    // scheme in X-Forwarded-*.
    let proxied: &[(&str, &str)] = &[
        ("host", "tidepool-upstream:8080"),
        ("x-forwarded-for", "203.0.113.5"),
        ("x-forwarded-proto", "https"),
    ];
    let mut b = Browser::new(&s.base, proxied);
    let (status, page) = b
        .sign_up("proxied@example.com", "https://social.example")
        .await;
    assert_eq!(status, 303, "{page}");
    // Another site, or the right host with the wrong scheme, is still refused.
    let mut b = Browser::new(&s.base, proxied);
    let (status, page) = b.sign_up("evil@example.com", "https://evil.example").await;
    assert_eq!(status, 403);
    assert!(page.contains("Cross-site request refused"));
    let mut b = Browser::new(&s.base, proxied);
    let (status, _) = b
        .sign_up("downgrade@example.com", "http://social.example")
        .await;
    assert_eq!(status, 403);
    s.stop().await;
}

#[tokio::test]
async fn a_proxy_that_keeps_host_is_matched_with_the_scheme_it_reports() {
    let s = TestServer::start_with(|c| {
        c.public_url = "https://elsewhere.example".into();
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    // Caddy's default: Host passed through, X-Forwarded-Proto set.
    let https: &[(&str, &str)] = &[
        ("host", "social.example"),
        ("x-forwarded-for", "203.0.113.6"),
        ("x-forwarded-proto", "https"),
    ];
    let mut b = Browser::new(&s.base, https);
    let (status, page) = b
        .sign_up("kept@example.com", "https://social.example")
        .await;
    assert_eq!(status, 303, "{page}");
    // The same Origin over plain http is another origin.
    let plain: &[(&str, &str)] = &[
        ("host", "social.example"),
        ("x-forwarded-for", "203.0.113.6"),
        ("x-forwarded-proto", "http"),
    ];
    let mut b = Browser::new(&s.base, plain);
    let (status, _) = b
        .sign_up("plain@example.com", "https://social.example")
        .await;
    assert_eq!(status, 403);
    s.stop().await;
}

#[tokio::test]
async fn an_origin_with_the_wrong_scheme_is_refused() {
    let s = TestServer::start().await;
    let host = s.base.strip_prefix("http://").unwrap().to_owned();
    for origin in [format!("https://{host}"), "null".to_owned()] {
        let mut b = Browser::new(&s.base, &[]);
        let (status, page) = b.sign_up("scheme@example.com", &origin).await;
        assert_eq!(status, 403, "{origin}: {page}");
        assert!(page.contains("Cross-site request refused"), "{origin}");
    }
    // An untrusted client cannot vouch for https itself.
    let mut b = Browser::new(&s.base, &[("x-forwarded-proto", "https")]);
    let (status, _) = b
        .sign_up("scheme@example.com", &format!("https://{host}"))
        .await;
    assert_eq!(status, 403);
    // The right scheme passes.
    let mut b = Browser::new(&s.base, &[]);
    let (status, page) = b.sign_up("scheme@example.com", &s.base).await;
    assert_eq!(status, 303, "{page}");
    s.stop().await;
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_have_limits_of_their_own() {
    let s = TestServer::start_with(|c| {
        c.auto_claim = true;
        c.trusted_proxies = vec![tidepool_server::client::parse_trusted("127.0.0.1").unwrap()];
        c.limits.registrations_per_ip = tidepool_server::ratelimit::Limit::new(1, 3600);
    })
    .await;
    assert_eq!(register(&s, "ProxiedOne", "198.51.100.1").await, 201);
    assert_eq!(register(&s, "ProxiedTwo", "198.51.100.1").await, 429);
    // A second client through the same proxy is not held back by the first...
    assert_eq!(register(&s, "ProxiedThree", "198.51.100.2").await, 201);
    // ...and a client cannot become someone new by prepending an address: the proxy
    // appends the address it saw, and that is the one counted.
    assert_eq!(
        register(&s, "ProxiedFour", "192.0.2.99, 198.51.100.1").await,
        429
    );

    // Sign-ups (5 an hour per address): the same.
    let origin = "http://tidepool.internal";
    let first: &[(&str, &str)] = &[
        ("host", "tidepool.internal"),
        ("x-forwarded-for", "198.51.100.1"),
    ];
    for i in 0..5 {
        let mut b = Browser::new(&s.base, first);
        let (status, page) = b.sign_up(&format!("first{i}@example.com"), origin).await;
        assert_eq!(status, 303, "{page}");
    }
    let mut b = Browser::new(&s.base, first);
    let (status, _) = b.sign_up("first5@example.com", origin).await;
    assert_eq!(status, 429);
    let second: &[(&str, &str)] = &[
        ("host", "tidepool.internal"),
        ("x-forwarded-for", "198.51.100.2"),
    ];
    let mut b = Browser::new(&s.base, second);
    let (status, page) = b.sign_up("second@example.com", origin).await;
    assert_eq!(status, 303, "{page}");
    s.stop().await;
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let s = TestServer::start_with(|c| {
        c.auto_claim = true;
        c.limits.registrations_per_ip = tidepool_server::ratelimit::Limit::new(1, 3600);
    })
    .await;
    assert_eq!(register(&s, "SpoofOne", "198.51.100.1").await, 201);
    // Claiming to be someone else changes nothing.
    assert_eq!(register(&s, "SpoofTwo", "198.51.100.2").await, 429);
    let r = s
        .client
        .post(format!("{}/api/v1/agents/register", s.base))
        .header("forwarded", "for=198.51.100.3")
        .json(&json!({"name": "SpoofThree"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    s.stop().await;
}
