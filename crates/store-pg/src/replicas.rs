//! Read replicas: one pool per replica, a lag sampler, and the choice of where each
//! read-only store call goes (docs/SCALE-OUT.md, "Read replicas").
//!
//! **Lag.** Every [`SAMPLE_INTERVAL`] the sampler reads the primary's WAL position
//! (`pg_current_wal_lsn()`) and keeps a short history of `(when, position)`; then it
//! reads each replica's replay position (`pg_last_wal_replay_lsn()`). A replica's lag is
//! the age of the newest primary sample it has replayed: if it has replayed everything
//! the primary had 300 ms ago but not what it had 200 ms ago, its lag is 300 ms. Unlike
//! `now() - pg_last_xact_replay_timestamp()` this stays near zero while the primary is
//! idle, and grows from the moment a write is missing (replay paused, a slow replica).
//!
//! **Routing.** A read may use a replica that answered the last sample, whose lag is
//! within the budget and whose replay position has reached the caller's floor:
//! [`tidepool_store::consistency`] names the caller, and each write of an identified
//! caller stores the primary's WAL insert position after the commit in `read_marks`
//! (an unlogged table on the primary, so every node sees it) for a window; a later
//! request of that caller looks its mark up once and reads from a replica only past it.
//! Otherwise the read goes to the primary. A read that fails on a replica is repeated on
//! the primary, and a connection failure takes the replica out until it answers again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tidepool_store::StoreError;
use tidepool_store::consistency;

use crate::{PgConfig, PgPool, Result, Sql, Type};

/// How often the sampler measures every replica's lag.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// A replica whose last good sample is older than this is not used (its sampler is stuck,
/// or the primary could not be sampled, so its lag is unknown).
const STALE_AFTER: Duration = Duration::from_secs(1);

/// Longest one sample query may take before its server counts as down.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Positions are WAL byte offsets (`pg_lsn - '0/0'`), which fit an int8 for ~9 EB of WAL.
const PRIMARY_POSITION: Sql = Sql::new("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8", &[]);

/// NULL on a server that is not in recovery (the URL names a primary, or it was promoted).
const REPLAY_POSITION: Sql = Sql::new(
    "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8",
    &[],
);

/// Run after a write committed: the insert position is at or past the end of that
/// commit's WAL record, so a replica that replayed up to it shows the write.
const MARK: Sql = Sql::new(
    "INSERT INTO read_marks AS m (reader, pos, until)
     VALUES ($1, (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8,
             now() + make_interval(secs => $2))
     ON CONFLICT (reader) DO UPDATE
        SET pos = greatest(m.pos, excluded.pos), until = excluded.until
     RETURNING pos",
    &[Type::TEXT, Type::FLOAT8],
);

const FLOOR: Sql = Sql::new(
    "SELECT pos FROM read_marks WHERE reader = $1 AND until > now()",
    &[Type::TEXT],
);

/// How one replica is doing, for metrics and `/ready`-like views ([`ReadStats`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStats {
    /// The replica's URL with any password replaced by `***`.
    pub url: String,
    /// It answered the last lag sample (as a standby) and no read failed on it since.
    pub healthy: bool,
    /// Reads may go to it now: healthy, sampled recently, lag within the budget.
    pub in_use: bool,
    /// Lag at the last good sample in milliseconds (a lower bound while it is behind
    /// everything the sampler remembers); `None` before the first good sample.
    pub lag_ms: Option<u64>,
    /// Reads it served since start-up.
    pub reads: u64,
    /// Reads that failed on it and were repeated on the primary.
    pub fallbacks: u64,
    /// Why it is not healthy, when it is not.
    pub error: Option<String>,
}

/// Where the store's replica-eligible reads went, and each replica's state
/// ([`crate::PgStore::read_stats`]). Counters are totals since start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadStats {
    /// The configured `replica_lag_budget_ms`.
    pub lag_budget_ms: u64,
    /// Replica-eligible reads served by the primary (no replica configured, none usable,
    /// or none caught up with the caller's own writes).
    pub primary_reads: u64,
    /// One entry per configured replica, in configuration order.
    pub replicas: Vec<ReplicaStats>,
}

#[derive(Debug, Default)]
struct ReplicaState {
    /// The statement-mode probe passed on this replica's connection path.
    probed: bool,
    healthy: bool,
    /// Its replay position at the last good sample.
    replay: u64,
    lag: Option<Duration>,
    within_budget: bool,
    sampled_at: Option<Instant>,
    error: Option<String>,
}

/// One configured replica.
pub(crate) struct Replica {
    url: String,
    pub(crate) pool: PgPool,
    reads: AtomicU64,
    fallbacks: AtomicU64,
    state: Mutex<ReplicaState>,
}

impl Replica {
    fn state(&self) -> MutexGuard<'_, ReplicaState> {
        match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// Its replay position, if reads may use it now.
    fn usable(&self) -> Option<u64> {
        let s = self.state();
        let fresh = s.sampled_at.is_some_and(|t| t.elapsed() <= STALE_AFTER);
        (s.healthy && s.within_budget && fresh).then_some(s.replay)
    }

