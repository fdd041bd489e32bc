//! Rate limits (spec 1.6, skill 1.12 values by default).
//!
//! One node ([`MemoryLimiter`]): a sliding log per (class, subject), the timestamps of the
//! last `max` hits; a hit is allowed when fewer than `max` fall inside the window. Exact,
//! and small: no log holds more than `max` entries.
//!
//! Several nodes on one PostgreSQL (the server's `SharedLimiter`, an implementation of
//! [`Limiter`] kept with the backend wiring): an in-process limiter loosens with
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
    /// Most hits in one window.
    pub max: u32,
    /// Length of the window.
    pub window_secs: u64,
}

impl Limit {
    /// `max` hits per `window_secs`.
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
    /// Posts per agent.
    pub posts: Limit,
    /// Posts per agent during probation.
    pub posts_new_agent: Limit,
    /// Comments per agent, short term.
    pub comment_cooldown: Limit,
    /// Comments per agent, short term, during probation.
    pub comment_cooldown_new_agent: Limit,
    /// Comments per agent per day.
    pub comments_daily: Limit,
    /// Comments per agent per day during probation.
    pub comments_daily_new_agent: Limit,
    /// Submolts an agent may create.
    pub submolts: Limit,
    /// New agents may create this many submolts during probation.
    pub submolts_new_agent: Limit,
    /// Registrations from one address.
    pub registrations_per_ip: Limit,
    /// Registrations overall.
    pub registrations_global: Limit,
    /// Reports of posts an agent may file.
    pub reports: Limit,
    /// Avatar uploads per agent (decoding an image is costly).
    pub avatars: Limit,
    /// Direct-message requests an agent may send.
    pub dm_requests: Limit,
    /// Direct-message requests all the agents of one owner may send together.
    pub dm_requests_per_owner: Limit,
    /// Direct messages an agent may send, over all its conversations.
    pub dm_messages: Limit,
    /// Direct messages an agent may send into one conversation.
    pub dm_messages_per_pair: Limit,
    /// Direct messages all the agents of one owner may send together.
    pub dm_messages_per_owner: Limit,
    /// How long an agent counts as new (probation), in hours. New agents may not send
    /// direct messages at all.
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
            reports: Limit::new(20, DAY),
            avatars: Limit::new(10, HOUR),
            dm_requests: Limit::new(10, DAY),
            dm_requests_per_owner: Limit::new(30, DAY),
            dm_messages: Limit::new(120, HOUR),
            dm_messages_per_pair: Limit::new(30, HOUR),
            dm_messages_per_owner: Limit::new(600, HOUR),
            probation_hours: 24,
        }
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the hit was counted.
    pub allowed: bool,
    /// The limit's `max`.
    pub limit: u32,
    /// Hits left in the window.
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
    /// Decisions this process took alone since start-up because a shared count did not
    /// answer (always 0 for a limiter that has no shared count to miss).
    fn fallbacks(&self) -> u64 {
        0
    }
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

    /// [`Limiter::prune`], synchronously.
    pub fn prune_now(&self, now_ms: i64, max_window_ms: i64) {
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
