//! A micro-cache of public listings (feeds, threads, search).
//!
//! Why: with SQLite in WAL mode every commit by the writer makes each reader connection drop
//! its page cache, so under a mixed load every feed read re-parses its pages, and reads
//! cost twice what they cost on a quiet store. These responses do not depend on who asks, so
//! one rendering can serve everyone for a moment.
//!
//! The rules:
//! - only `GET` on the routes [`key`] knows, only `200` answers, at most [`MAX_BODY`] bytes;
//! - an entry lives `page_cache_ms` (default 1 s, 0 turns the cache off) and leaves on
//!   time: a sweeper drops expired entries every moment, so memory goes back down after a
//!   burst instead of waiting for the cache to fill;
//! - everything held (bodies, keys, and [`ENTRY_OVERHEAD`] for the bookkeeping of each
//!   entry) stays within `page_cache_bytes`: when a new page does not fit, the oldest
//!   renderings leave first;
//! - the key is the route and only the query parameters its handler reads, in a fixed order
//!   and, where a shared parser decides their meaning, in parsed form (see [`key`]), so
//!   parameters a handler ignores never make new entries;
//! - read-your-writes: an agent never gets a page whose rendering started before its own
//!   last successful write, so it always sees its own posts, comments and votes at once;
//!   with read replicas a page rendered just after the write may still come from a
//!   replica without it, so a writer gets only pages rendered later than its write plus
//!   the replicas' staleness bound ([`PageCache::with_replica_margin`]);
//! - a request carrying a key that is not known-good (unknown, revoked, suspended agent)
//!   never gets a cached page: it goes to the handler, which refuses it as usual;
//! - moderation and deletions call [`PageCache::clear`];
//! - one rendering per page at a time: when an entry expires, the first request renders
//!   it and the others asking for the same page wait for that result (at most
//!   [`COALESCE_WAIT`]) instead of all running the same query at once.
//!
//! The cache sits inside the spotlight layer, so a datamarked response still gets a fresh
//! marker every time (and `spotlight=` is not part of the key).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt::{Display, Write as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tidepool_core::credentials::domain;
use tidepool_core::model::feed::PostSort;
use tokio::sync::Notify;

use crate::extract::bearer_token;
use crate::params::ListParams;
use crate::state::AppState;

/// Largest response kept.
pub const MAX_BODY: usize = 512 * 1024;
/// Default bound on everything the cache holds (`page_cache_bytes`).
pub const DEFAULT_BYTES: u64 = 32 * 1024 * 1024;
/// What one entry costs beyond its body and key, charged against the bound: its slot in
/// the page table (grown ahead of use, so counted about twice), its node in the age index,
/// the shared key's header. Estimated generously from the sizes of those structures, so
/// the bound holds for many tiny pages too.
pub const ENTRY_OVERHEAD: usize = 384;
/// Cached bodies are held in pieces of this size (the last one shorter). Why: bodies of
/// every length between a few KB and [`MAX_BODY`], evicted oldest first while others are
/// rendered, spread over dozens of allocator size classes, each keeping partly used pages
/// resident; measured with mimalloc, a cache at its bound then cost about twice the bound
/// in resident memory. Pieces of one size reuse each other's room.
pub const PIECE: usize = 16 * 1024;
/// What each piece costs beyond its bytes: its handle in the entry and the shared header
/// it gets when first served.
pub const PIECE_OVERHEAD: usize = 64;
/// Most agents remembered as recent writers. Past it the cache forgets them all and
/// treats every agent as having just written (`Writers::floor`), which costs at most one
/// TTL of uncached reads for agents and never a stale page.
pub const MAX_WRITERS: usize = 65_536;
/// Most pages being rendered with coalescing at once; renderings past it run on their own.
pub const MAX_INFLIGHT: usize = 4_096;
/// Longest a request waits for another request's rendering of the same page.
pub const COALESCE_WAIT: Duration = Duration::from_secs(5);
/// How often the sweeper runs: every TTL, within these limits (a very short TTL should
/// not keep a core busy, a long one should not keep dead pages for minutes).
const SWEEP_MIN: Duration = Duration::from_millis(250);
const SWEEP_MAX: Duration = Duration::from_secs(5);

