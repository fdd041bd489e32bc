//! tidepool-server: the HTTP face of tidepool.
//!
//! A request's path: route -> extract the caller -> an operation of the app
//! (`tidepool_app::ops`: limits, parsing, guard, store) -> view -> JSON or HTML. The
//! server maps the app's errors to HTTP and shapes JSON and HTML, nothing more; the
//! rules live in the app, which the CLI calls too.

pub mod api;
pub mod cache;
pub mod client;
pub mod config;
pub mod conn;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod metrics;
pub mod params;
pub mod ratelimit;
pub mod routes;
pub mod skill;
pub mod spotlight;
pub mod state;
pub mod views;
pub mod web;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tidepool_core::credentials::CredentialHasher;
use tidepool_store_sqlite::{Durability, SqliteStore, StoreOptions, load_or_create_secret};
use tower_http::trace::TraceLayer;

pub use client::ClientAddr;
pub use config::{Config, DatabaseFile, FileConfig};
pub use conn::ConnectionLimits;
use error::ApiError;
use ratelimit::MemoryLimiter;
use state::{AppState, Inner};

/// Largest request body accepted (the open-source server's limit).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A built application: the router and the state behind it.
pub struct App {
    pub router: Router,
    pub state: AppState,
}

/// What a node runs on: the store, and the rate limiter that goes with it.
pub struct Backend {
    pub store: Arc<dyn tidepool_store::Store>,
    /// In process for the embedded store; shared through the database for PostgreSQL,
    /// where several nodes must count together.
    pub limiter: Arc<dyn ratelimit::Limiter>,
    /// The database several nodes share, for their lease and job rows (`None`: the
    /// embedded store, one node).
    pub shared: Option<tidepool_store_pg::PgPool>,
}

/// Opens the store `config` names: PostgreSQL when `config.database` is set, else the
/// embedded SQLite store in `config.data_dir`.
pub async fn open_store(
    config: &Config,
) -> Result<Arc<dyn tidepool_store::Store>, tidepool_store::StoreError> {
    Ok(open_backend(config).await?.store)
}

/// [`open_store`] with the rate limiter for it.
pub async fn open_backend(config: &Config) -> Result<Backend, tidepool_store::StoreError> {
    if let Some(pg) = &config.database {
        let store = tidepool_store_pg::PgStore::open(pg)
            .await
            .map_err(|e| match e {
                // A refusal (schema too new, a statement mode the path cannot carry) says
                // what to change: keep its words.
                tidepool_store_pg::PgError::Refused(m) => tidepool_store::StoreError::Refused(m),
                other => tidepool_store::StoreError::from(other),
            })?;
        let limiter = ratelimit::SharedLimiter::new(store.pool().clone(), config.nodes);
        return Ok(Backend {
            shared: Some(store.pool().clone()),
            store: Arc::new(store),
            limiter: Arc::new(limiter),
        });
    }
    let durability = if config.durable_commits {
        Durability::Full
    } else {
        Durability::Normal
    };
    let store = SqliteStore::open(
        &config.data_dir,
        StoreOptions {
            durability,
            ..StoreOptions::default()
        },
    )?;
    Ok(Backend {
        store: Arc::new(store),
        limiter: Arc::new(MemoryLimiter::default()),
        shared: None,
    })
}

/// Opens the store and builds the application.
pub async fn build(config: Config) -> Result<App, tidepool_store::StoreError> {
    let backend = open_backend(&config).await?;
    if let Some(db) = &backend.shared {
        check_shared_secret(db, &config).await?;
    }
    build_with(config, backend)
}

/// Every node sharing a database must hash keys with the same secret, or a key would work
/// on one node and not on the next. The first node records a fingerprint of its secret
/// (an HMAC, not the secret); a node whose secret gives another fingerprint refuses to
/// start.
async fn check_shared_secret(
    db: &tidepool_store_pg::PgPool,
    config: &Config,
) -> Result<(), tidepool_store::StoreError> {
    let secret = load_or_create_secret(&config.data_dir)?;
    let mine = hex::encode(
        CredentialHasher::new(secret)
            .hash(tidepool_core::credentials::domain::FINGERPRINT, "tidepool"),
    );
    let recorded = tidepool_store_pg::meta_first(db, "secret_fingerprint", &mine).await?;
    if recorded != mine {
        return Err(tidepool_store::StoreError::Refused(format!(
            "this node's server secret ({}) is not the one the other nodes of this database use: \
             copy server.secret from another node's data directory",
            config.data_dir.join("server.secret").display()
        )));
    }
    Ok(())
}

