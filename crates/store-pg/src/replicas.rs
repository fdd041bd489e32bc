//! Read replicas: one pool per replica, a lag sampler, and the choice of where each
//! read-only store call goes (docs/SCALE-OUT.md, "Read replicas").
//!
//! **Lag.** The sampler has its own connections, outside the pools (a saturated pool must
//! not stop it): one to the primary and one to each replica, each reconnecting with
//! backoff when it breaks. Every [`SAMPLE_INTERVAL`] one task reads the primary's WAL
//! position (`pg_current_wal_lsn()`) into a short shared history of `(when, position)`;
//! each replica has its own task that reads the replica's replay position
//! (`pg_last_wal_replay_lsn()`) on its own schedule, so a slow or unreachable replica
//! delays nobody else (a failing one is retried with backoff, up to [`RETRY_MAX`]). A
//! replica's lag is the age of the newest primary sample it has replayed: if it has
//! replayed everything the primary had 300 ms ago but not what it had 200 ms ago, its lag
//! is 300 ms. Unlike `now() - pg_last_xact_replay_timestamp()` this stays near zero while
//! the primary is idle, and grows from the moment a write is missing (replay paused, a
//! slow replica, or the primary cannot be sampled).
//!
//! **Routing.** A read may use a replica that answered its last sample less than
//! [`STALE_AFTER`] ago, whose lag is within the budget and whose replay position has
//! reached the caller's floor: [`tidepool_store::consistency`] names the caller, and each
//! write of an identified caller stores the primary's WAL insert position after the commit
//! in `read_marks` (an unlogged table on the primary, so every node sees it) for a window;
//! a later request of that caller looks its mark up once and reads from a replica only
//! past it. Otherwise the read goes to the primary. A read that fails or times out on a
//! replica is repeated on the primary; only a lost connection takes the replica out until
//! its sampler reaches it again.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tidepool_store::consistency;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::{PgConfig, PgError, PgPool, Result, Sql, Type};

/// How often the sampler measures every replica's lag.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// A replica whose last good sample is older than this is not used (its sampler is stuck
/// or failing, so its lag is unknown).
pub const STALE_AFTER: Duration = Duration::from_secs(1);

/// Longest one sample query (or connecting for one) may take before it counts as failed.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest wait between two attempts on a failing server (connection or sample).
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// A sampler that keeps failing says so at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// How often the primary's sampler deletes expired `read_marks`.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Added to the statement timeout for the client-side limit on a replica read.
const READ_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// Positions are WAL byte offsets (`pg_lsn - '0/0'`), which fit an int8 for ~9 EB of WAL.
/// The sampler's statements go over the simple query protocol, which every pooler mode
/// carries.
const PRIMARY_POSITION: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8";

/// NULL on a server that is not in recovery (the URL names a primary, or it was promoted).
const REPLAY_POSITION: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8";

const PRUNE_MARKS: &str = "DELETE FROM read_marks WHERE until < now()";

