//! Statements for the state several nodes share: the GCRA rate limiter and the
//! scheduler lease (SCALE-OUT.md, "Shared rate limits" and "What nodes share").

use std::time::{Duration, SystemTime};

use tokio_postgres::types::Type;

use crate::{PgPool, Result, Sql};

/// GCRA in one statement. `$2` emission interval and `$3` tolerance
/// (`(burst - 1) * interval`) are passed as microseconds: the driver has no `interval`
/// type, and microseconds are PostgreSQL's interval resolution. The row is always
/// written (`ok` records the verdict, and `tat` moves only when allowed), so the statement
/// always returns the latest version of it, even when another node created the bucket
/// after this statement's snapshot was taken. The database's own `now()` comes back with
/// it, so callers do their arithmetic on one clock.
const GCRA: Sql = Sql::new(
    "INSERT INTO rate_gcra AS g (bucket, tat, ok)
     VALUES ($1, now() + $2 * interval '1 microsecond', true)
     ON CONFLICT (bucket) DO UPDATE
        SET ok = greatest(g.tat, now()) - now() <= $3 * interval '1 microsecond',
            tat = CASE WHEN greatest(g.tat, now()) - now() <= $3 * interval '1 microsecond'
                       THEN greatest(g.tat, now()) + $2 * interval '1 microsecond'
                       ELSE g.tat END
     RETURNING ok, tat, now()",
    &[Type::TEXT, Type::INT8, Type::INT8],
);

/// What one GCRA check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraState {
    /// The request fits (and was counted).
    pub allowed: bool,
    /// The bucket's theoretical arrival time after this check: it is empty again then.
    pub tat: SystemTime,
    /// The database's clock at the check.
    pub now: SystemTime,
}

/// One request against the shared limiter bucket `bucket`, which allows `burst` requests
/// at once and then one per `interval` (GCRA). A `burst` of 0 counts as 1. One round
/// trip; the row lives in an unlogged table, so a crash only refills buckets.
pub async fn gcra_hit(
    db: &PgPool,
    bucket: &str,
    interval: Duration,
    burst: u32,
) -> Result<GcraState> {
    let interval_us = micros(interval);
    let tolerance_us = interval_us.saturating_mul(i64::from(burst.saturating_sub(1)));
    let row = db
        .query_one(&GCRA, &[&bucket, &interval_us, &tolerance_us])
        .await?;
    Ok(GcraState {
        allowed: row.try_get(0)?,
        tat: row.try_get(1)?,
        now: row.try_get(2)?,
    })
}

/// [`gcra_hit`] within a time limit: `Ok(None)` when the database did not answer in
/// `within` (the statement is cancelled and its connection discarded, so a stuck limiter
/// table cannot hold pooled connections hostage).
pub async fn gcra_hit_within(
    db: &PgPool,
    bucket: &str,
    interval: Duration,
    burst: u32,
    within: Duration,
) -> Result<Option<GcraState>> {
    let interval_us = micros(interval);
    let tolerance_us = interval_us.saturating_mul(i64::from(burst.saturating_sub(1)));
    let Some(row) = db
        .query_one_within(&GCRA, &[&bucket, &interval_us, &tolerance_us], within)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(GcraState {
        allowed: row.try_get(0)?,
        tat: row.try_get(1)?,
        now: row.try_get(2)?,
    }))
}

/// [`gcra_hit`] reduced to its verdict: `Some(tat)` when the request is allowed (`tat` =
/// the bucket's new theoretical arrival time; a refund sets it back by `interval`),
/// `None` when it is limited (nothing is changed).
pub async fn gcra_check(
    db: &PgPool,
    bucket: &str,
    interval: Duration,
    burst: u32,
) -> Result<Option<SystemTime>> {
    let state = gcra_hit(db, bucket, interval, burst).await?;
    Ok(state.allowed.then_some(state.tat))
}

/// Gives one request back: the bucket's arrival time moves back by one interval (never
/// before now, which is an empty bucket anyway).
const GCRA_REFUND: Sql = Sql::new(
    "UPDATE rate_gcra SET tat = greatest(now(), tat - $2 * interval '1 microsecond')
      WHERE bucket = $1",
    &[Type::TEXT, Type::INT8],
);

