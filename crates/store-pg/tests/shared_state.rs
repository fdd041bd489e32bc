//! The statements several nodes share, under concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tidepool_store_pg::testing::TestDb;
use tidepool_store_pg::{PgPool, PgStore, gcra_hit, record_job_run};

async fn pool() -> (TestDb, PgPool) {
    let db = TestDb::new().await;
    let store = PgStore::open(&db.config()).await.unwrap();
    (db, store.pool().clone())
}

/// Many first hits on a bucket nobody used yet, at once: exactly `burst` are allowed, and
/// every check gets an answer (none falls through to "no row").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_bucket_allows_exactly_its_burst_under_a_rush() {
    let (_db, pool) = pool().await;
    for burst in [1u32, 3] {
        let bucket = format!("rush:{burst}");
        let mut tasks = Vec::new();
        for _ in 0..24 {
            let (pool, bucket) = (pool.clone(), bucket.clone());
            tasks.push(tokio::spawn(async move {
                gcra_hit(&pool, &bucket, Duration::from_secs(60), burst).await
            }));
        }
        let mut allowed = 0;
        for t in tasks {
            if t.await.unwrap().unwrap().allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, burst, "burst {burst}");
    }
}

/// A run recorded under an older epoch than one already recorded is refused: a leader
/// that lost its lease while stalled cannot run a tick after its successor did.
#[tokio::test]
async fn job_runs_are_fenced_by_the_lease_epoch() {
    let (_db, pool) = pool().await;
    assert!(record_job_run(&pool, "prune", 10, 2, "n1").await.unwrap());
    assert!(
        !record_job_run(&pool, "prune", 10, 2, "n2").await.unwrap(),
        "one run per tick"
    );
    assert!(
        !record_job_run(&pool, "prune", 11, 1, "n0").await.unwrap(),
        "stale epoch"
    );
    assert!(record_job_run(&pool, "prune", 11, 3, "n2").await.unwrap());
}
