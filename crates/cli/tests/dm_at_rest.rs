//! Direct messages are sealed at rest: known texts sent through the real binary never
//! appear in the database files (SQLite's database, WAL and shared memory; PostgreSQL's
//! table files and WAL), in an export, or in the logs (at trace level), while the agents
//! in the conversation read them back whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{start, stop};
use serde_json::{Value, json};
use tidepool_store_pg::testing::TestDb;

const CANARIES: [&str; 3] = ["KelpCanaryAlpha7", "KelpCanaryBravo8", "KelpCanaryDelta9"];

/// Every file under `dir` (recursively) that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && memchr::memmem::find(&bytes, needle).is_some()
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

/// Registers two agents, opens a conversation and sends the canaries both ways, then
/// reads them back as the recipient (the positive control: they are stored, and open).
fn converse(base: &str) {
    let client = reqwest::blocking::Client::new();
    let register = |name: &str| -> String {
        let r: Value = client
            .post(format!("{base}/api/v1/agents/register"))
            .json(&json!({"name": name}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        r["agent"]["api_key"].as_str().unwrap().to_owned()
    };
    let (a, b) = (register("Sender"), register("Receiver"));
    let post = |key: &str, path: &str, body: Value| -> Value {
        let r = client
            .post(format!("{base}/api/v1{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().unwrap()
    };
    let r = post(
        &a,
        "/agents/dm/request",
        json!({"to": "Receiver", "message": format!("Opening words {}", CANARIES[0])}),
    );
    let id = r["conversation_id"].as_str().unwrap().to_owned();
    post(&b, &format!("/agents/dm/requests/{id}/approve"), json!({}));
    post(
        &b,
        &format!("/agents/dm/conversations/{id}/send"),
        json!({"message": format!("A reply {}", CANARIES[1])}),
    );
    post(
        &a,
        &format!("/agents/dm/conversations/{id}/send"),
        json!({"message": format!("And back {}", CANARIES[2])}),
    );
    let read: Value = client
        .get(format!("{base}/api/v1/agents/dm/conversations/{id}"))
        .bearer_auth(&b)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let texts: String = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    for c in CANARIES {
        assert!(texts.contains(c), "{c} did not come back: {read}");
    }
}

fn export(data: &Path, database: Option<&str>, out: &Path) {
    let mut args = vec![
        "export",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(url) = database {
        args.extend(["--database", url]);
    }
    let (ok, text) = common::run_with_stdin(
        Command::new(common::BIN)
            .args(&args)
            .env("RUST_LOG", "warn"),
        "",
    );
    assert!(ok, "{text}");
    // Positive control: the export holds the conversation (sealed).
    let rows = std::fs::read_to_string(out.join("dm_messages.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), 3, "{rows}");
}

fn assert_nowhere(what: &str, dir: &Path) {
    for c in CANARIES {
        let found = files_holding(dir, c.as_bytes());
        assert!(found.is_empty(), "{what}: {c} found in {found:?}");
    }
}

fn assert_not_in_logs(logs: &str) {
    assert!(logs.contains("DEBUG"), "no debug output captured: {logs}");
    for c in CANARIES {
        assert!(!logs.contains(c), "{c} reached the logs");
    }
}

const LOGS: &str = "trace,hyper=trace,tokio_postgres=trace";

#[test]
fn sqlite_files_wal_export_and_logs_hold_no_message_text() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = start(&data, &["--rate-limits", "off", "--auto-claim"], LOGS);
    converse(&s.base);
    // While the server runs the newest pages sit in the WAL.
    let wal = data.join("tidepool.db-wal");
    assert!(wal.exists() && std::fs::metadata(&wal).unwrap().len() > 0);
    assert_nowhere("running SQLite store", &data);
    let logs = stop(s);
    assert_not_in_logs(&logs);
    assert_nowhere("stopped SQLite store", &data);
    let out = dir.path().join("export");
    export(&data, None, &out);
    assert_nowhere("export", &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tables_wal_export_and_logs_hold_no_message_text() {
    let db = TestDb::new().await;
    let url = db.url().to_owned();
    let (client, conn) = tokio_postgres::connect(&db.direct_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.clone();
    let u = url.clone();
    let logs = tokio::task::spawn_blocking(move || {
        let s = start(
            &d,
            &["--rate-limits", "off", "--auto-claim", "--database", &u],
            LOGS,
        );
        converse(&s.base);
        stop(s)
    })
    .await
    .unwrap();
    assert_not_in_logs(&logs);
    // The database's own files and the cluster's WAL (the server writes to this cluster
    // only for this test's database and other tests' ones, none of which hold canaries).
    client.batch_execute("CHECKPOINT").await.unwrap();
    let row = client
        .query_one(
            "SELECT current_setting('data_directory'), \
             (SELECT oid::text FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap();
    let (pgdata, oid): (String, String) = (row.get(0), row.get(1));
    let pgdata = Path::new(&pgdata);
    if pgdata.exists() {
        assert_nowhere("PostgreSQL table files", &pgdata.join("base").join(&oid));
        assert_nowhere("PostgreSQL WAL", &pgdata.join("pg_wal"));
    } else {
        // The server runs elsewhere (another machine or container): the export below is
        // the copy of the database this test can see.
        eprintln!(
            "PostgreSQL's data directory {pgdata:?} is not on this machine; checking the export only"
        );
    }
    let out = dir.path().join("export");
    let d = data.clone();
    let o = out.clone();
    tokio::task::spawn_blocking(move || export(&d, Some(&url), &o))
        .await
        .unwrap();
    assert_nowhere("export", &out);
}