/// Default and largest page size of each cached route, as its handler reads them
/// (`ListParams::page(default, max)` in `api::posts`, `api::submolts`, `api::misc`).
/// Keys use the clamped value, so `limit=1000` and `limit=100` share an entry; the
/// `cache` API tests check these against the handlers' answers.
pub const POSTS_PAGE: (i64, i64) = (25, 100);
pub const THREAD_PAGE: (i64, i64) = (35, 100);
pub const SEARCH_PAGE: (i64, i64) = (20, 50);

struct Entry {
    /// When the read that rendered it began.
    at: Instant,
    /// Insertion number: tells two renderings begun at the same instant apart.
    seq: u64,
    /// What it is charged against the bound.
    size: usize,
    content_type: HeaderValue,
    body: Box<[Bytes]>,
}

#[derive(Default)]
struct Pages {
    map: HashMap<Arc<str>, Entry>,
    /// Every entry by (rendering start, insertion number): the front is the oldest, so
    /// expiry and eviction both take from the front.
    order: BTreeMap<(Instant, u64), Arc<str>>,
    /// Sum of the entries' `size`.
    bytes: usize,
    seq: u64,
    /// Renderings begun before the last clear may show what was just removed.
    cleared_at: Option<Instant>,
}

impl Pages {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&(e.at, e.seq));
            self.bytes = self.bytes.saturating_sub(e.size);
        }
    }

    fn pop_oldest(&mut self) -> bool {
        match self.order.pop_first() {
            Some((_, key)) => {
                if let Some(e) = self.map.remove(&key) {
                    self.bytes = self.bytes.saturating_sub(e.size);
                }
                true
            }
            None => false,
        }
    }

    /// Drops every entry at least `ttl` old.
    fn expire(&mut self, ttl: Duration) {
        while let Some(((at, _), _)) = self.order.first_key_value() {
            if at.elapsed() < ttl {
                break;
            }
            self.pop_oldest();
        }
    }

    /// Gives back table space after a burst (a hash map never shrinks by itself).
    fn shrink(&mut self) {
        if self.map.capacity() > 4 * self.map.len().max(256) {
            self.map.shrink_to(2 * self.map.len());
        }
    }
}

/// Agents (internal id) and when they last wrote.
#[derive(Default)]
struct Writers {
    at: HashMap<i64, Instant>,
    /// Every agent counts as having written at this moment: set when the table overflows
    /// and is emptied, so forgetting a writer can only make its reads uncached, never stale.
    floor: Option<Instant>,
}

struct Shared {
    ttl: Duration,
    /// Most a replica-served rendering may miss of a write (zero without replicas).
    margin: Duration,
    max_bytes: usize,
    pages: Mutex<Pages>,
    writers: Mutex<Writers>,
    /// Pages being rendered right now, and how to wake those waiting for them.
    inflight: Mutex<HashMap<Arc<str>, Arc<Notify>>>,
}

pub struct PageCache {
    shared: Arc<Shared>,
    sweeping: AtomicBool,
}

/// Who renders a missing page: this request, or another one already doing it.
enum Turn {
    /// `true` when registered in the in-flight table (others may wait for it).
    Render(bool),
    /// Created while the in-flight table was locked, so the wake-up cannot be missed.
    Wait(tokio::sync::futures::OwnedNotified),
}

/// Ends a rendering turn (also when the request is dropped midway): wakes the waiters.
struct Rendering<'a> {
    cache: &'a Shared,
    /// `None` when the turn was not registered (the table was full).
    key: Option<Arc<str>>,
}

impl Drop for Rendering<'_> {
    fn drop(&mut self) {
        if let Some(key) = &self.key
            && let Ok(mut f) = self.cache.inflight.lock()
            && let Some(n) = f.remove(key)
        {
            n.notify_waiters();
        }
    }
}