/// Builds the application on an open store.
pub fn build_with(config: Config, backend: Backend) -> Result<App, tidepool_store::StoreError> {
    let Backend {
        store,
        limiter,
        shared,
    } = backend;
    // The secret stays in the data directory whatever the store: nodes sharing a database
    // each get a copy of the same file.
    let secret = load_or_create_secret(&config.data_dir)?;
    let routes = routes::api_routes();
    let docs: Vec<routes::RouteDoc> = routes.iter().map(|r| r.doc.clone()).collect();
    let openapi = routes::openapi(&docs, &config.public_url).to_string();
    // With read replicas, pages may be rendered from data up to this far behind.
    let replica_margin = config
        .database
        .as_ref()
        .map_or(Duration::ZERO, |pg| pg.replica_staleness_bound());
    let pages = Arc::new(
        cache::PageCache::new(
            Duration::from_millis(config.page_cache_ms),
            config.page_cache_bytes,
        )
        .with_replica_margin(replica_margin),
    );
    let skills = skill::SkillFiles::render(&config.public_url);
    // The app keeps whether there is a shared database, not how to reach it.
    let (config, _database) = config.without_database();
    let app = tidepool_app::App::new(
        config,
        store,
        CredentialHasher::new(secret),
        limiter,
        pages.clone(),
    );
    let metrics = Arc::new(metrics::Metrics::new(
        &app.config.node_id,
        app.store.clone(),
        app.limiter.clone(),
        app.counters.clone(),
    ));
    let state = AppState::new(Inner {
        app,
        shared,
        skills,
        openapi,
        pages,
        metrics: metrics.clone(),
        listener: std::sync::Mutex::new(None),
    });

    let api = routes::router(routes);
    let router = Router::new()
        .nest("/api/v1", api.clone())
        .merge(api)
        .route("/", get(api::misc::index))
        .route("/skill.md", get(skill_file))
        .route("/heartbeat.md", get(skill_file))
        .route("/messaging.md", get(skill_file))
        .route("/rules.md", get(skill_file))
        .route("/skill.json", get(skill_manifest))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/media/avatars/{file}", get(avatar_image))
        .route("/metrics", get(metrics::handler))
        .merge(web::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), cache::layer))
        .layer(middleware::from_fn(spotlight::layer))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            general_limits,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), web::layer))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), edge));
    // Only a PostgreSQL store with replicas looks at the read-your-writes scope; without
    // them the layer would cost every request for nothing.
    let router = if replica_margin.is_zero() {
        router
    } else {
        router.layer(middleware::from_fn(read_scope))
    };
    let router = router.layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
        // Only the route template is logged, never the concrete path or query, so a
        // token in a URL can never reach the logs.
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("<unmatched>", MatchedPath::as_str)
            .to_owned();
        tracing::debug_span!("request", method = %req.method(), route)
    }));
    // Outermost, so every answer counts, whichever layer gave it. With metrics off nothing
    // is counted at all (which is also how their cost is measured, docs/DEPLOY.md).
    let router = if state.config.metrics.enabled {
        router.layer(middleware::from_fn_with_state(metrics, metrics::track))
    } else {
        router
    }
    .with_state(state.clone());
    Ok(App { router, state })
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests
/// and flushes every queued write before returning.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = app.state.clone();
    // Other nodes' invalidations, while serving (stopped when dropped at the end).
    let invalidations = state.shared.as_ref().map(|db| {
        db.listen(
            &state.config.node_id,
            Arc::new(state.clone()) as Arc<dyn tidepool_store_pg::InvalidationSink>,
        )
    });
    state.set_listener(invalidations.as_ref().map(|l| l.watch()));
    let pruner = jobs::spawn(
        state.clone(),
        jobs::Schedule {
            interval: Duration::from_millis(state.config.job_interval_ms.max(1)),
            shared: state.shared.clone(),
            node: state.config.node_id.clone(),
        },
    );
    let deliveries = webhooks::spawn(state.clone());
    let served = conn::serve(
        listener,
        app.router,
        state.config.connections.clone(),
        state.config.trusted_proxies.clone(),
        shutdown,
    )
    .await;
    pruner.abort();
    deliveries.abort();
    drop(invalidations);
    state.shutdown().await;
    served
}

async fn openapi_handler(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
        .into_response()
}

async fn skill_file(State(state): State<AppState>, req: Request) -> Response {
    let name = req.uri().path().trim_start_matches('/');
    match state.skills.files.get(name) {
        Some(body) => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            body.clone(),
        )
            .into_response(),
        None => not_found_for(req.method(), req.uri().path()).into_response(),
    }
}

async fn skill_manifest(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.skills.manifest.clone(),
    )
        .into_response()
}

