//! tidepool-app: the one door to tidepool's operations.
//!
//! Every operation, reads included, lives in [`ops`] with its rules: who may act,
//! validation into domain types, rate limits, the guard, audit and cache invalidation.
//! The REST API, the web pages and the CLI all call these; none of them calls a store.
//! Failures are an [`AppError`], which knows nothing of HTTP: the server maps its kinds
//! to status codes.

pub mod caller;
pub mod config;
pub mod counters;
pub mod error;
pub mod ops;
pub mod ratelimit;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tidepool_core::credentials::{CredentialHasher, domain};
use tidepool_core::model::agents::AgentStatus;
use tidepool_store::Store;

pub use caller::Caller;
pub use config::{
    Config, ConnectionLimits, DatabaseFile, FileConfig, MetricsConfig, WebhookConfig,
};
pub use error::{AppError, AppResult, ErrorKind};
pub use ops::too_many;
use ratelimit::{Decision, Limit, Limiter};

/// What the app tells the process it runs in, for state the app does not own.
pub trait Hooks: Send + Sync {
    /// Public content changed (a post or comment deleted, moderated, an agent suspended
    /// or deleted): caches of rendered listings must drop it now, not after their TTL.
    fn content_changed(&self);
}

/// Hooks that do nothing (a process without caches: the CLI, tests).
pub struct NoHooks;

impl Hooks for NoHooks {
    fn content_changed(&self) {}
}

/// The application: what every operation needs, and nothing of HTTP.
pub struct App {
    /// Where everything is kept.
    pub store: Arc<dyn Store>,
    /// Keyed hashes of keys, tokens and codes (the server secret).
    pub hasher: CredentialHasher,
    /// Seals direct messages at rest, with a key derived from the server secret.
    pub sealer: tidepool_core::sealing::Sealer,
    /// Signs identity tokens for third-party apps, with a key derived from the secret.
    pub identity: tidepool_core::identity::IdentitySigner,
    /// The settings (without the backend's database settings; see [`Config`]).
    pub config: Config,
    /// Where rate-limit hits are counted.
    pub limiter: Arc<dyn Limiter>,
    /// Content safety for every text agents submit.
    pub guard: tidepool_guard::Guard,
    /// Texts scanned by the guard since start-up (a scan is the costliest step of a
    /// write; tests use this to prove throttled requests cost none).
    pub guard_scans: AtomicU64,
    /// Guard verdicts and findings, and refusals for want of the shared rate-limit count
    /// (read by the server's `/metrics`).
    pub counters: Arc<counters::Counters>,
    /// Recently seen API keys (by keyed hash) and who they belong to.
    pub keys: KeyCache,
    /// One login at a time per account for addresses that have failed on it.
    pub login_queues: LoginQueues,
    /// Caches and other state of the process that must hear of changes.
    pub hooks: Arc<dyn Hooks>,
}

