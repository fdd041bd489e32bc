//! What every black-box API test uses: a real server on a random port with its own data
//! directory (and, on PostgreSQL, its own database), and a small HTTP client.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tidepool_server::Config;

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub app: tidepool_server::state::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    /// Dropped (and with it the database) after the server stops.
    _database: Option<tidepool_store_pg::testing::TestDb>,
}

/// The store behind the servers of one test binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// PostgreSQL through pgbouncer in transaction mode, `statements = "unnamed"`.
    PgBouncer,
}

/// A registered agent and its key.
#[derive(Clone, Debug)]
pub struct Agent {
    pub name: String,
    pub key: String,
    pub id: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(
            self.status.is_success(),
            "expected success, got {}: {}",
            self.status,
            self.body
        );
        assert_eq!(self.body["success"], true, "{}", self.body);
        &self.body
    }

    /// Asserts the error envelope (spec 1.4 superset) with the given status.
    #[track_caller]
    pub fn err(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["success"], false, "{}", self.body);
        assert!(self.body["error"].is_string(), "{}", self.body);
        assert_eq!(self.body["error"], self.body["message"]);
        assert_eq!(self.body["statusCode"], status);
        &self.body
    }
}

impl TestServer {
    /// Auto-claim on, rate limits off: the default for tests that are not about either.
    pub async fn start() -> Self {
        Self::start_with(|c| {
            c.auto_claim = true;
            c.rate_limits_enabled = false;
        })
        .await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = match crate::BACKEND {
            Backend::Sqlite => None,
            Backend::Postgres => Some(tidepool_store_pg::testing::TestDb::new().await),
            Backend::PgBouncer => {
                Some(tidepool_store_pg::testing::TestDb::through_pgbouncer().await)
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let mut config = Config {
            data_dir: dir.path().join("data"),
            listen: addr,
            public_url: format!("http://{addr}"),
            ..Config::default()
        };
        config.database = database.as_ref().map(|db| {
            let mut pg = db.config();
            // As SCALE-OUT.md deploys it: LISTEN needs a session of its own, so the
            // listener goes to PostgreSQL itself, not through the pooler.
            if db.via_pgbouncer() {
                pg.listen_url = Some(db.direct_url());
            }
            pg
        });
        tweak(&mut config);
        let app = tidepool_server::build(config).await.unwrap();
        let state = app.state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            tidepool_server::serve(app, listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        if database.is_some() {
            // Listening drops every cache first (what was sent meanwhile went unheard):
            // a test counting cache entries must start after that.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                match state.listener_status() {
                    Some(s) if s.listening => break,
                    s => assert!(
                        std::time::Instant::now() < deadline,
                        "the server's invalidation listener never started: {s:?}"
                    ),
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            app: state,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
            _database: database,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self.client.request(method, url);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.call(Method::GET, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, key, Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, key, None).await
    }

    pub async fn register(&self, name: &str) -> Agent {
        let r = self
            .post(
                "/api/v1/agents/register",
                None,
                json!({"name": name, "description": format!("{name} test agent")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        Agent {
            name: name.to_owned(),
            key: r.body["agent"]["api_key"].as_str().unwrap().to_owned(),
            id: r.body["agent"]["id"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn create_post(&self, a: &Agent, submolt: &str, title: &str, content: &str) -> Value {
        let r = self
            .post(
                "/api/v1/posts",
                Some(&a.key),
                json!({"submolt_name": submolt, "title": title, "content": content}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["post"].clone()
    }

    pub async fn comment(
        &self,
        a: &Agent,
        post_id: &str,
        content: &str,
        parent: Option<&str>,
    ) -> Value {
        let r = self
            .post(
                &format!("/api/v1/posts/{post_id}/comments"),
                Some(&a.key),
                json!({"content": content, "parent_id": parent}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["comment"].clone()
    }

    /// Claims an agent the way the operator CLI does.
    pub async fn claim(&self, name: &str) {
        let key = name.to_ascii_lowercase();
        self.app
            .store
            .admin_claim(
                &key,
                tidepool_store::AdminClaim::WithoutOwner { link_expires_at: 0 },
                tidepool_core::time::now_ms(),
            )
            .await
            .unwrap();
    }

    pub async fn stats(&self) -> Value {
        self.get("/api/v1/stats", None).await.body
    }
}