impl PageCache {
    /// A cache whose entries live `ttl` and which holds at most `max_bytes` (either 0
    /// turns it off).
    pub fn new(ttl: Duration, max_bytes: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                ttl,
                margin: Duration::ZERO,
                max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
                pages: Mutex::default(),
                writers: Mutex::default(),
                inflight: Mutex::default(),
            }),
            sweeping: AtomicBool::new(false),
        }
    }

    /// With read replicas: a page must have been rendered more than `margin` after an
    /// agent's write to be served to that agent (the replicas' staleness bound,
    /// `PgConfig::replica_staleness_bound`), and writers are remembered that much longer.
    pub fn with_replica_margin(mut self, margin: Duration) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.margin = margin;
        }
        self
    }

    pub fn enabled(&self) -> bool {
        !self.shared.ttl.is_zero() && self.shared.max_bytes > 0
    }

    /// Forgets every page (after moderation or a deletion), and refuses renderings that
    /// began before now.
    pub fn clear(&self) {
        if let Ok(mut p) = self.shared.pages.lock() {
            p.map.clear();
            p.order.clear();
            p.bytes = 0;
            p.cleared_at = Some(Instant::now());
            p.shrink();
        }
    }

    /// Drops expired pages and writers (the sweeper calls this every moment).
    pub fn sweep(&self) {
        self.shared.sweep();
    }

    /// How many pages are held and what they are charged against the bound.
    pub fn usage(&self) -> (usize, usize) {
        self.shared
            .pages
            .lock()
            .map(|p| (p.map.len(), p.bytes))
            .unwrap_or_default()
    }

    /// Starts the sweeper on the current runtime, once. It holds the cache weakly and
    /// stops when the cache is dropped, so it needs no shutdown of its own.
    fn start_sweeper(&self) {
        if self.sweeping.load(Ordering::Relaxed) || self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Release);
            return;
        };
        let shared = Arc::downgrade(&self.shared);
        let period = self.shared.ttl.clamp(SWEEP_MIN, SWEEP_MAX);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match shared.upgrade() {
                    Some(s) => s.sweep(),
                    None => break,
                }
            }
        });
    }
}

impl Shared {
    /// A page younger than the TTL and, for an agent, rendered after its last write (plus
    /// the replica margin).
    fn get(&self, key: &str, wrote_at: Option<Instant>) -> Option<(HeaderValue, Box<[Bytes]>)> {
        let mut pages = self.pages.lock().ok()?;
        let at = pages.map.get(key)?.at;
        if at.elapsed() >= self.ttl {
            pages.remove(key);
            return None;
        }
        if wrote_at.is_some_and(|w| at <= w + self.margin) {
            return None;
        }
        let e = pages.map.get(key)?;
        Some((e.content_type.clone(), e.body.clone()))
    }

    /// Keeps a page rendered from a read that began at `started`, evicting the oldest
    /// pages until it fits.
    fn put(&self, key: Arc<str>, started: Instant, content_type: HeaderValue, body: &[u8]) {
        let size =
            body.len() + key.len() + ENTRY_OVERHEAD + body.len().div_ceil(PIECE) * PIECE_OVERHEAD;
        if size > self.max_bytes || started.elapsed() >= self.ttl {
            return;
        }
        // A copy (made before taking the lock), in pieces: the rendered buffer may have
        // grown to twice the body's length, and the bound should count what is held.
        let body: Box<[Bytes]> = body.chunks(PIECE).map(Bytes::copy_from_slice).collect();
        let Ok(mut pages) = self.pages.lock() else {
            return;
        };
        if pages.cleared_at.is_some_and(|c| started <= c) {
            return;
        }
        if let Some(old) = pages.map.get(&*key) {
            // Never replace a newer rendering with an older one.
            if old.at >= started {
                return;
            }
            pages.remove(&key);
        }
        pages.expire(self.ttl);
        while pages.bytes + size > self.max_bytes && pages.pop_oldest() {}
        pages.seq += 1;
        let seq = pages.seq;
        pages.order.insert((started, seq), key.clone());
        pages.bytes += size;
        pages.map.insert(
            key,
            Entry {
                at: started,
                seq,
                size,
                content_type,
                body,
            },
        );
    }

    fn sweep(&self) {
        if let Ok(mut p) = self.pages.lock() {
            p.expire(self.ttl);
            p.shrink();
        }
        if let Ok(mut w) = self.writers.lock() {
            let keep = self.ttl + self.margin;
            w.at.retain(|_, at| at.elapsed() < keep);
            if w.at.capacity() > 4 * w.at.len().max(256) {
                let len = w.at.len();
                w.at.shrink_to(2 * len);
            }
            if w.floor.is_some_and(|f| f.elapsed() >= keep) {
                w.floor = None;
            }
        }
    }