impl App {
    /// An application on `store`, hashing with `hasher`, counting in `limiter`. The key
    /// cache's TTL depends on whether several nodes share the database
    /// (`config.database.is_some()`).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        hasher: CredentialHasher,
        limiter: Arc<dyn Limiter>,
        hooks: Arc<dyn Hooks>,
    ) -> Self {
        let keys = if config.database.is_some() {
            KeyCache::with_ttls(KeyCache::SHARED_TTL, KeyCache::NOTIFIED_TTL)
        } else {
            KeyCache::with_ttl(KeyCache::TTL)
        };
        Self {
            store,
            sealer: tidepool_core::sealing::Sealer::new(&hasher),
            identity: tidepool_core::identity::IdentitySigner::new(&hasher),
            hasher,
            guard: tidepool_guard::Guard::new(config.guard.clone()),
            guard_scans: AtomicU64::new(0),
            counters: Arc::default(),
            keys,
            login_queues: LoginQueues::default(),
            config,
            limiter,
            hooks,
        }
    }

    /// The agent an API key belongs to, refused if unknown, revoked or suspended.
    /// Recently seen keys come from [`KeyCache`] without a store read.
    /// The rest of the request (see [`tidepool_store::consistency`]) acts for this agent,
    /// so it reads its own writes even where reads go to replicas.
    pub async fn authenticate(&self, token: &str) -> AppResult<Caller> {
        let hash = self.hasher.hash(domain::API_KEY, token);
        if let Some(caller) = self.keys.get(&hash) {
            identify_agent(&caller);
            return caller.check_standing();
        }
        let generation = self.keys.generation();
        let found = self.store.agent_by_key_hash(&hash).await?;
        let Some((agent, scope)) = found else {
            return Err(AppError::unauthorized("Invalid API key")
                .with_hint("The key is unknown, revoked or rotated. Keys are shown once, at registration or rotation."));
        };
        let caller = Caller { agent, scope };
        // Only claimed agents are cached: an unclaimed agent polls for its claim and must
        // see it (made by the claim page or `tidepool admin claim`) on the very next
        // request.
        if caller.agent.status == AgentStatus::Claimed {
            self.keys.put(hash, caller.clone(), generation);
        }
        identify_agent(&caller);
        caller.check_standing()
    }

    /// The caller behind a key as far as the key cache knows, without a store read
    /// (`None`: not seen lately, or suspended). For decisions that may be wrong for a
    /// moment, such as whether a cached page may be served.
    pub fn cached_caller(&self, token: &str) -> Option<Caller> {
        self.keys
            .get(&self.hasher.hash(domain::API_KEY, token))
            .filter(|c| c.agent.status != AgentStatus::Suspended)
    }

    /// Counts one request against the general limits: a ceiling per address (`ip`, a
    /// rate-limit subject), then reads or writes per key (`token`) or, without one, per
    /// address. The caller answers a refusal (see
    /// [`too_many`]) and reports the decision's counts.
    pub async fn limit_request(&self, token: Option<&str>, ip: &str, is_read: bool) -> Decision {
        let limits = &self.config.limits;
        let limit = if is_read { limits.reads } else { limits.writes };
        let subject = match token {
            // A prefix of the keyed hash: identifies the key without holding it.
            Some(token) => format!(
                "key:{}",
                hex::encode(&self.hasher.hash(domain::API_KEY, token)[..12])
            ),
            None => format!("anon:{ip}"),
        };
        let class = if is_read { "read" } else { "write" };
        let now = tidepool_core::time::now_ms();
        let per_ip = self
            .limiter
            .hit(&format!("ip:{ip}"), limits.per_ip, now)
            .await;
        if per_ip.allowed {
            self.limiter
                .hit(&format!("{class}:{subject}"), limit, now)
                .await
        } else {
            per_ip
        }
    }

    /// Stops the store: flushes every queued write (on a blocking thread, as the store's
    /// shutdown waits for its writer).
    pub async fn shutdown(&self) {
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
    }

    /// Counts a hit against `limit` for `key`. The returned guard gives the hit back if
    /// dropped before [`LimitGuard::keep`], so a request that fails costs the agent nothing.
    pub async fn take(&self, key: String, limit: Limit) -> Result<LimitGuard, Decision> {
        if !self.config.rate_limits_enabled {
            return Ok(LimitGuard {
                limiter: None,
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
                limiter: Some(self.limiter.clone()),
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

/// Names the caller's agent as the reader of the current request.
fn identify_agent(caller: &Caller) {
    use tidepool_store::consistency::{Reader, identify};
    identify(Reader::Agent(caller.agent.id));
}

/// A counted hit that is refunded unless kept.
pub struct LimitGuard {
    limiter: Option<Arc<dyn Limiter>>,
    key: String,
    limit: Limit,
    /// Hits left in the window after this one.
    pub remaining: u32,
    /// Counted by this node alone because the shared count was unreachable.
    pub degraded: bool,
}

impl LimitGuard {
    /// Keeps the hit: the request it allowed succeeded.
    pub fn keep(mut self) {
        self.limiter = None;
    }
}

impl Drop for LimitGuard {
    fn drop(&mut self) {
        if let Some(limiter) = self.limiter.take() {
            let key = std::mem::take(&mut self.key);
            let limit = self.limit;
            // A shared refund is a database round trip: it must not block the dropping
            // request, and a request is only ever dropped inside the runtime.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { limiter.refund(&key, limit).await });
            }
        }
    }
}

/// Per-account turns for logins from failing addresses (see `ops::owners::log_in`).
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
/// table. Every change to a key or an agent's standing made by this process
/// ([`KeyCache::invalidate`]: rotation, revocation, claim, suspension) drops the entries at
/// once, so a revoked key stops working on the next request.
///
/// Changes made by another process (`tidepool admin`, another node sharing the database)
/// are seen within the TTL: [`KeyCache::TTL`] on one node, [`KeyCache::SHARED_TTL`] when
/// several nodes share a database, so a key revoked through one node is refused by every
/// other within a second. With a shared database each node also hears the others'
/// changes as they commit ([`KeyCache::invalidate_agent`], from PostgreSQL's `NOTIFY`);
/// while its listener proves it is caught up ([`KeyCache::caught_up`]: every change
/// committed before that instant has been applied), entries may live
/// [`KeyCache::NOTIFIED_TTL`] instead. The proof must be younger than the short TTL, so
/// a listener that is down, hung or never started leaves every entry on the short TTL:
/// revocation stays visible within [`KeyCache::SHARED_TTL`] whatever happens to it.
pub struct KeyCache {
    ttl: std::time::Duration,
    notified_ttl: std::time::Duration,
    /// Raised by every invalidation: a lookup that raced with one is not stored.
    generation: std::sync::atomic::AtomicU64,
    /// When the listener last proved itself caught up, in nanoseconds after `epoch`
    /// (0: never).
    caught_up: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
    map: std::sync::Mutex<
        std::collections::HashMap<[u8; 32], (crate::caller::Caller, std::time::Instant)>,
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
        Self::with_ttls(ttl, ttl)
    }

    /// A cache whose entries live `ttl`, or up to `notified_ttl` while a listener proves
    /// it hears every change ([`KeyCache::caught_up`]).
    pub fn with_ttls(ttl: std::time::Duration, notified_ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            notified_ttl: notified_ttl.max(ttl),
            generation: std::sync::atomic::AtomicU64::new(0),
            caught_up: std::sync::atomic::AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            map: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// One node: only `tidepool admin` changes keys behind the server's back.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(2);
    /// Several nodes, when this node is not sure it hears the others: half the one-second
    /// promise for revocations made elsewhere (a key lookup is one indexed read, so a busy
    /// agent costs two a second at most).
    pub const SHARED_TTL: std::time::Duration = std::time::Duration::from_millis(500);
    /// Several nodes, while the listener proves it hears every change: other nodes'
    /// changes arrive as notifications, so the TTL only bounds what changes without one
    /// (SQL typed by hand); a busy agent costs one lookup in five seconds per node.
    pub const NOTIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(5);
    /// Past this many entries the cache starts over (bounded memory under key floods).
    const MAX: usize = 100_000;

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<[u8; 32], (crate::caller::Caller, std::time::Instant)>,
    > {
        match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether the listener's last proof is recent enough for entries to outlive the short
    /// TTL: every change committed more than the short TTL ago has then been applied.
    fn notified(&self) -> bool {
        let at = self.caught_up.load(std::sync::atomic::Ordering::Acquire);
        if at == 0 {
            return false;
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        u128::from(now.saturating_sub(at)) < self.ttl.as_nanos()
    }

    /// The caller a key (by keyed hash) belonged to, if seen within the TTL and not
    /// invalidated since.
    pub fn get(&self, hash: &[u8; 32]) -> Option<crate::caller::Caller> {
        let map = self.lock();
        let (caller, at) = map.get(hash)?;
        let age = at.elapsed();
        (age < self.ttl || (age < self.notified_ttl && self.notified())).then(|| caller.clone())
    }

    /// Stores a lookup made while the generation was `generation` (read before the lookup:
    /// if an invalidation came in between, the lookup may predate it and is not stored).
    pub fn put(&self, hash: [u8; 32], caller: crate::caller::Caller, generation: u64) {
        let mut map = self.lock();
        if self.generation.load(std::sync::atomic::Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(hash, (caller, std::time::Instant::now()));
    }

    /// The current generation (read it before a lookup that [`KeyCache::put`] stores).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets every cached key: call after any change to keys or an agent's status.
    pub fn invalidate(&self) {
        let mut map = self.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        map.clear();
    }

    /// Forgets the cached keys of agent `agent_id` (another node changed its keys, its
    /// standing or its owner).
    pub fn invalidate_agent(&self, agent_id: i64) {
        let mut map = self.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        map.retain(|_, (caller, _)| caller.agent.id != agent_id);
    }

    /// Every change committed before `through` has been applied to this cache (the
    /// listener's proof; see the type's docs).
    pub fn caught_up(&self, through: std::time::Instant) {
        let at = u64::try_from(through.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX)
            // 0 means "never".
            .max(1);
        self.caught_up
            .fetch_max(at, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use tidepool_core::model::agents::{Agent, AgentStatus, KeyScope};

    use super::*;

    fn caller(id: i64) -> Caller {
        Caller {
            agent: Agent {
                id,
                uuid: format!("uuid-{id}"),
                name: format!("Agent{id}"),
                description: String::new(),
                metadata: "{}".into(),
                avatar_url: None,
                karma: 0,
                follower_count: 0,
                following_count: 0,
                post_count: 0,
                comment_count: 0,
                subscription_count: 0,
                vote_weight: 1.0,
                status: AgentStatus::Claimed,
                created_at: 0,
                claimed_at: Some(0),
                last_active: 0,
                owner_id: None,
            },
            scope: KeyScope::Full,
        }
    }

    fn cache() -> KeyCache {
        KeyCache::with_ttls(Duration::from_millis(60), Duration::from_secs(60))
    }

    #[test]
    fn entries_outlive_the_short_ttl_only_while_the_listener_keeps_proving_itself() {
        let keys = cache();
        keys.put([1; 32], caller(1), keys.generation());
        std::thread::sleep(Duration::from_millis(80));
        assert!(keys.get(&[1; 32]).is_none(), "never proven: short TTL");

        keys.put([1; 32], caller(1), keys.generation());
        let deadline = Instant::now() + Duration::from_millis(200);
        while Instant::now() < deadline {
            keys.caught_up(Instant::now());
            assert!(keys.get(&[1; 32]).is_some(), "proven: the long TTL holds");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The proofs stop (listener down or hung): within the short TTL the entry goes.
        std::thread::sleep(Duration::from_millis(80));
        assert!(keys.get(&[1; 32]).is_none(), "stale proof: short TTL again");
    }

    #[test]
    fn an_agent_is_dropped_alone_and_a_racing_lookup_is_not_stored() {
        let keys = cache();
        let g = keys.generation();
        keys.put([1; 32], caller(1), g);
        keys.put([2; 32], caller(2), g);
        // A lookup for agent 1 started here, before the invalidation below...
        let racing = keys.generation();
        keys.invalidate_agent(1);
        assert!(keys.get(&[1; 32]).is_none());
        assert_eq!(keys.get(&[2; 32]).unwrap().agent.id, 2);
        // ...and may have read the row before the change: it must not be cached.
        keys.put([1; 32], caller(1), racing);
        assert!(keys.get(&[1; 32]).is_none());
        keys.put([1; 32], caller(1), keys.generation());
        assert!(keys.get(&[1; 32]).is_some());
        keys.invalidate();
        assert!(keys.get(&[1; 32]).is_none() && keys.get(&[2; 32]).is_none());
    }
}
