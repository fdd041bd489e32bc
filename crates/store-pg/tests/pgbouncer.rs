//! The PostgreSQL backend through pgbouncer 1.18 (Debian 12's) in transaction mode, the
//! pooler SCALE-OUT.md plans for: `statements = "unnamed"` must carry the whole store, and
//! `statements = "prepared"` must be refused at start-up (`PgPool::probe`) with a message
//! naming the setting to change. The harness (`TestDb::through_pgbouncer`) installs and
//! starts pgbouncer itself and fails, never skips, when it cannot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tidepool_store::Store;
use tidepool_store_pg::testing::TestDb;
use tidepool_store_pg::{PgError, PgPool, PgStore, Sql, StatementMode, Type};

async fn open_through_pgbouncer() -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::through_pgbouncer().await;
    let config = db.config();
    assert_eq!(config.statements, StatementMode::Unnamed);
    let store = PgStore::open(&config).await.unwrap();
    (db, Arc::new(store))
}

/// The whole backend-neutral conformance suite, through pgbouncer.
mod conformance {
    use super::*;

    tidepool_store::conformance_tests!(open_through_pgbouncer());
}

async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn backend_pid(client: &tokio_postgres::Client) -> i32 {
    client
        .simple_query("SELECT pg_backend_pid()")
        .await
        .unwrap()
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .unwrap()
}

/// Guards the premise of the other tests: the URL really leads through a pooler in
/// transaction mode (two client connections take turns on one server connection, which
/// a direct connection never does), and that pooler is pgbouncer.
#[tokio::test]
async fn the_url_leads_through_pgbouncer_in_transaction_mode() {
    let db = TestDb::through_pgbouncer().await;
    assert!(db.via_pgbouncer());
    let a = raw(db.url()).await;
    let b = raw(db.url()).await;
    let first = backend_pid(&a).await;
    // `a` is between transactions, so its server connection went back to the pool and
    // `b`'s next transaction gets it (pgbouncer reuses the most recently released one).
    b.batch_execute("BEGIN").await.unwrap();
    let held = backend_pid(&b).await;
    assert_eq!(
        first, held,
        "two clients should share one server connection"
    );
    // While `b` holds it, `a` must be served by another server connection.
    assert_ne!(backend_pid(&a).await, held);
    b.batch_execute("COMMIT").await.unwrap();
}

/// `prepared` through pgbouncer 1.18 in transaction mode: the start-up probe refuses it,
/// every time (the probe must not depend on which server connection pgbouncer happens
/// to pick), and the message names the setting that works.
#[tokio::test]
async fn prepared_is_refused_at_start_up() {
    let db = TestDb::through_pgbouncer().await;
    for attempt in 0..20 {
        let mut config = db.config();
        config.statements = StatementMode::Prepared;
        match PgPool::connect(&config).await {
            Ok(_) => panic!("attempt {attempt}: the probe accepted `prepared` through pgbouncer"),
            Err(PgError::Refused(m)) => {
                assert!(m.contains(r#"statements = "unnamed""#), "{m}");
            }
            Err(other) => panic!("attempt {attempt}: expected a refusal, got {other}"),
        }
    }
    // The store's start-up goes through the same probe.
    let mut config = db.config();
    config.statements = StatementMode::Prepared;
    let err = PgStore::open(&config).await.unwrap_err();
    assert!(
        err.to_string().contains(r#"statements = "unnamed""#),
        "{err}"
    );
}

/// Several nodes starting at once, each probing: every one of them is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prepared_is_refused_while_other_clients_are_busy() {
    let db = TestDb::through_pgbouncer().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut config = db.config();
        config.statements = StatementMode::Prepared;
        tasks.push(tokio::spawn(async move { PgPool::connect(&config).await }));
    }
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => panic!("the probe accepted `prepared` through pgbouncer"),
            Err(PgError::Refused(m)) => assert!(m.contains(r#"statements = "unnamed""#), "{m}"),
            Err(other) => panic!("expected a refusal, got {other}"),
        }
    }
}

/// `unnamed` through pgbouncer: the probe passes, and statements, transactions and the
/// per-transaction statement timeout work, from several connections at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unnamed_works_through_pgbouncer() {
    const PUT: Sql = Sql::new(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[Type::TEXT, Type::TEXT],
    );
    const GET: Sql = Sql::new("SELECT value FROM meta WHERE key = $1", &[Type::TEXT]);
    const SLEEP: Sql = Sql::new("SELECT pg_sleep(2)", &[]);
    let db = TestDb::through_pgbouncer().await;
    let mut config = db.config();
    config.statement_timeout_ms = 300;
    let pool = PgPool::connect(&config).await.unwrap();
    pool.probe().await.unwrap();
    pool.migrate().await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..16 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("k{i}");
            for round in 0..10 {
                {
                    let mut conn = pool.get().await.unwrap();
                    let tx = conn.transaction().await.unwrap();
                    tx.execute(&PUT, &[&key, &format!("v{round}")])
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
                let row = pool.query_one(&GET, &[&key]).await.unwrap();
                assert_eq!(row.get::<_, String>(0), format!("v{round}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // The timeout travels with each transaction (`SET LOCAL`), not the session.
    let mut conn = pool.get().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    match tx.query_one(&SLEEP, &[]).await.unwrap_err() {
        PgError::Db(e) => assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{e:?}"
        ),
        other => panic!("expected the statement timeout, got {other}"),
    }
}
