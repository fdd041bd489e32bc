//! A micro-cache of public listings (feeds, threads, search).
//!
//! Why: with SQLite in WAL mode every commit by the writer makes each reader connection drop
//! its page cache, so under a mixed load every feed read re-parses its pages, and reads
//! cost twice what they cost on a quiet store. These responses do not depend on who asks, so
//! one rendering can serve everyone for a moment.
//!
//! The rules:
//! - only `GET` on the routes in [`cacheable`], only `200` answers, at most
//!   [`MAX_BODY`] bytes, at most [`MAX_ENTRIES`] entries;
//! - an entry lives `page_cache_ms` (default 1 s, 0 turns the cache off);
//! - read-your-writes: an agent never gets a page whose rendering started before its own
//!   last successful write, so it always sees its own posts, comments and votes at once;
//! - a request carrying a key that is not known-good (unknown, revoked, suspended agent)
//!   never gets a cached page: it goes to the handler, which refuses it as usual;
//! - moderation and deletions call [`PageCache::clear`];
//! - one rendering per page at a time: when an entry expires, the first request renders
//!   it and the others asking for the same page wait for that result (at most
//!   [`COALESCE_WAIT`]) instead of all running the same query at once.
//!
//! The cache sits inside the spotlight layer, so a datamarked response still gets a fresh
//! marker every time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tidepool_core::credentials::domain;

use crate::extract::bearer_token;
use crate::state::AppState;

/// Largest response kept.
pub const MAX_BODY: usize = 512 * 1024;
/// Past this many entries the cache starts over.
pub const MAX_ENTRIES: usize = 4_096;
/// Longest a request waits for another request's rendering of the same page.
pub const COALESCE_WAIT: Duration = Duration::from_secs(5);

struct Entry {
    /// When the read that rendered it began.
    at: Instant,
    content_type: HeaderValue,
    body: Bytes,
}

#[derive(Default)]
pub struct PageCache {
    ttl: Duration,
    pages: Mutex<HashMap<String, Entry>>,
    /// Agents (internal id) and when they last wrote.
    writers: Mutex<HashMap<i64, Instant>>,
    /// Pages being rendered right now, and how to wake those waiting for them.
    inflight: Mutex<HashMap<String, std::sync::Arc<tokio::sync::Notify>>>,
}

/// Who renders a missing page: this request, or another one already doing it.
enum Turn {
    Render,
    /// Created while the in-flight table was locked, so the wake-up cannot be missed.
    Wait(tokio::sync::futures::OwnedNotified),
}

/// Ends a rendering turn (also when the request is dropped midway): wakes the waiters.
struct Rendering<'a> {
    cache: &'a PageCache,
    key: String,
}

impl Drop for Rendering<'_> {
    fn drop(&mut self) {
        if let Ok(mut f) = self.cache.inflight.lock()
            && let Some(n) = f.remove(&self.key)
        {
            n.notify_waiters();
        }
    }
}

impl PageCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            ..Self::default()
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// Forgets every page (after moderation or a deletion).
    pub fn clear(&self) {
        if let Ok(mut p) = self.pages.lock() {
            p.clear();
        }
    }

    /// A page younger than the TTL and, for an agent, rendered after its last write.
    fn get(&self, key: &str, wrote_at: Option<Instant>) -> Option<(HeaderValue, Bytes)> {
        let pages = self.pages.lock().ok()?;
        let e = pages.get(key)?;
        let fresh = e.at.elapsed() < self.ttl && wrote_at.is_none_or(|w| e.at > w);
        fresh.then(|| (e.content_type.clone(), e.body.clone()))
    }

    fn put(&self, key: String, started: Instant, content_type: HeaderValue, body: Bytes) {
        if let Ok(mut pages) = self.pages.lock() {
            if pages.len() >= MAX_ENTRIES {
                let ttl = self.ttl;
                pages.retain(|_, e| e.at.elapsed() < ttl);
                if pages.len() >= MAX_ENTRIES {
                    pages.clear();
                }
            }
            pages.insert(
                key,
                Entry {
                    at: started,
                    content_type,
                    body,
                },
            );
        }
    }

    fn turn(&self, key: &str) -> Turn {
        match self.inflight.lock() {
            Ok(mut f) => match f.get(key) {
                Some(n) => Turn::Wait(n.clone().notified_owned()),
                None => {
                    f.insert(
                        key.to_owned(),
                        std::sync::Arc::new(tokio::sync::Notify::new()),
                    );
                    Turn::Render
                }
            },
            Err(_) => Turn::Render,
        }
    }

    fn wrote(&self, agent: i64) {
        if let Ok(mut w) = self.writers.lock() {
            if w.len() >= MAX_ENTRIES * 4 {
                let ttl = self.ttl;
                w.retain(|_, at| at.elapsed() < ttl);
            }
            w.insert(agent, Instant::now());
        }
    }

    /// When `agent` last wrote, if within the TTL (older writes are in every live page).
    fn last_write(&self, agent: i64) -> Option<Instant> {
        self.writers
            .lock()
            .ok()
            .and_then(|w| w.get(&agent).copied())
            .filter(|at| at.elapsed() < self.ttl)
    }
}

