//! State shared by every request.

use std::sync::Arc;

use tidepool_core::credentials::CredentialHasher;
use tidepool_store::Store;

use crate::config::Config;

use crate::ratelimit::{Decision, Limit, Limiter};
use crate::skill::SkillFiles;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub hasher: CredentialHasher,
    pub config: Config,
    pub limiter: Arc<dyn Limiter>,
    /// The database several nodes share (`None`: the embedded store).
    pub shared: Option<tidepool_store_pg::PgPool>,
    pub skills: SkillFiles,
    /// Content safety for every text agents submit.
    pub guard: tidepool_guard::Guard,
    /// Texts scanned by the guard since start-up (a scan is the costliest step of a
    /// write; tests use this to prove throttled requests cost none).
    pub guard_scans: std::sync::atomic::AtomicU64,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: String,
    /// Recently seen API keys (by keyed hash) and who they belong to.
    pub keys: KeyCache,
    /// Public listings rendered in the last moment.
    pub pages: crate::cache::PageCache,
    /// One login at a time per account for addresses that have failed on it.
    pub login_queues: LoginQueues,
}

/// Per-account turns for logins from failing addresses (see `service::owners::log_in`).
#[derive(Default)]
pub struct LoginQueues {
    queues: std::sync::Mutex<
        std::collections::HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>,
    >,
}

impl LoginQueues {
    /// Waits for this account's turn; the turn ends when the guard is dropped.
    pub async fn turn(&self, account: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let queue = {
            let mut map = match self.queues.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            // Accounts nobody is waiting on leave the map (bounded by logins in flight).
            if map.len() > 1_024 {
                map.retain(|_, w| w.strong_count() > 0);
            }
            match map.get(account).and_then(std::sync::Weak::upgrade) {
                Some(q) => q,
                None => {
                    let q = std::sync::Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(account.to_owned(), std::sync::Arc::downgrade(&q));
                    q
                }
            }
        };
        queue.lock_owned().await
    }
}

/// A small cache of key lookups, so a busy agent's requests do not each read the key
/// table. Entries live `ttl` at most, and every change to a key or an agent's standing
/// made by this process ([`KeyCache::invalidate`]: rotation, revocation, claim,
/// suspension) drops them all at once, so a revoked key stops working on the next
/// request. Changes made by another process (`tidepool admin`, another node sharing the
/// database) are seen within the TTL: [`KeyCache::TTL`] on one node, [`KeyCache::SHARED_TTL`]
/// when several nodes share a database, so a key revoked through one node is refused by
/// every other within a second.
pub struct KeyCache {
    ttl: std::time::Duration,
    generation: std::sync::atomic::AtomicU64,
    map: std::sync::Mutex<
        std::collections::HashMap<[u8; 32], (crate::extract::Caller, std::time::Instant, u64)>,
    >,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::with_ttl(Self::TTL)
    }
}

impl KeyCache {
    /// A cache whose entries live `ttl` at most.
    pub fn with_ttl(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            generation: std::sync::atomic::AtomicU64::new(0),
            map: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// One node: only `tidepool admin` changes keys behind the server's back.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(2);
    /// Several nodes: half the one-second promise for revocations made elsewhere (a key
    /// lookup is one indexed read, so a busy agent costs two a second at most).
    pub const SHARED_TTL: std::time::Duration = std::time::Duration::from_millis(500);
    /// Past this many entries the cache starts over (bounded memory under key floods).
    const MAX: usize = 100_000;

    pub fn get(&self, hash: &[u8; 32]) -> Option<crate::extract::Caller> {
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        let map = self.map.lock().ok()?;
        let (caller, at, g) = map.get(hash)?;
        (*g == generation && at.elapsed() < self.ttl).then(|| caller.clone())
    }

    /// Stores a lookup made while the generation was `generation` (read before the lookup,
    /// so a change that raced with it is never cached as current).
    pub fn put(&self, hash: [u8; 32], caller: crate::extract::Caller, generation: u64) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= Self::MAX {
                map.clear();
            }
            map.insert(hash, (caller, std::time::Instant::now(), generation));
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets every cached key: call after any change to keys or an agent's status.
    pub fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Counts a hit against `limit` for `key`. The returned guard gives the hit back if
    /// dropped before [`LimitGuard::keep`], so a request that fails costs the agent nothing.
    pub async fn take(&self, key: String, limit: Limit) -> Result<LimitGuard, Decision> {
        if !self.config.rate_limits_enabled {
            return Ok(LimitGuard {
                state: None,
                key,
                limit,
                remaining: limit.max,
                degraded: false,
            });
        }
        let d = self
            .limiter
            .hit(&key, limit, tidepool_core::time::now_ms())
            .await;
        if d.allowed {
            Ok(LimitGuard {
                state: Some(self.clone()),
                key,
                limit,
                remaining: d.remaining,
                degraded: d.degraded,
            })
        } else {
            Err(d)
        }
    }
}

/// A counted hit that is refunded unless kept.
pub struct LimitGuard {
    state: Option<AppState>,
    key: String,
    limit: Limit,
    /// Hits left in the window after this one.
    pub remaining: u32,
    /// Counted by this node alone because the shared count was unreachable.
    pub degraded: bool,
}

impl LimitGuard {
    pub fn keep(mut self) {
        self.state = None;
    }
}

impl Drop for LimitGuard {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            let key = std::mem::take(&mut self.key);
            let limit = self.limit;
            // A shared refund is a database round trip: it must not block the dropping
            // request, and a request is only ever dropped inside the runtime.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { state.limiter.refund(&key, limit).await });
            }
        }
    }
}