    fn down(&self, why: String) {
        let mut s = self.state();
        if s.healthy || s.error.is_none() {
            tracing::warn!(replica = %self.url, error = %why, "read replica not used");
        }
        s.healthy = false;
        s.error = Some(why);
    }

    /// One lag sample against the primary's recent positions (oldest first).
    async fn sample(&self, history: &[(Instant, u64)], budget: Duration) {
        if !self.state().probed {
            match tokio::time::timeout(SAMPLE_TIMEOUT, self.pool.probe()).await {
                Ok(Ok(())) => self.state().probed = true,
                Ok(Err(e)) => return self.down(format!("start-up check: {e}")),
                Err(_) => return self.down("start-up check: no answer within 1 s".into()),
            }
        }
        let replay =
            match tokio::time::timeout(SAMPLE_TIMEOUT, self.pool.query_one(&REPLAY_POSITION, &[]))
                .await
            {
                Ok(Ok(row)) => match row.try_get::<_, Option<i64>>(0) {
                    Ok(Some(pos)) => u64::try_from(pos).unwrap_or(0),
                    Ok(None) => {
                        return self.down(
                            "not a standby: pg_last_wal_replay_lsn() is NULL (the URL names a \
                         primary, or the replica was promoted)"
                                .into(),
                        );
                    }
                    Err(e) => return self.down(format!("lag sample: {e}")),
                },
                Ok(Err(e)) => return self.down(format!("lag sample: {e}")),
                Err(_) => return self.down("lag sample: no answer within 1 s".into()),
            };
        let now = Instant::now();
        // The newest primary sample this replica has replayed tells how far behind it is.
        let (lag, within_budget) = match history.iter().rev().find(|(_, p)| *p <= replay) {
            Some((at, _)) => {
                let lag = now.saturating_duration_since(*at);
                (lag, lag <= budget)
            }
            // Behind everything remembered (or nothing remembered yet): over budget, and
            // at least as old as the oldest sample.
            None => (
                history
                    .first()
                    .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(*at)),
                false,
            ),
        };
        let mut s = self.state();
        if !s.healthy {
            tracing::info!(replica = %self.url, lag_ms = lag.as_millis() as u64, "read replica answers");
        }
        *s = ReplicaState {
            probed: true,
            healthy: true,
            replay,
            lag: Some(lag),
            within_budget,
            sampled_at: Some(now),
            error: None,
        };
    }

    fn stats(&self) -> ReplicaStats {
        let in_use = self.usable().is_some();
        let s = self.state();
        ReplicaStats {
            url: self.url.clone(),
            healthy: s.healthy,
            in_use,
            lag_ms: s
                .lag
                .map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
            reads: self.reads.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            error: s.error.clone(),
        }
    }
}

/// Where one read goes: the primary, or the replica whose pool it is.
pub(crate) struct Route<'a> {
    pub(crate) replica: Option<&'a Replica>,
}

/// The replicas of one store, with the primary they fall back to.
pub(crate) struct Replicas {
    primary: PgPool,
    set: Vec<Replica>,
    budget: Duration,
    /// How long a caller's write mark lasts (see [`Replicas::new`]).
    window: Duration,
    primary_reads: AtomicU64,
    next: AtomicUsize,
    stopped: AtomicBool,
}