/// Whether `path` (with or without the `/api/v1` prefix) is a public listing whose answer
/// is the same for every caller.
pub fn cacheable(path: &str) -> bool {
    let p = path.strip_prefix("/api/v1").unwrap_or(path);
    let parts: Vec<&str> = p.trim_matches('/').split('/').collect();
    matches!(
        parts.as_slice(),
        ["posts"] | ["posts", _] | ["posts", _, "comments"] | ["submolts", _, "feed"] | ["search"]
    )
    // Not `/agents/profile`: it says whether the caller follows the agent.
}

enum Who {
    Anonymous,
    Agent(i64),
    /// A key the key cache does not know as good: let the handler decide.
    Unchecked,
}

fn who(state: &AppState, req: &Request) -> Who {
    let headers = req.headers();
    if !(headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key")) {
        return Who::Anonymous;
    }
    let Some(token) = bearer_token(headers) else {
        return Who::Unchecked;
    };
    match state.keys.get(&state.hasher.hash(domain::API_KEY, token)) {
        Some(c) if c.agent.status != tidepool_store::agents::AgentStatus::Suspended => {
            Who::Agent(c.agent.id)
        }
        _ => Who::Unchecked,
    }
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let cache = &state.pages;
    if !cache.enabled() {
        return next.run(req).await;
    }
    if req.method() != Method::GET {
        // Remember who writes, so their next reads skip the cache. The handler has looked
        // the key up by the time it answers, so the key cache knows the agent.
        let token = bearer_token(req.headers()).map(|t| state.hasher.hash(domain::API_KEY, t));
        let response = next.run(req).await;
        if response.status().is_success()
            && let Some(c) = token.and_then(|h| state.keys.get(&h))
        {
            cache.wrote(c.agent.id);
        }
        return response;
    }
    if !cacheable(req.uri().path()) {
        return next.run(req).await;
    }
    let wrote_at = match who(&state, &req) {
        Who::Unchecked => return next.run(req).await,
        Who::Agent(id) => cache.last_write(id),
        Who::Anonymous => None,
    };
    let key = match req.uri().query() {
        Some(q) => format!("{}?{q}", req.uri().path()),
        None => req.uri().path().to_owned(),
    };
    if let Some((content_type, body)) = cache.get(&key, wrote_at) {
        return ([(header::CONTENT_TYPE, content_type)], body).into_response();
    }
    let _rendering = loop {
        match cache.turn(&key) {
            Turn::Render => {
                break Rendering {
                    cache,
                    key: key.clone(),
                };
            }
            Turn::Wait(woken) => {
                if tokio::time::timeout(COALESCE_WAIT, woken).await.is_err() {
                    return next.run(req).await;
                }
                if let Some((content_type, body)) = cache.get(&key, wrote_at) {
                    return ([(header::CONTENT_TYPE, content_type)], body).into_response();
                }
                // The other rendering failed or is too old for this reader: take a turn.
            }
        }
    };
    let started = Instant::now();
    let response = next.run(req).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Listings are bounded (at most 100 posts or 500 comments), far below this.
    match axum::body::to_bytes(body, 64 * MAX_BODY).await {
        Ok(bytes) => {
            if bytes.len() <= MAX_BODY
                && let Some(ct) = parts.headers.get(header::CONTENT_TYPE)
            {
                cache.put(key, started, ct.clone(), bytes.clone());
            }
            Response::from_parts(parts, Body::from(bytes))
        }
        // The body cannot be recovered after a failed read: answer with a clear error
        // instead of a truncated page.
        Err(_) => crate::error::ApiError::internal("response too large to buffer").into_response(),
    }
}
