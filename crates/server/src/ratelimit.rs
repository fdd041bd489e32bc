//! Rate limits (spec 1.6, skill 1.12 values by default).
//!
//! One node ([`MemoryLimiter`]): a sliding log per (class, subject), the timestamps of the
//! last `max` hits; a hit is allowed when fewer than `max` fall inside the window. Exact,
//! and small: no log holds more than `max` entries.
//!
//! Several nodes on one PostgreSQL ([`SharedLimiter`]): an in-process limiter loosens with
//! every node added (N nodes would allow N times the limit), so the count lives in the
//! database, as GCRA (one statement, one row per bucket in an unlogged table): the same
//! burst of `max` and the same long-run rate of `max` per window, except that a spent burst
//! comes back gradually (one hit per `window / max`) instead of all at once. When the
//! database does not answer in time, each node falls back to its own log with a share of
//! `max / nodes`, and says so in [`Decision::degraded`]; the operations that must never be
//! loosened (registration, key issuance, claims) refuse instead.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use serde::Deserialize;

/// `max` hits per `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Limit {
    pub max: u32,
    pub window_secs: u64,
}

impl Limit {
    pub const fn new(max: u32, window_secs: u64) -> Self {
        Self { max, window_secs }
    }
}

/// Every limit tidepool applies. Configurable in `tidepool.toml` under `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// GET requests per key (or per IP without a key).
    pub reads: Limit,
    /// Other requests per key (or per IP).
    pub writes: Limit,
    /// All requests from one IP (/64 for IPv6), whatever keys they carry.
    pub per_ip: Limit,
    pub posts: Limit,
    pub posts_new_agent: Limit,
    pub comment_cooldown: Limit,
    pub comment_cooldown_new_agent: Limit,
    pub comments_daily: Limit,
    pub comments_daily_new_agent: Limit,
    pub submolts: Limit,
    /// New agents may create this many submolts during probation.
    pub submolts_new_agent: Limit,
    pub registrations_per_ip: Limit,
    pub registrations_global: Limit,
    /// How long an agent counts as new (probation), in hours.
    pub probation_hours: i64,
}

impl Default for RateLimits {
    fn default() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 3600;
        const DAY: u64 = 24 * HOUR;
        Self {
            reads: Limit::new(60, MIN),
            writes: Limit::new(30, MIN),
            per_ip: Limit::new(600, MIN),
            posts: Limit::new(1, 30 * MIN),
            posts_new_agent: Limit::new(1, 2 * HOUR),
            comment_cooldown: Limit::new(1, 20),
            comment_cooldown_new_agent: Limit::new(1, 60),
            comments_daily: Limit::new(50, DAY),
            comments_daily_new_agent: Limit::new(20, DAY),
            submolts: Limit::new(1, HOUR),
            submolts_new_agent: Limit::new(1, DAY),
            registrations_per_ip: Limit::new(10, HOUR),
            registrations_global: Limit::new(1000, HOUR),
            probation_hours: 24,
        }
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix milliseconds when the oldest counted hit leaves the window.
    pub reset_at_ms: i64,
    /// Seconds until a hit would be allowed again (0 if allowed).
    pub retry_after_secs: u64,
    /// The shared count could not be reached: this node decided alone, on its share of the
    /// limit. Registration, key issuance and claims refuse such decisions.
    pub degraded: bool,
}

/// A place to count hits.
#[async_trait::async_trait]
pub trait Limiter: Send + Sync {
    /// Counts a hit for `key` under `limit` if allowed; reports either way.
    async fn hit(&self, key: &str, limit: Limit, now_ms: i64) -> Decision;
    /// Takes back the most recent hit for `key` under `limit` (the request it allowed then
    /// failed).
    async fn refund(&self, key: &str, limit: Limit);
    /// Drops counts whose every hit is older than `max_window_ms`.
    async fn prune(&self, now_ms: i64, max_window_ms: i64);
}