impl Replicas {
    /// A pool per replica of `config` (nothing connects yet), falling back to `primary`.
    pub(crate) fn new(config: &PgConfig, primary: PgPool) -> Result<Self> {
        let set = config
            .replica_urls
            .iter()
            .map(|url| {
                let settings = config.for_replica(url);
                Ok(Replica {
                    url: settings.redacted_url(),
                    pool: PgPool::new(&settings)?,
                    reads: AtomicU64::new(0),
                    fallbacks: AtomicU64::new(0),
                    state: Mutex::new(ReplicaState::default()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let budget = Duration::from_millis(config.replica_lag_budget_ms);
        Ok(Self {
            primary,
            set,
            budget,
            // Once a write is older than budget + the longest a sample may be stale, every
            // replica still in use has it; the mark only needs to outlast that. Ten
            // seconds at least, as Rails and SCALE-OUT.md do.
            window: (budget + STALE_AFTER + SAMPLE_TIMEOUT).max(Duration::from_secs(10)),
            primary_reads: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        })
    }

    /// Starts the lag sampler (when there are replicas). It stops when the store is
    /// dropped or shut down.
    pub(crate) fn start(self: &Arc<Self>) {
        if self.set.is_empty() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut history: VecDeque<(Instant, u64)> = VecDeque::new();
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { break };
                if this.stopped.load(Ordering::Acquire) {
                    break;
                }
                this.sample(&mut history).await;
            }
        });
    }

    async fn sample(self: &Arc<Self>, history: &mut VecDeque<(Instant, u64)>) {
        match tokio::time::timeout(
            SAMPLE_TIMEOUT,
            self.primary.query_one(&PRIMARY_POSITION, &[]),
        )
        .await
        {
            Ok(Ok(row)) => match row.try_get::<_, i64>(0) {
                Ok(pos) => history.push_back((Instant::now(), u64::try_from(pos).unwrap_or(0))),
                Err(e) => {
                    tracing::warn!(error = %e, "replica lag: reading the primary's position");
                    return;
                }
            },
            // Without the primary's position no lag is known; the replicas' last samples
            // go stale and reads fall back to the primary (which fails for itself).
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "replica lag: the primary did not answer");
                return;
            }
            Err(_) => return,
        }
        // Remember a little more than the budget: a replica behind all of it is over.
        let keep = self.budget + STALE_AFTER;
        while history.len() > 1 && history.front().is_some_and(|(t, _)| t.elapsed() > keep) {
            history.pop_front();
        }
        let snapshot: Arc<Vec<(Instant, u64)>> = Arc::new(history.iter().copied().collect());
        // Concurrently, so one unreachable replica does not delay the others' samples.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..self.set.len() {
            let (this, snapshot) = (self.clone(), snapshot.clone());
            tasks.spawn(async move { this.set[i].sample(&snapshot, this.budget).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Stops the sampler and closes the replicas' pools.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        for r in &self.set {
            r.pool.deadpool().close();
        }
    }

    /// Where the next replica-eligible read of the current caller goes.
    pub(crate) async fn route(&self) -> Route<'_> {
        if self.set.is_empty() {
            return self.to_primary();
        }
        let usable: Vec<(usize, u64)> = self
            .set
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.usable().map(|replay| (i, replay)))
            .collect();
        if usable.is_empty() {
            return self.to_primary();
        }
        let Some(floor) = self.floor().await else {
            return self.to_primary();
        };
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..usable.len() {
            let (i, replay) = usable[(start + k) % usable.len()];
            if floor.is_none_or(|f| replay >= f) {
                let replica = &self.set[i];
                replica.reads.fetch_add(1, Ordering::Relaxed);
                return Route {
                    replica: Some(replica),
                };
            }
        }
        self.to_primary()
    }

    fn to_primary(&self) -> Route<'_> {
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        Route { replica: None }
    }

    /// The position the current caller's reads must have reached: `Some(None)` for an
    /// anonymous caller or one without a recent write, `None` when it cannot be told
    /// (the read then goes to the primary).
    async fn floor(&self) -> Option<Option<u64>> {
        // Outside a request scope, or before anyone was named: anonymous.
        let Some((Some(reader), cached)) = consistency::current(|s| (s.reader(), s.floor())) else {
            return Some(None);
        };
        if let Some(floor) = cached {
            return Some(floor);
        }
        match self.primary.query_opt(&FLOOR, &[&reader.key()]).await {
            Ok(row) => {
                let floor = match row {
                    Some(row) => Some(u64::try_from(row.try_get::<_, i64>(0).ok()?).ok()?),
                    None => None,
                };
                consistency::current(|s| s.set_floor(floor));
                Some(floor)
            }
            Err(e) => {
                tracing::warn!(error = %e, "read-your-writes: looking up the caller's mark");
                None
            }
        }
    }

    /// After a committed write of the current caller: remembers where it is, on the
    /// primary (for every node) and in the request's scope. Does nothing without replicas
    /// or for an anonymous caller.
    pub(crate) async fn wrote(&self) {
        if self.set.is_empty() {
            return;
        }
        let Some(Some(reader)) = consistency::current(|s| s.reader()) else {
            return;
        };
        let result = self
            .primary
            .query_one(&MARK, &[&reader.key(), &self.window.as_secs_f64()])
            .await
            .and_then(|row| Ok(row.try_get::<_, i64>(0)?));
        match result {
            Ok(pos) => {
                consistency::current(|s| s.raise_floor(u64::try_from(pos).unwrap_or(u64::MAX)));
            }
            Err(e) => {
                // The write committed; failing the request now would invite a duplicate.
                // This request reads from the primary from here on; other requests of the
                // caller within the lag budget may not see the write.
                tracing::warn!(error = %e, reader = %reader.key(), "read-your-writes: recording a write");
                consistency::current(|s| s.raise_floor(u64::MAX));
            }
        }
    }

    /// A read failed on `replica` and is about to be repeated on the primary.
    pub(crate) fn fell_back(&self, replica: &Replica, e: &StoreError) {
        replica.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        if matches!(e, StoreError::Unavailable(_)) {
            replica.down(format!("a read failed: {e}"));
        } else {
            tracing::debug!(replica = %replica.url, error = %e, "read repeated on the primary");
        }
    }

    /// A lookup found nothing on a replica (the row may not have arrived there yet) and
    /// is about to be repeated on the primary.
    pub(crate) fn missed(&self) {
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> ReadStats {
        ReadStats {
            lag_budget_ms: u64::try_from(self.budget.as_millis()).unwrap_or(u64::MAX),
            primary_reads: self.primary_reads.load(Ordering::Relaxed),
            replicas: self.set.iter().map(Replica::stats).collect(),
        }
    }
}