/// Run after a write committed: the insert position is at or past the end of that
/// commit's WAL record, so a replica that replayed up to it shows the write.
const MARK: Sql = Sql::new(
    "INSERT INTO read_marks AS m (reader, pos, until)
     VALUES ($1, (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8,
             now() + make_interval(secs => $2))
     ON CONFLICT (reader) DO UPDATE
        SET pos = greatest(m.pos, excluded.pos), until = greatest(m.until, excluded.until)
     RETURNING pos",
    &[Type::TEXT, Type::FLOAT8],
);

const FLOOR: Sql = Sql::new(
    "SELECT pos FROM read_marks WHERE reader = $1 AND until > now()",
    &[Type::TEXT],
);

/// Most a read routed to a replica may miss of writes by others: a replica in use had,
/// at its last sample (at most [`STALE_AFTER`] ago), replayed a primary position sampled
/// at most `budget` before; one [`SAMPLE_INTERVAL`] more covers the sampling itself.
pub fn staleness_bound(budget: Duration) -> Duration {
    budget + STALE_AFTER + SAMPLE_INTERVAL
}

/// How one replica is doing, for metrics and `/ready`-like views ([`ReadStats`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStats {
    /// The replica's URL with any password replaced by `***`.
    pub url: String,
    /// It answered the last lag sample (as a standby) and no read lost its connection
    /// to it since.
    pub healthy: bool,
    /// Reads may go to it now: healthy, sampled recently, lag within the budget.
    pub in_use: bool,
    /// Lag at the last good sample in milliseconds (a lower bound while it is behind
    /// everything the sampler remembers); `None` before the first good sample.
    pub lag_ms: Option<u64>,
    /// Reads it answered since start-up (counted after the answer; a lookup that found
    /// nothing there and was repeated on the primary is not counted).
    pub reads: u64,
    /// Reads that failed or timed out on it and were repeated on the primary.
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
    /// Replica-eligible reads served by the primary because no replica was usable or
    /// caught up with the caller's own writes, or one failed. Only counted when replicas
    /// are configured (without them every read goes to the primary, uncounted).
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
    /// Its driver config, for the sampler's own connection.
    config: tokio_postgres::Config,
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

    /// Takes it out of use; `true` (and a warning) when it was in use or had no error
    /// recorded yet, `false` when it was already out.
    fn down(&self, why: String) -> bool {
        let mut s = self.state();
        let news = s.healthy || s.error.is_none();
        if news {
            tracing::warn!(replica = %self.url, error = %why, "read replica not used");
        }
        s.healthy = false;
        s.error = Some(why);
        news
    }

    /// A read it answered.
    pub(crate) fn served(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// One lag sample over the sampler's own connection `link`.
    async fn sample(
        &self,
        link: &mut Link,
        replicas: &Replicas,
    ) -> std::result::Result<(), String> {
        if !self.state().probed {
            // The statement-mode check of the pool's connection path (reads use the pool).
            match tokio::time::timeout(SAMPLE_TIMEOUT, self.pool.probe()).await {
                Ok(Ok(())) => self.state().probed = true,
                Ok(Err(e)) => return Err(format!("start-up check: {e}")),
                Err(_) => return Err("start-up check: no answer within 1 s".into()),
            }
        }
        let replay = match link.int8(REPLAY_POSITION).await {
            Ok(Some(pos)) => u64::try_from(pos).unwrap_or(0),
            Ok(None) => {
                return Err(
                    "not a standby: pg_last_wal_replay_lsn() is NULL (the URL names a \
                            primary, or the replica was promoted)"
                        .into(),
                );
            }
            Err(e) => return Err(format!("lag sample: {e}")),
        };
        let now = Instant::now();
        let (lag, within_budget) = replicas.lag_of(replay, now);
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
        Ok(())
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

/// A sampler's own connection to one server: opened on first use, dropped when it
/// breaks or a query times out, and opened again on the next attempt.
struct Link {
    config: tokio_postgres::Config,
    client: Option<tokio_postgres::Client>,
}

impl Link {
    fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            client: None,
        }
    }

    async fn run(&mut self, sql: &str) -> std::result::Result<Vec<SimpleQueryMessage>, String> {
        if self
            .client
            .as_ref()
            .is_some_and(tokio_postgres::Client::is_closed)
        {
            self.client = None;
        }
        if self.client.is_none() {
            let (client, connection) =
                match tokio::time::timeout(SAMPLE_TIMEOUT, self.config.connect(NoTls)).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => return Err(format!("connecting: {e}")),
                    Err(_) => return Err("connecting: no answer within 1 s".into()),
                };
            // Ends when the client is dropped (or the server goes away).
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.client = Some(client);
        }
        let Some(client) = &self.client else {
            return Err("no connection".into());
        };
        match tokio::time::timeout(SAMPLE_TIMEOUT, client.simple_query(sql)).await {
            Ok(Ok(messages)) => Ok(messages),
            Ok(Err(e)) => {
                if e.is_closed() {
                    self.client = None;
                }
                Err(e.to_string())
            }
            Err(_) => {
                // The answer may still come; a fresh connection next time is simpler.
                self.client = None;
                Err("no answer within 1 s".into())
            }
        }
    }

    /// The first column of the first row as an int8 (`None` for NULL).
    async fn int8(&mut self, sql: &str) -> std::result::Result<Option<i64>, String> {
        let messages = self.run(sql).await?;
        let row = messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .ok_or_else(|| "no row".to_owned())?;
        match row.try_get(0).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|e| format!("not an int8 ({text:?}): {e}")),
        }
    }
}

/// Doubling waits after consecutive failures, from [`SAMPLE_INTERVAL`] to [`RETRY_MAX`].
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn ok(&mut self) -> Duration {
        self.failures = 0;
        SAMPLE_INTERVAL
    }

    fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        SAMPLE_INTERVAL
            .saturating_mul(1 << self.failures.min(8))
            .min(RETRY_MAX)
    }
}

/// Warns about a repeating failure at most every [`WARN_EVERY`].
#[derive(Default)]
struct Warner {
    last: Option<Instant>,
    suppressed: u64,
}

impl Warner {
    /// Whether to warn now (and how many were left unsaid since the last warning).
    fn due(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.suppressed))
    }

    /// A warning was just given elsewhere: the next one waits its turn.
    fn said(&mut self) {
        self.last = Some(Instant::now());
    }
}