const SHARDS: usize = 16;

/// In-process sliding-log limiter, sharded to keep lock contention low.
pub struct MemoryLimiter {
    shards: Vec<Mutex<HashMap<String, VecDeque<i64>>>>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl MemoryLimiter {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, VecDeque<i64>>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }
}

impl MemoryLimiter {
    /// [`Limiter::hit`], synchronously.
    pub fn hit_now(&self, key: &str, limit: Limit, now_ms: i64) -> Decision {
        let window_ms = (limit.window_secs * 1000) as i64;
        let Ok(mut map) = self.shard(key).lock() else {
            // A poisoned shard means a panic elsewhere; fail open rather than lock out everyone.
            return Decision {
                allowed: true,
                limit: limit.max,
                remaining: limit.max,
                reset_at_ms: now_ms,
                retry_after_secs: 0,
                degraded: false,
            };
        };
        let log = map.entry(key.to_owned()).or_default();
        while log.front().is_some_and(|&t| t <= now_ms - window_ms) {
            log.pop_front();
        }
        let allowed = (log.len() as u32) < limit.max;
        if allowed {
            log.push_back(now_ms);
        }
        let reset_at_ms = log.front().map_or(now_ms + window_ms, |&t| t + window_ms);
        let retry_after_secs = if allowed {
            0
        } else {
            ((reset_at_ms - now_ms).max(0) as u64).div_ceil(1000).max(1)
        };
        Decision {
            allowed,
            limit: limit.max,
            remaining: limit.max.saturating_sub(log.len() as u32),
            reset_at_ms,
            retry_after_secs,
            degraded: false,
        }
    }

    /// [`Limiter::refund`], synchronously.
    pub fn refund_now(&self, key: &str) {
        if let Ok(mut map) = self.shard(key).lock()
            && let Some(log) = map.get_mut(key)
        {
            log.pop_back();
        }
    }

    fn prune_now(&self, now_ms: i64, max_window_ms: i64) {
        for shard in &self.shards {
            if let Ok(mut map) = shard.lock() {
                map.retain(|_, log| log.back().is_some_and(|&t| t > now_ms - max_window_ms));
            }
        }
    }
}

#[async_trait::async_trait]
impl Limiter for MemoryLimiter {
    async fn hit(&self, key: &str, limit: Limit, now_ms: i64) -> Decision {
        self.hit_now(key, limit, now_ms)
    }

    async fn refund(&self, key: &str, _limit: Limit) {
        self.refund_now(key);
    }

    async fn prune(&self, now_ms: i64, max_window_ms: i64) {
        self.prune_now(now_ms, max_window_ms);
    }
}

/// Limits shared by every node on one PostgreSQL database (GCRA, see the module docs),
/// with a per-node fallback when the database does not answer within `timeout`.
pub struct SharedLimiter {
    db: tidepool_store_pg::PgPool,
    fallback: MemoryLimiter,
    /// How many nodes share the limits: the fallback allows each `max / nodes`.
    nodes: u32,
    timeout: std::time::Duration,
    /// Decisions taken by the fallback since start-up (exported as a metric).
    pub fallbacks: std::sync::atomic::AtomicU64,
}

impl SharedLimiter {
    /// The longest one check waits for the database before the node decides alone.
    pub const TIMEOUT: std::time::Duration = std::time::Duration::from_millis(50);

    pub fn new(db: tidepool_store_pg::PgPool, nodes: u32) -> Self {
        Self {
            db,
            fallback: MemoryLimiter::default(),
            nodes: nodes.max(1),
            timeout: Self::TIMEOUT,
            fallbacks: Default::default(),
        }
    }

    fn fall_back(&self, key: &str, limit: Limit, now_ms: i64) -> Decision {
        self.fallbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let share = Limit::new((limit.max / self.nodes).max(1), limit.window_secs);
        Decision {
            degraded: true,
            ..self.fallback.hit_now(key, share, now_ms)
        }
    }
}

