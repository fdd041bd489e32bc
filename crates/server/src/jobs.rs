//! Periodic jobs (today: pruning rate-limit counts), run once per tick however many nodes
//! there are.
//!
//! One node runs them in process. Several nodes on one PostgreSQL elect a leader with a
//! lease row (never a session advisory lock, which a pooler would leak): the holder renews
//! it every half tick, and another node takes it over once it has expired, so a dead
//! leader's jobs move within the lease time. Each run first claims its `(job, tick)` row;
//! a leader that stalled past its lease and its successor may both try a tick, and only
//! one of them wins it.

use std::time::Duration;

use crate::state::AppState;

/// The one lease every node competes for.
const LEASE: &str = "scheduler";

/// What the jobs need to know about the cluster.
pub struct Schedule {
    /// Length of one tick.
    pub interval: Duration,
    /// The shared database, when there is one.
    pub shared: Option<tidepool_store_pg::PgPool>,
    /// This node's name (the lease holder, and who ran each tick).
    pub node: String,
}

impl Schedule {
    /// How long a lease lasts without renewal: a few ticks, so one slow renewal does not
    /// hand the jobs over, but a dead leader is replaced within seconds.
    fn lease_ttl(&self) -> Duration {
        (self.interval * 3).clamp(Duration::from_secs(3), Duration::from_secs(15))
    }
}

/// Runs the jobs until the returned task is aborted.
pub fn spawn(state: AppState, schedule: Schedule) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // At least twice a tick, so every tick gets a turn even when the timer drifts, and
        // three times a lease, so a live leader always renews in time.
        let poll = (schedule.interval / 2)
            .min(schedule.lease_ttl() / 3)
            .max(Duration::from_millis(10));
        let mut timer = tokio::time::interval(poll);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let interval_ms = i64::try_from(schedule.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let mut last_tick = None;
        loop {
            timer.tick().await;
            let tick = tidepool_core::time::now_ms() / interval_ms;
            let ours = match &schedule.shared {
                None => true,
                Some(db) => match lead(db, &schedule).await {
                    Ok(Some(epoch)) if last_tick != Some(tick) => {
                        match tidepool_store_pg::record_job_run(
                            db,
                            "prune",
                            tick,
                            epoch,
                            &schedule.node,
                        )
                        .await
                        {
                            Ok(won) => won,
                            Err(e) => {
                                tracing::warn!(error = %e, "scheduler: cannot record a run");
                                continue;
                            }
                        }
                    }
                    Ok(_) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "scheduler: cannot reach the database");
                        continue;
                    }
                },
            };
            if last_tick != Some(tick) {
                last_tick = Some(tick);
                if ours {
                    tracing::debug!(tick, node = %schedule.node, "scheduler: running the jobs");
                    run_jobs(&state).await;
                }
            }
        }
    })
}

/// Takes or renews the lease: `Some(epoch)` while this node leads.
async fn lead(
    db: &tidepool_store_pg::PgPool,
    schedule: &Schedule,
) -> tidepool_store_pg::Result<Option<i64>> {
    tidepool_store_pg::acquire_lease(db, LEASE, &schedule.node, schedule.lease_ttl()).await
}

async fn run_jobs(state: &AppState) {
    state
        .limiter
        .prune(tidepool_core::time::now_ms(), 2 * 24 * 3_600_000)
        .await;
}