tokio::task_local! {
    /// Inside [`Replicas::on_replica`]: set when the read lost its connection.
    static LOST: Cell<bool>;
}

/// Called for every PostgreSQL error as it becomes a store error: inside a replica read
/// it records whether the connection was lost (a pool that cannot connect, or a closed
/// connection; not a wait for a busy pool) and returns `true`.
pub(crate) fn note_error(e: &PgError) -> bool {
    LOST.try_with(|lost| {
        let gone = match e {
            PgError::Pool(deadpool_postgres::PoolError::Timeout(
                deadpool_postgres::TimeoutType::Wait,
            )) => false,
            PgError::Pool(_) => true,
            PgError::Db(e) => e.is_closed(),
            _ => false,
        };
        if gone {
            lost.set(true);
        }
    })
    .is_ok()
}

/// Why a replica read did not give an answer.
pub(crate) enum Failure {
    /// The connection to the replica was lost or could not be made.
    Lost(String),
    /// No answer within the client-side limit.
    TimedOut(Duration),
    /// Anything else (a statement timeout, a recovery conflict, ...).
    Other(String),
}

/// The replicas of one store, with the primary they fall back to.
pub(crate) struct Replicas {
    /// The primary's driver config, for the sampler's own connection.
    primary: tokio_postgres::Config,
    /// The primary's pool, for read marks.
    marks: PgPool,
    set: Vec<Replica>,
    budget: Duration,
    /// How long a caller's write mark lasts (see [`Replicas::new`]).
    window: Duration,
    /// Client-side limit on one replica read.
    read_timeout: Duration,
    /// The primary's recent WAL positions, oldest first.
    history: Mutex<VecDeque<(Instant, u64)>>,
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
                    config: settings.primary()?,
                    pool: PgPool::new(&settings)?,
                    reads: AtomicU64::new(0),
                    fallbacks: AtomicU64::new(0),
                    state: Mutex::new(ReplicaState::default()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let budget = Duration::from_millis(config.replica_lag_budget_ms);
        let statement_timeout = match config.statement_timeout_ms {
            0 => PgConfig::DEFAULT_STATEMENT_TIMEOUT_MS,
            ms => ms,
        };
        Ok(Self {
            primary: config.primary()?,
            marks: primary,
            set,
            budget,
            // Once a write is older than the staleness bound, every replica in use has
            // it; the mark only needs to outlast that. Ten seconds at least, as Rails and
            // SCALE-OUT.md do.
            window: staleness_bound(budget).max(Duration::from_secs(10)),
            read_timeout: Duration::from_millis(statement_timeout) + READ_TIMEOUT_MARGIN,
            history: Mutex::new(VecDeque::new()),
            primary_reads: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        })
    }

    /// Starts the lag samplers (when there are replicas): one task for the primary and
    /// one per replica. They stop when the store is dropped or shut down.
    pub(crate) fn start(self: &Arc<Self>) {
        if self.set.is_empty() {
            return;
        }
        tokio::spawn(watch_primary(
            Arc::downgrade(self),
            Link::new(self.primary.clone()),
        ));
        for (i, replica) in self.set.iter().enumerate() {
            tokio::spawn(watch_replica(
                Arc::downgrade(self),
                i,
                Link::new(replica.config.clone()),
            ));
        }
    }