/// The GCRA emission interval of `limit`: one hit per `window / max`.
fn interval(limit: Limit) -> std::time::Duration {
    std::time::Duration::from_millis(limit.window_secs.saturating_mul(1000)) / limit.max.max(1)
}

fn unix_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait::async_trait]
impl Limiter for SharedLimiter {
    async fn hit(&self, key: &str, limit: Limit, now_ms: i64) -> Decision {
        let t = interval(limit);
        let t_ms = i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1);
        let checked = tokio::time::timeout(
            self.timeout,
            tidepool_store_pg::gcra_hit(&self.db, key, t, limit.max),
        )
        .await;
        match checked {
            Ok(Ok(state)) => {
                // On the database's clock: the bucket is empty again at `tat`, and each
                // interval (or part of one) before it is one hit still counted.
                let (tat, now) = (unix_ms(state.tat), unix_ms(state.now));
                let ahead = (tat - now).max(0);
                let spent = u32::try_from((ahead + t_ms - 1) / t_ms).unwrap_or(u32::MAX);
                // The reset moment in the node's own clock, for the headers.
                let reset_at_ms = now_ms + ahead;
                if state.allowed {
                    Decision {
                        allowed: true,
                        limit: limit.max,
                        remaining: limit.max.saturating_sub(spent),
                        reset_at_ms,
                        retry_after_secs: 0,
                        degraded: false,
                    }
                } else {
                    // The next hit fits once the bucket has drained below the tolerance.
                    let tolerance = t_ms.saturating_mul(i64::from(limit.max.saturating_sub(1)));
                    let wait = (ahead - tolerance).max(1);
                    Decision {
                        allowed: false,
                        limit: limit.max,
                        remaining: 0,
                        reset_at_ms,
                        retry_after_secs: (wait as u64).div_ceil(1000).max(1),
                        degraded: false,
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "shared rate limiter failed; deciding on this node's share");
                self.fall_back(key, limit, now_ms)
            }
            Err(_) => {
                tracing::warn!("shared rate limiter timed out; deciding on this node's share");
                self.fall_back(key, limit, now_ms)
            }
        }
    }

    async fn refund(&self, key: &str, limit: Limit) {
        if let Err(e) = tidepool_store_pg::gcra_refund(&self.db, key, interval(limit)).await {
            tracing::warn!(error = %e, "could not refund a shared rate-limit hit");
        }
        self.fallback.refund_now(key);
    }

    async fn prune(&self, now_ms: i64, max_window_ms: i64) {
        // Idempotent, so every node may run it: no lease needed.
        if let Err(e) = tidepool_store_pg::gcra_prune(&self.db).await {
            tracing::warn!(error = %e, "could not prune the shared rate-limit table");
        }
        self.fallback.prune_now(now_ms, max_window_ms);
    }
}

/// The key for an IP address: IPv4 as is, IPv6 by its /64 (one host gets a whole /64).
pub fn ip_subject(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_log_allows_max_per_window() {
        let l = MemoryLimiter::default();
        let lim = Limit::new(2, 10);
        assert!(l.hit_now("k", lim, 0).allowed);
        assert!(l.hit_now("k", lim, 1000).allowed);
        let d = l.hit_now("k", lim, 2000);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 8);
        assert!(l.hit_now("k", lim, 10_001).allowed);
        assert!(l.hit_now("other", lim, 2000).allowed);
    }

    #[test]
    fn refund_gives_the_hit_back() {
        let l = MemoryLimiter::default();
        let lim = Limit::new(1, 60);
        assert!(l.hit_now("k", lim, 0).allowed);
        l.refund_now("k");
        assert!(l.hit_now("k", lim, 1).allowed);
    }

    #[test]
    fn ipv6_is_grouped_by_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(ip_subject(a), ip_subject(b));
        let m: std::net::IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_subject(m), "10.0.0.1");
    }
}
