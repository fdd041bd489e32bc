//! The backend-neutral store conformance suite, on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tidepool_store::Store;
use tidepool_store_sqlite::{SqliteStore, StoreOptions};

async fn open() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
    (dir, Arc::new(store))
}

tidepool_store::conformance_tests!(open());