/// Refunds one request allowed in `bucket` with emission interval `interval` (the
/// request failed after it was counted, so it costs the caller nothing).
pub async fn gcra_refund(db: &PgPool, bucket: &str, interval: Duration) -> Result<()> {
    db.execute(&GCRA_REFUND, &[&bucket, &micros(interval)])
        .await?;
    Ok(())
}

/// Buckets whose arrival time has passed are full again, exactly as if they did not exist.
const GCRA_PRUNE: Sql = Sql::new("DELETE FROM rate_gcra WHERE tat < now()", &[]);

/// Deletes every full bucket (keeps the table as small as the set of recent callers).
/// Idempotent: any node may run it at any time.
pub async fn gcra_prune(db: &PgPool) -> Result<u64> {
    db.execute(&GCRA_PRUNE, &[]).await
}

/// Takes or renews the lease `name` for `holder`. The statement of SCALE-OUT.md, as an
/// upsert so the first node to ask creates the row (first epoch: 1).
const ACQUIRE_LEASE: Sql = Sql::new(
    "INSERT INTO leases AS l (name, holder, epoch, expires_at)
     VALUES ($1, $2, 1, now() + $3 * interval '1 microsecond')
     ON CONFLICT (name) DO UPDATE
        SET epoch = CASE WHEN l.holder = $2 THEN l.epoch ELSE l.epoch + 1 END,
            holder = $2,
            expires_at = now() + $3 * interval '1 microsecond'
      WHERE l.holder = $2 OR l.expires_at IS NULL OR l.expires_at < now()
     RETURNING epoch",
    &[Type::TEXT, Type::TEXT, Type::INT8],
);

/// Tries to take (or renew) the lease `name` for `holder` for `ttl`.
///
/// `Some(epoch)` means `holder` leads until `ttl` from now; the epoch is the fencing
/// token to store with every job run, unchanged while the same holder renews and one
/// higher each time the lease changes hands. `None` means another holder's lease has not
/// expired yet. Times are the database's clock, so node clocks never matter.
pub async fn acquire_lease(
    db: &PgPool,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<i64>> {
    let row = db
        .query_opt(&ACQUIRE_LEASE, &[&name, &holder, &micros(ttl)])
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    })
}

/// Microseconds, saturating (a limit of 292,000 years is as good as forever).
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

// Fenced by the epoch: a leader that stalled past its lease (and so holds an older epoch
// than a run already recorded) can no longer claim a tick.
const RECORD_JOB_RUN: Sql = Sql::new(
    "INSERT INTO job_runs (job, tick, epoch, node)
     SELECT $1, $2, $3, $4
      WHERE $3 >= coalesce((SELECT max(epoch) FROM job_runs WHERE job = $1), 0)
     ON CONFLICT (job, tick) DO NOTHING",
    &[Type::TEXT, Type::INT8, Type::INT8, Type::TEXT],
);

/// Claims tick `tick` of job `job` for `node`, leader under lease epoch `epoch`. True
/// when this call claimed it (run the job), false when the tick already ran: a leader that
/// stalled past its lease and a new one can both try, and only one wins.
pub async fn record_job_run(
    db: &PgPool,
    job: &str,
    tick: i64,
    epoch: i64,
    node: &str,
) -> Result<bool> {
    Ok(db
        .execute(&RECORD_JOB_RUN, &[&job, &tick, &epoch, &node])
        .await?
        == 1)
}

const META_INSERT: Sql = Sql::new(
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    &[Type::TEXT, Type::TEXT],
);
const META_GET: Sql = Sql::new("SELECT value FROM meta WHERE key = $1", &[Type::TEXT]);

/// Records `value` under `key` unless a value is there already, and returns the value that
/// is (the first writer's, whichever node it was).
pub async fn meta_first(db: &PgPool, key: &str, value: &str) -> Result<String> {
    db.execute(&META_INSERT, &[&key, &value]).await?;
    let row = db.query_one(&META_GET, &[&key]).await?;
    Ok(row.try_get(0)?)
}