/// The public key identity tokens are signed with (RFC 7517), for apps that verify
/// offline. Derived from the server secret, so it changes only with the secret.
async fn jwks(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        serde_json::json!({"keys": [state.identity.jwk()]}).to_string(),
    )
        .into_response()
}

/// An avatar: always a PNG tidepool encoded itself, served so that nothing could run even
/// if it were not (no sniffing, a sandboxing CSP, a fixed type and file name).
async fn avatar_image(
    State(state): State<AppState>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let uuid = file.strip_suffix(".png").unwrap_or("");
    let png = tidepool_app::ops::media::avatar(&state, uuid).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"avatar.png\"",
            ),
            // A new upload gets a new id: an image never changes under its URL.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (
                header::HeaderName::from_static("cross-origin-resource-policy"),
                "cross-origin",
            ),
        ],
        png,
    )
        .into_response())
}

fn not_found_for(method: &Method, path: &str) -> ApiError {
    ApiError::not_found("Endpoint not found").with_hint(format!(
        "{method} {path} does not exist. See /api/v1/openapi.json for every route."
    ))
}

async fn not_found(req: Request) -> ApiError {
    not_found_for(req.method(), req.uri().path())
}

/// Runs each request in its own read-your-writes scope: once it is authenticated, the
/// store knows whose writes its reads must show (`tidepool_store::consistency`). Only
/// added when the store is PostgreSQL with replicas, the one store that looks.
async fn read_scope(req: Request, next: Next) -> Response {
    tidepool_store::consistency::scope(next.run(req)).await
}

/// Turns every non-JSON error (axum's own rejections: 405, 413, bad paths) into the error
/// envelope, so clients always get JSON.
async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // JSON errors are already enveloped; web pages render their own errors.
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let err = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(status, "Method not allowed")
            .with_hint(format!("{path} does not accept {method}")),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "Request body too large").with_hint("Bodies are limited to 1 MB")
        }
        s if s.is_server_error() => ApiError::internal(format!("{method} {path}: {s} {text}")),
        s => ApiError::new(
            s,
            if text.is_empty() {
                s.canonical_reason().unwrap_or("Bad request").to_owned()
            } else {
                text
            },
        ),
    };
    let mut resp = err.into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
    }
    resp
}

/// The first middleware every request meets: refuses oversized request heads with a 431
/// in the JSON envelope, resolves the client (behind trusted proxies, the address they
/// report) into a [`ClientAddr`] extension, and marks every response `nosniff`.
async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let limits = &state.config.connections;
    let count = req.headers().len();
    let bytes = head_size(&req);
    if count > limits.max_headers || bytes > limits.max_header_bytes {
        let mut r = ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request headers too large",
        )
        .with_hint(format!(
            "A request may carry at most {} headers and {} bytes of request line and headers",
            limits.max_headers, limits.max_header_bytes
        ))
        .into_response();
        nosniff(&mut r);
        return r;
    }
    if let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
    {
        let client = client::resolve(peer.ip(), req.headers(), &state.config.trusted_proxies);
        req.extensions_mut().insert(client);
    }
    let mut response = next.run(req).await;
    nosniff(&mut response);
    response
}

fn nosniff(r: &mut Response) {
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// The size of the request head as sent: request line and header lines, with their
/// separators.
fn head_size(req: &Request) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri
            .authority()
            .map_or(0, |a| a.as_str().len() + "http://".len());
    let line = req.method().as_str().len() + " ".len() + target + " HTTP/1.1\r\n".len();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + ": \r\n".len())
        .sum();
    line + fields
}

/// General per-key (or per-IP, without a key) request limits, plus a per-IP ceiling, with
/// `X-RateLimit-*` headers on every response.
async fn general_limits(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.config.rate_limits_enabled
        || matches!(
            req.uri().path(),
            "/health" | "/api/v1/health" | "/ready" | "/api/v1/ready"
        )
    {
        return next.run(req).await;
    }
    let ip = ClientAddr::from_extensions(req.extensions())
        .map(|c| c.subject())
        .unwrap_or_else(|| "unknown".into());
    let is_read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let decision = state
        .limit_request(extract::bearer_token(req.headers()), &ip, is_read)
        .await;
    let headers = [
        ("x-ratelimit-limit", decision.limit.to_string()),
        ("x-ratelimit-remaining", decision.remaining.to_string()),
        (
            "x-ratelimit-reset",
            (decision.reset_at_ms / 1000).to_string(),
        ),
    ];
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        ApiError::from(tidepool_app::too_many(decision, "too many requests")).into_response()
    };
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

pub(crate) use openapi_handler as openapi_route;