    fn turn(&self, key: &Arc<str>) -> Turn {
        match self.inflight.lock() {
            Ok(mut f) => match f.get(key) {
                Some(n) => Turn::Wait(n.clone().notified_owned()),
                None if f.len() >= MAX_INFLIGHT => Turn::Render(false),
                None => {
                    f.insert(key.clone(), Arc::new(Notify::new()));
                    Turn::Render(true)
                }
            },
            Err(_) => Turn::Render(false),
        }
    }

    fn wrote(&self, agent: i64) {
        if let Ok(mut w) = self.writers.lock() {
            let now = Instant::now();
            if w.at.len() >= MAX_WRITERS {
                let keep = self.ttl + self.margin;
                w.at.retain(|_, at| at.elapsed() < keep);
                if w.at.len() >= MAX_WRITERS {
                    w.at.clear();
                    w.floor = Some(now);
                }
            }
            w.at.insert(agent, now);
        }
    }

    /// When `agent` last wrote, if within the TTL plus the replica margin (older writes are
    /// in every live page).
    fn last_write(&self, agent: i64) -> Option<Instant> {
        let w = self.writers.lock().ok()?;
        w.at.get(&agent)
            .copied()
            .max(w.floor)
            .filter(|at| at.elapsed() < self.ttl + self.margin)
    }
}

/// The cached routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// `GET /posts`
    Posts,
    /// `GET /posts/{id}`
    Post,
    /// `GET /posts/{id}/comments`
    Comments,
    /// `GET /submolts/{name}/feed`
    SubmoltFeed,
    /// `GET /search`
    Search,
}

/// The cached route `path` is (with or without the `/api/v1` prefix, which serve the same
/// handlers), and the path without the prefix.
fn route(path: &str) -> Option<(Route, &str)> {
    let rest = match path.strip_prefix("/api/v1") {
        Some(r) if r.starts_with('/') => r,
        _ => path,
    };
    let parts: Vec<&str> = rest.strip_prefix('/')?.split('/').collect();
    let route = match parts.as_slice() {
        ["posts"] => Route::Posts,
        ["posts", id] if !id.is_empty() => Route::Post,
        ["posts", id, "comments"] if !id.is_empty() => Route::Comments,
        ["submolts", name, "feed"] if !name.is_empty() => Route::SubmoltFeed,
        ["search"] => Route::Search,
        _ => return None,
    };
    // Not `/agents/profile`: it says whether the caller follows the agent.
    Some((route, rest))
}

/// Whether `path` (with or without the `/api/v1` prefix) is a public listing whose answer
/// is the same for every caller.
pub fn cacheable(path: &str) -> bool {
    route(path).is_some()
}

/// A key being built: the path, then `name=value` pairs in the order they are added.
struct KeyBuf(String);

impl KeyBuf {
    fn put(&mut self, name: &str, value: impl Display) {
        let sep = if self.0.ends_with('?') { "" } else { "&" };
        let _ = write!(self.0, "{sep}{name}={value}");
    }

