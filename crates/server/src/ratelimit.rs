//! The rate limiter several nodes share: an implementation of the app's
//! [`Limiter`](tidepool_app::ratelimit::Limiter) on the PostgreSQL database they share. It
//! stays in the server because it is backend wiring: the app counts through the trait and
//! never names PostgreSQL.
//!
//! In the database the count is GCRA (one statement, one row per bucket in an unlogged
//! table): the same burst of `max` and the same long-run rate of `max` per window as the
//! in-process sliding log, except that a spent burst comes back gradually (one hit per
//! `window / max`) instead of all at once. When the database does not answer in time, each
//! node falls back to its own log with a share of `max / nodes`.

pub use tidepool_app::ratelimit::{
    Decision, Limit, Limiter, MemoryLimiter, RateLimits, ip_subject,
};

/// Limits shared by every node on one PostgreSQL database (GCRA, see the module docs),
/// with a per-node fallback when the database does not answer within `timeout`.
pub struct SharedLimiter {
    db: tidepool_store_pg::PgPool,
    fallback: MemoryLimiter,
    /// How many nodes share the limits: the fallback allows each `max / nodes`.
    nodes: u32,
    timeout: std::time::Duration,
    /// Decisions taken by the fallback since start-up (exported as a metric).
    fallbacks: std::sync::atomic::AtomicU64,
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
        let checked =
            tidepool_store_pg::gcra_hit_within(&self.db, key, t, limit.max, self.timeout).await;
        match checked {
            Ok(Some(state)) => {
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
            Err(e) => {
                tracing::warn!(error = %e, "shared rate limiter failed; deciding on this node's share");
                self.fall_back(key, limit, now_ms)
            }
            Ok(None) => {
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

    fn fallbacks(&self) -> u64 {
        self.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
    }
}
