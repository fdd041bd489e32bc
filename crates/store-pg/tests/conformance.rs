//! The backend-neutral store conformance suite, on PostgreSQL (a fresh database per test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tidepool_store::Store;
use tidepool_store_pg::PgStore;
use tidepool_store_pg::testing::TestDb;

async fn open() -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new().await;
    let store = PgStore::open(&db.config()).await.unwrap();
    (db, Arc::new(store))
}

tidepool_store::conformance_tests!(open());