    /// A value the handler reads itself: kept exactly, absent and empty told apart.
    fn raw(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.put(name, utf8_percent_encode(v, NON_ALPHANUMERIC));
        }
    }

    /// `sort` for posts, as the shared parser reads it. What falls back to the handler's
    /// default (absent, blank, unknown) is keyed as `default` rather than as that sort, so
    /// a change of default can never make two different answers share an entry.
    fn post_sort(&mut self, q: &ListParams) -> Option<()> {
        let (a, b) = (
            q.post_sort(PostSort::Hot).ok()?,
            q.post_sort(PostSort::New).ok()?,
        );
        if a == b {
            self.put("sort", format_args!("{a:?}"));
        } else {
            self.put("sort", "default");
        }
        Some(())
    }

    /// The page asked for: `limit` clamped and `page` turned into an offset by the shared
    /// parser, and a cursor by everything it holds (its listing tag included), since the
    /// handler checks it against the listing it is sent to and the key must not let a
    /// cursor refused there share an entry with one accepted.
    fn page(&mut self, q: &ListParams, (default, max): (i64, i64)) -> Option<()> {
        // Without a listing the parser refuses only cursors every listing refuses.
        let (p, cursor) = q.page(default, max).ok()?;
        self.put("limit", p.limit);
        self.put("iq", u8::from(p.include_quarantined));
        match cursor {
            // With a cursor the handler reads no `offset` or `page`.
            Some(c) => {
                if let Some(k) = c.key {
                    self.put("ck", k);
                }
                if let Some(i) = c.id {
                    self.put("ci", i);
                }
                if let Some(o) = c.offset {
                    self.put("co", o);
                }
                if let Some(n) = c.now {
                    self.put("cn", n);
                }
                self.raw("cs", c.listing.as_deref());
            }
            None => self.put("offset", p.offset),
        }
        Some(())
    }
}

/// The cache key of a `GET` on `path` with `query`, or `None` when it must not be served
/// from the cache: not a cached route, or a query its handler refuses (left to the handler
/// so its error message is exact).
///
/// The key is the path without `/api/v1` and only the parameters the route's handler
/// reads, in a fixed order: those the handlers read through the shared parser in `params`
/// (`sort`, `t`, `limit`, `offset`, `page`, `cursor`, `include_quarantined`) by their parsed
/// meaning, the others (`q`, `type`, `submolt`, `author`, which the handlers read
/// themselves and some answers echo) exactly as sent. Any other parameter (`spotlight`
/// included, applied outside the cache) is left out.
pub fn key(path: &str, query: Option<&str>) -> Option<String> {
    let (route, rest) = route(path)?;
    let raw = query.unwrap_or("");
    // The handlers' `Query` extractor: the same checks, so what it refuses is not cached.
    if percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .is_err()
    {
        return None;
    }
    let q: ListParams = serde_urlencoded::from_str(raw).ok()?;
    let mut k = KeyBuf(String::with_capacity(rest.len() + 64));
    k.0.push_str(rest);
    k.0.push('?');
    match route {
        Route::Posts => {
            k.post_sort(&q)?;
            k.put("t", format_args!("{:?}", q.window().ok()?));
            k.raw("submolt", q.submolt.as_deref());
            k.raw("author", q.author.as_deref());
            k.page(&q, POSTS_PAGE)?;
        }
        Route::SubmoltFeed => {
            k.post_sort(&q)?;
            k.put("t", format_args!("{:?}", q.window().ok()?));
            k.page(&q, POSTS_PAGE)?;
        }
        Route::Post | Route::Comments => {
            k.put("sort", format_args!("{:?}", q.comment_sort()));
            k.page(&q, THREAD_PAGE)?;
        }
        Route::Search => {
            k.raw("q", q.q.as_deref());
            k.raw("type", q.kind.as_deref());
            k.page(&q, SEARCH_PAGE)?;
        }
    }
    Some(k.0)
}