    fn history(&self) -> MutexGuard<'_, VecDeque<(Instant, u64)>> {
        match self.history.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        }
    }

    /// Adds a primary sample; keeps a little more than the budget (a replica behind all
    /// of it is over budget anyway).
    fn record(&self, at: Instant, position: u64) {
        let keep = self.budget + STALE_AFTER;
        let mut history = self.history();
        history.push_back((at, position));
        while history.len() > 1 && history.front().is_some_and(|(t, _)| t.elapsed() > keep) {
            history.pop_front();
        }
    }

    /// The lag of a replica that has replayed up to `replay`, and whether it is within
    /// the budget: the age of the newest primary sample it has replayed.
    fn lag_of(&self, replay: u64, now: Instant) -> (Duration, bool) {
        let history = self.history();
        match history.iter().rev().find(|(_, p)| *p <= replay) {
            Some((at, _)) => {
                let lag = now.saturating_duration_since(*at);
                (lag, lag <= self.budget)
            }
            // Behind everything remembered (or nothing remembered yet): over budget, and
            // at least as old as the oldest sample.
            None => (
                history
                    .front()
                    .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(*at)),
                false,
            ),
        }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Stops the samplers and closes the replicas' pools.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        for r in &self.set {
            r.pool.deadpool().close();
        }
    }

    /// Where the next replica-eligible read of the current caller goes: a replica, or
    /// `None` for the primary.
    pub(crate) async fn route(&self) -> Option<&Replica> {
        if self.set.is_empty() {
            // No replicas: nothing to decide, nothing to count.
            return None;
        }
        if consistency::current(consistency::Scope::primary_only) == Some(true) {
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
                return Some(&self.set[i]);
            }
        }
        self.to_primary()
    }

    fn to_primary(&self) -> Option<&Replica> {
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Runs one read on a replica with a client-side time limit (the statement timeout
    /// and a margin), telling a lost connection from other failures.
    pub(crate) async fn on_replica<T>(
        &self,
        read: impl Future<Output = tidepool_store::Result<T>>,
    ) -> std::result::Result<T, Failure> {
        LOST.scope(Cell::new(false), async {
            match tokio::time::timeout(self.read_timeout, read).await {
                Ok(Ok(found)) => Ok(found),
                Ok(Err(e)) if LOST.with(Cell::get) => Err(Failure::Lost(e.to_string())),
                Ok(Err(e)) => Err(Failure::Other(e.to_string())),
                Err(_) => Err(Failure::TimedOut(self.read_timeout)),
            }
        })
        .await
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
        let row = match self.marks.query_opt(&FLOOR, &[&reader.key()]).await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, "read-your-writes: looking up the caller's mark");
                return None;
            }
        };
        let floor = match row.map(|row| row.try_get::<_, i64>(0)) {
            None => None,
            Some(Ok(pos)) => Some(u64::try_from(pos).unwrap_or(0)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "read-your-writes: decoding the caller's mark");
                return None;
            }
        };
        consistency::current(|s| s.set_floor(floor));
        Some(floor)
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
            .marks
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

    /// A read failed on `replica` and is about to be repeated on the primary. Only a
    /// lost connection takes the replica out; a statement timeout or a recovery conflict
    /// (normal on a standby) does not.
    pub(crate) fn fell_back(&self, replica: &Replica, failure: Failure) {
        replica.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        match failure {
            Failure::Lost(e) => {
                replica.down(format!("a read lost its connection: {e}"));
            }
            Failure::TimedOut(limit) => {
                tracing::debug!(replica = %replica.url, ?limit, "replica read timed out; repeated on the primary");
            }
            Failure::Other(e) => {
                tracing::debug!(replica = %replica.url, error = %e, "replica read failed; repeated on the primary");
            }
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

/// The primary's sampler: its WAL position every [`SAMPLE_INTERVAL`], and expired read
/// marks deleted every [`PRUNE_EVERY`] (any node may; it is idempotent).
async fn watch_primary(replicas: Weak<Replicas>, mut link: Link) {
    let (mut backoff, mut warner) = (Backoff::default(), Warner::default());
    let mut pruned = Instant::now();
    loop {
        let Some(this) = replicas.upgrade() else {
            break;
        };
        if this.stopped() {
            break;
        }
        // Taken before asking: the position read is at least what was committed by then.
        let at = Instant::now();
        let pause = match link.int8(PRIMARY_POSITION).await {
            Ok(Some(pos)) => {
                this.record(at, u64::try_from(pos).unwrap_or(0));
                backoff.ok()
            }
            Ok(None) => failed(&mut warner, &mut backoff, "pg_current_wal_lsn() is NULL"),
            Err(e) => failed(&mut warner, &mut backoff, &e),
        };
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            if let Err(e) = link.run(PRUNE_MARKS).await {
                tracing::warn!(error = %e, "read-your-writes: deleting expired read marks");
            }
        }
        drop(this);
        tokio::time::sleep(pause).await;
    }
}

/// The primary's position could not be read: the replicas' lag grows from the last good
/// sample, so they go over budget and reads fall back to the primary.
fn failed(warner: &mut Warner, backoff: &mut Backoff, e: &str) -> Duration {
    if let Some(suppressed) = warner.due() {
        tracing::warn!(error = %e, suppressed, "replica lag: cannot read the primary's WAL position");
    }
    backoff.failed()
}

/// One replica's sampler; a failing replica is retried with backoff.
async fn watch_replica(replicas: Weak<Replicas>, i: usize, mut link: Link) {
    let (mut backoff, mut warner) = (Backoff::default(), Warner::default());
    loop {
        let Some(this) = replicas.upgrade() else {
            break;
        };
        if this.stopped() {
            break;
        }
        let replica = &this.set[i];
        let pause = match replica.sample(&mut link, &this).await {
            Ok(()) => backoff.ok(),
            Err(why) => {
                if replica.down(why.clone()) {
                    warner.said();
                } else if let Some(suppressed) = warner.due() {
                    tracing::warn!(replica = %replica.url, error = %why, suppressed, "read replica still not used");
                }
                backoff.failed()
            }
        };
        drop(this);
        tokio::time::sleep(pause).await;
    }
}
