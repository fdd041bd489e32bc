//! What the store modules' own tests share: a store on a throwaway database, agents,
//! waiting for a statement to queue behind a test's open transaction, and query plans.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tidepool_core::model::agents::NewAgent;
use tidepool_store::Store;

use crate::testing::TestDb;
use crate::{PgStore, Sql};

pub(crate) const NOW: i64 = 1_772_366_400_000;

/// The one `int8` value `sql` answers (a count, an id) on a test's own connection.
pub(crate) async fn scalar(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

pub(crate) async fn open() -> (TestDb, Arc<PgStore>) {
    let db = TestDb::new().await;
    let store = PgStore::open(&db.config()).await.unwrap();
    (db, Arc::new(store))
}

pub(crate) async fn agent(store: &PgStore, name: &str) -> i64 {
    store
        .register_agent(NewAgent {
            name: name.into(),
            name_key: name.to_ascii_lowercase(),
            description: String::new(),
            key_hash: format!("key-{name}").into_bytes(),
            claim_token_hash: format!("claim-{name}").into_bytes(),
            claim_expires_at: NOW,
            verification_code_hash: format!("code-{name}").into_bytes(),
            auto_claim: true,
            now: NOW,
        })
        .await
        .unwrap()
        .id
}

/// Waits until some statement in this database waits for a lock (the store's, behind
/// the test's open transaction).
pub(crate) async fn until_one_waits(store: &PgStore) {
    const WAITING: Sql = Sql::new(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'",
        &[],
    );
    for _ in 0..500 {
        let n: i64 = store.pool().query_one(&WAITING, &[]).await.unwrap().get(0);
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing waited for the open transaction");
}

/// Every node of an EXPLAIN (FORMAT JSON) plan, depth first.
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for c in children {
            nodes(c, out);
        }
    }
}

/// Asserts that `stmt`, prepared with only int8 parameters and executed with `args`,
/// reads the tables whose names start with `tables` through their indexes in both a
/// custom and a generic plan: no sequential scan of them, some index scan, only indexes
/// of theirs named in `indexes` (an index scan is no proof by itself: a backward walk of
/// the primary key filtering by agent reads every agent's rows), and no sort of more than
/// `max_sort` rows. Leaves the session as it found it.
pub(crate) async fn assert_walks_indexes(
    client: &tokio_postgres::Client,
    what: &str,
    stmt: &Sql,
    args: &[i64],
    tables: (&str, &[&str]),
    max_sort: f64,
) {
    let args: Vec<(&str, String)> = args.iter().map(|a| ("int8", a.to_string())).collect();
    assert_walks_indexes_typed(client, what, stmt, &args, tables, max_sort).await;
}

/// [`assert_walks_indexes`] with parameters of any type: `(type, SQL literal)` pairs.
pub(crate) async fn assert_walks_indexes_typed(
    client: &tokio_postgres::Client,
    what: &str,
    stmt: &Sql,
    args: &[(&str, String)],
    (tables, indexes): (&str, &[&str]),
    max_sort: f64,
) {
    let types = args.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ");
    let args = args
        .iter()
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    for mode in ["force_custom_plan", "force_generic_plan"] {
        client
            .batch_execute(&format!(
                "DEALLOCATE ALL; SET plan_cache_mode = {mode}; PREPARE q({types}) AS {}",
                stmt.text
            ))
            .await
            .unwrap();
        let rows = client
            .simple_query(&format!("EXPLAIN (FORMAT JSON) EXECUTE q({args})"))
            .await
            .unwrap();
        let text = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap();
        let plan: Value = serde_json::from_str(&text).unwrap();
        let mut all = Vec::new();
        nodes(&plan[0]["Plan"], &mut all);
        let what = format!("{what} {mode}: {text}");
        let node_type = |n: &Value| n["Node Type"].as_str().unwrap_or("").to_owned();
        let relation = |n: &Value| n["Relation Name"].as_str().unwrap_or("").to_owned();
        assert!(
            !all.iter()
                .any(|n| node_type(n) == "Seq Scan" && relation(n).starts_with(tables)),
            "seq scan: {what}"
        );
        assert!(
            all.iter()
                .any(|n| node_type(n).starts_with("Index")
                    || node_type(n).starts_with("Bitmap Index")),
            "no index: {what}"
        );
        for n in &all {
            let index = n["Index Name"].as_str().unwrap_or("");
            assert!(
                !index.starts_with(tables) || indexes.contains(&index),
                "index {index} not among {indexes:?}: {what}"
            );
        }
        for n in all.iter().filter(|n| node_type(n).contains("Sort")) {
            let rows = n["Plan Rows"].as_f64().unwrap_or(f64::MAX);
            assert!(rows <= max_sort, "a sort of {rows} rows: {what}");
        }
    }
    client
        .batch_execute("DEALLOCATE ALL; RESET plan_cache_mode")
        .await
        .unwrap();
}

/// The most rows the scans of table `table` in `stmt` (a SELECT: it is executed) touch,
/// in a custom and a generic plan: the rows each scan returns plus those its filter
/// dropped. A plan that uses indexes can still read far more than a page (an index walk
/// filtering most rows out), which [`assert_walks_indexes`] does not see.
pub(crate) async fn rows_scanned(
    client: &tokio_postgres::Client,
    stmt: &Sql,
    args: &[i64],
    table: &str,
) -> f64 {
    let types = vec!["int8"; args.len()].join(", ");
    let args = args
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut most: f64 = 0.0;
    for mode in ["force_custom_plan", "force_generic_plan"] {
        client
            .batch_execute(&format!(
                "DEALLOCATE ALL; SET plan_cache_mode = {mode}; PREPARE q({types}) AS {}",
                stmt.text
            ))
            .await
            .unwrap();
        let rows = client
            .simple_query(&format!("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE q({args})"))
            .await
            .unwrap();
        let text = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap();
        let plan: Value = serde_json::from_str(&text).unwrap();
        let mut all = Vec::new();
        nodes(&plan[0]["Plan"], &mut all);
        let n = |node: &Value, key: &str| node[key].as_f64().unwrap_or(0.0);
        let scanned: f64 = all
            .iter()
            .filter(|node| {
                node["Node Type"].as_str().unwrap_or("").contains("Scan")
                    && (node["Relation Name"].as_str() == Some(table)
                        || node["Index Name"]
                            .as_str()
                            .is_some_and(|i| i.starts_with(table)))
            })
            .map(|node| {
                n(node, "Actual Rows") * n(node, "Actual Loops").max(1.0)
                    + n(node, "Rows Removed by Filter")
                    + n(node, "Rows Removed by Index Recheck")
            })
            .sum();
        most = most.max(scanned);
    }
    client
        .batch_execute("DEALLOCATE ALL; RESET plan_cache_mode")
        .await
        .unwrap();
    most
}