/// A cached page, its pieces sent one after the other without copying them together.
fn served(content_type: HeaderValue, pieces: Box<[Bytes]>) -> Response {
    let body = match <[Bytes; 1]>::try_from(Vec::from(pieces)) {
        Ok([one]) => Body::from(one),
        Err(many) => Body::new(Pieces(many.into())),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

struct Pieces(VecDeque<Bytes>);

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}

enum Who {
    Anonymous,
    Agent(i64),
    /// A key that is not good (unknown, revoked, suspended) or not readable: the handler
    /// answers it.
    Unchecked,
}

/// Who is asking. A key the key cache has not seen lately is looked up (which puts it in
/// the key cache, so the handler does not read it again): otherwise every reader whose key
/// had expired from the key cache would bypass the page cache, and on a store shared by
/// several nodes (short key TTL) that was most readers.
async fn who(state: &AppState, headers: &HeaderMap) -> Who {
    if !(headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key")) {
        return Who::Anonymous;
    }
    let Some(token) = bearer_token(headers) else {
        return Who::Unchecked;
    };
    if let Some(c) = state.cached_caller(token) {
        return Who::Agent(c.agent.id);
    }
    let token = token.to_owned();
    match state.authenticate(&token).await {
        Ok(c) => Who::Agent(c.agent.id),
        Err(_) => Who::Unchecked,
    }
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.pages.enabled() {
        return next.run(req).await;
    }
    state.pages.start_sweeper();
    let cache = &*state.pages.shared;
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
    let wrote_at = match who(&state, req.headers()).await {
        Who::Unchecked => return next.run(req).await,
        Who::Agent(id) => cache.last_write(id),
        Who::Anonymous => None,
    };
    let Some(key) = key(req.uri().path(), req.uri().query()) else {
        return next.run(req).await;
    };
    let key: Arc<str> = key.into();
    if let Some((content_type, body)) = cache.get(&key, wrote_at) {
        return served(content_type, body);
    }
    let _rendering = loop {
        match cache.turn(&key) {
            Turn::Render(registered) => {
                break Rendering {
                    cache,
                    key: registered.then(|| key.clone()),
                };
            }
            Turn::Wait(woken) => {
                if tokio::time::timeout(COALESCE_WAIT, woken).await.is_err() {
                    return next.run(req).await;
                }
                if let Some((content_type, body)) = cache.get(&key, wrote_at) {
                    return served(content_type, body);
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
                cache.put(key, started, ct.clone(), &bytes);
            }
            Response::from_parts(parts, Body::from(bytes))
        }
        // The body cannot be recovered after a failed read: answer with a clear error
        // instead of a truncated page.
        Err(_) => crate::error::ApiError::internal("response too large to buffer").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const JSON: HeaderValue = HeaderValue::from_static("application/json");

    fn cache(ttl_ms: u64, max_bytes: u64) -> PageCache {
        PageCache::new(Duration::from_millis(ttl_ms), max_bytes)
    }

    fn put(c: &PageCache, key: &str, body_len: usize) {
        c.shared
            .put(key.into(), Instant::now(), JSON, &vec![b'x'; body_len]);
    }

    fn has(c: &PageCache, key: &str) -> bool {
        c.shared.get(key, None).is_some()
    }

    #[test]
    fn the_byte_bound_holds_and_the_oldest_pages_leave_first() {
        let entry = 1_000 + 2 + ENTRY_OVERHEAD + PIECE_OVERHEAD;
        let c = cache(60_000, (10 * entry) as u64);
        for i in 0..10 {
            put(&c, &format!("k{i}"), 1_000);
        }
        assert_eq!(c.usage(), (10, 10 * entry));
        // Full: each new page pushes out exactly the oldest one.
        put(&c, "n0", 1_000);
        assert!(!has(&c, "k0") && has(&c, "k1") && has(&c, "n0"));
        assert_eq!(c.usage(), (10, 10 * entry));
        // A page three times as large pushes out the three oldest.
        put(&c, "big", 3 * entry - 3 - ENTRY_OVERHEAD - PIECE_OVERHEAD);
        assert!(!has(&c, "k1") && !has(&c, "k2") && !has(&c, "k3") && has(&c, "k4"));
        assert!(c.usage().1 <= 10 * entry);
        // Thousands of distinct pages later, still within the bound.
        for i in 0..5_000 {
            put(&c, &format!("many{i}"), 100 + i % 900);
            assert!(c.usage().1 <= 10 * entry);
        }
        assert!(has(&c, "many4999"));
    }

    #[test]
    fn the_overhead_estimate_covers_the_bookkeeping() {
        use std::mem::size_of;
        // A table slot with its control byte, counted twice for the table's spare room; an
        // age-index element, counted twice for half-full tree nodes; the key's and the
        // body's shared headers.
        let slot = size_of::<(Arc<str>, Entry)>() + 1;
        let index = size_of::<((Instant, u64), Arc<str>)>();
        assert!(
            2 * slot + 2 * index + 16 + 32 <= ENTRY_OVERHEAD,
            "{slot} {index}"
        );
    }

    #[tokio::test]
    async fn a_page_is_kept_in_pieces_and_served_whole() {
        let c = cache(60_000, 1 << 20);
        let body: Vec<u8> = (0..3 * PIECE + 123).map(|i| (i % 251) as u8).collect();
        c.shared.put("k".into(), Instant::now(), JSON, &body);
        let pieces = 4;
        assert_eq!(
            c.usage().1,
            body.len() + 1 + ENTRY_OVERHEAD + pieces * PIECE_OVERHEAD
        );
        let (ct, stored) = c.shared.get("k", None).unwrap();
        assert_eq!(stored.len(), pieces);
        assert!(stored[..3].iter().all(|p| p.len() == PIECE));
        let response = served(ct, stored);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let sent = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&sent[..], &body[..]);
    }

    #[test]
    fn a_page_larger_than_the_bound_is_not_kept_and_evicts_nothing() {
        let c = cache(60_000, 4_096);
        put(&c, "small", 100);
        put(&c, "huge", 4_096);
        assert!(has(&c, "small") && !has(&c, "huge"));
        assert_eq!(c.usage().0, 1);
    }

    #[test]
    fn replacing_a_page_keeps_the_account_exact() {
        let c = cache(60_000, 1 << 20);
        put(&c, "k", 1_000);
        put(&c, "k", 10);
        assert_eq!(c.usage(), (1, 10 + 1 + ENTRY_OVERHEAD + PIECE_OVERHEAD));
        // An older rendering never replaces a newer one.
        let earlier = Instant::now() - Duration::from_millis(5);
        c.shared.put("k".into(), earlier, JSON, b"older");
        assert_eq!(&c.shared.get("k", None).unwrap().1[0][..], &[b'x'; 10][..]);
        c.clear();
        assert_eq!(c.usage(), (0, 0));
    }

    #[test]
    fn the_sweep_empties_the_cache_once_pages_expire() {
        let c = cache(30, 1 << 20);
        for i in 0..100 {
            put(&c, &format!("k{i}"), 500);
        }
        c.shared.wrote(7);
        assert_eq!(c.usage().0, 100);
        std::thread::sleep(Duration::from_millis(40));
        c.sweep();
        assert_eq!(c.usage(), (0, 0));
        assert!(c.shared.last_write(7).is_none());
        assert!(c.shared.writers.lock().unwrap().at.is_empty());
    }

    #[test]
    fn a_rendering_begun_before_a_clear_is_not_kept() {
        let c = cache(60_000, 1 << 20);
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        c.clear();
        c.shared.put("k".into(), started, JSON, b"stale");
        assert!(!has(&c, "k"));
    }

    #[test]
    fn zero_bytes_or_zero_ttl_turn_the_cache_off() {
        assert!(!cache(1_000, 0).enabled());
        assert!(!cache(0, 1 << 20).enabled());
        assert!(cache(1_000, 1 << 20).enabled());
    }

    #[test]
    fn forgetting_writers_never_serves_them_an_older_page() {
        let c = cache(60_000, 1 << 20);
        put(&c, "page", 10);
        for agent in 0..MAX_WRITERS as i64 {
            c.shared.wrote(agent);
        }
        // The table overflows: it is emptied, and every agent counts as having just
        // written, so the page rendered before is not served to anyone signed in.
        c.shared.wrote(-1);
        assert!(c.shared.writers.lock().unwrap().at.len() <= MAX_WRITERS);
        let never_wrote = c.shared.last_write(i64::MAX);
        assert!(never_wrote.is_some());
        assert!(c.shared.get("page", never_wrote).is_none());
        assert!(c.shared.get("page", None).is_some());
    }

    #[test]
    fn the_inflight_table_is_bounded() {
        let c = cache(60_000, 1 << 20);
        let keys: Vec<Arc<str>> = (0..MAX_INFLIGHT + 10)
            .map(|i| Arc::from(format!("k{i}")))
            .collect();
        let turns: Vec<Turn> = keys.iter().map(|k| c.shared.turn(k)).collect();
        assert!(matches!(turns[0], Turn::Render(true)));
        assert!(matches!(turns[MAX_INFLIGHT], Turn::Render(false)));
        assert_eq!(c.shared.inflight.lock().unwrap().len(), MAX_INFLIGHT);
        // Asking again for a registered page waits for it.
        assert!(matches!(c.shared.turn(&keys[0]), Turn::Wait(_)));
    }

    #[test]
    fn keys_hold_only_what_the_route_reads() {
        let k = |p: &str, q: &str| key(p, Some(q));
        // Unknown parameters and the prefix make no difference.
        assert_eq!(
            k("/api/v1/posts", "sort=new&utm=1&x=2"),
            k("/posts", "sort=new")
        );
        assert_eq!(
            k("/posts", "sort=new&spotlight=datamark"),
            k("/posts", "sort=new")
        );
        // Order, encoding, case, aliases and clamping are resolved the way the handlers do.
        assert_eq!(
            k("/posts", "limit=100&sort=new"),
            k("/posts", "sort=%20NEW&limit=1000")
        );
        assert_eq!(k("/posts", "sort=sideways"), k("/posts", ""));
        assert_eq!(k("/posts/x", "sort=sideways"), k("/posts/x", "sort=best"));
        assert_eq!(k("/posts", "t=all&sort=top"), k("/posts", "sort=top"));
        assert_eq!(
            k("/posts", "page=3&limit=10"),
            k("/posts", "offset=20&limit=10")
        );
        assert_eq!(
            k("/search", "q=a+b&limit=500"),
            k("/search", "limit=50&q=a%20b")
        );
        // What changes the answer stays apart.
        assert_ne!(k("/posts", "sort=new"), k("/posts", "sort=top"));
        assert_ne!(k("/posts", ""), k("/posts", "sort=new"));
        assert_ne!(k("/posts", ""), k("/posts", "include_quarantined=true"));
        assert_ne!(k("/posts", "author=a"), k("/posts", "submolt=a"));
        assert_ne!(
            k("/posts/x/comments", ""),
            k("/posts/x/comments", "sort=new")
        );
        assert_ne!(
            k("/posts/x/comments", "sort=top"),
            k("/posts/x", "sort=top")
        );
        assert_ne!(k("/posts/x", ""), k("/posts/y", ""));
        assert_ne!(k("/search", "q=a"), k("/search", "q=a&type=posts"));
        assert_ne!(k("/search", "q=a"), k("/search", "q=a "));
        // Parameters a route does not read are left out.
        assert_eq!(k("/search", "q=a&sort=new&t=day"), k("/search", "q=a"));
        assert_eq!(
            k("/submolts/general/feed", "author=x&q=y"),
            k("/submolts/general/feed", "")
        );
        // What the handler refuses is not cached; nor is anything else.
        for (p, q) in [
            ("/posts", "sort=new&sort=top"),
            ("/posts", "limit=-1"),
            ("/posts", "cursor=garbage"),
            ("/posts", "offset=100001"),
            ("/posts", "q=%FF"),
            ("/search", "q=a&include_quarantined=maybe"),
            ("/posts/", ""),
            ("/api/v1posts", ""),
            ("/agents/profile", "name=x"),
            ("/feed", ""),
        ] {
            assert_eq!(k(p, q), None, "{p}?{q}");
        }
    }

    #[test]
    fn cursors_are_keyed_by_what_they_hold() {
        use tidepool_core::cursor::Cursor;
        let now = tidepool_core::time::now_ms();
        let k = |p: &str, q: String| key(p, Some(&q)).unwrap();
        let a = Cursor::keyset("posts.new", 5.0, 9, now).encode();
        // Padding and the parameters a cursor overrides make no difference.
        assert_eq!(
            k("/posts", format!("sort=new&cursor={a}")),
            k("/posts", format!("sort=new&cursor={a}==&offset=40&page=2"))
        );
        // Another moment, or the same position issued by another listing (which the
        // handler refuses), is another page.
        let later = Cursor::keyset("posts.new", 5.0, 9, now - 1).encode();
        let other = Cursor::keyset("posts.top", 5.0, 9, now).encode();
        for c in [later, other] {
            assert_ne!(
                k("/posts", format!("sort=new&cursor={a}")),
                k("/posts", format!("sort=new&cursor={c}"))
            );
        }
        // An offset cursor is not the plain offset (the handler checks its tag).
        assert_ne!(
            k(
                "/search",
                format!("q=x&cursor={}", Cursor::at_offset("search", 20).encode())
            ),
            k("/search", "q=x&offset=20".to_owned())
        );
    }
}
