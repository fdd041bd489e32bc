//! `tidepool seed --database URL`: the same arguments and seed give the same network on
//! PostgreSQL as on SQLite, the written-out keys work through a server on PostgreSQL with
//! the same data directory, and a database that holds a network is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tidepool_store::transfer::TABLES;
use tidepool_store_pg::testing::TestDb;

fn tidepool(args: &[&str]) -> (bool, String) {
    common::run_with_stdin(
        Command::new(common::BIN).args(args).env("RUST_LOG", "warn"),
        "",
    )
}

const SIZE: &[&str] = &[
    "--agents",
    "120",
    "--submolts",
    "5",
    "--posts",
    "600",
    "--comments",
    "1500",
    "--votes",
    "3000",
    "--seed",
    "11",
];

/// Columns that differ between two seeds by design: public ids and API keys are random,
/// and times (and the hot rank, made from a post's time) count back from the moment of
/// seeding. Only whether they are null is compared.
const BY_DESIGN: &[&str] = &[
    "uuid",
    "key_hash",
    "created_at",
    "updated_at",
    "claimed_at",
    "last_active",
    "last_activity_at",
    "at",
    "expires_at",
    "claim_expires_at",
    "hot_rank",
];

/// Every table of an export, every cell as JSON, the by-design columns reduced to
/// whether they are null.
fn content(export: &Path) -> Vec<(&'static str, Vec<Vec<Value>>)> {
    TABLES
        .iter()
        .map(|t| {
            let text = std::fs::read_to_string(export.join(format!("{}.jsonl", t.name))).unwrap();
            let rows = text
                .lines()
                .map(|line| {
                    let cells: Vec<Value> = serde_json::from_str(line).unwrap();
                    assert_eq!(cells.len(), t.columns.len(), "{}: {line}", t.name);
                    cells
                        .into_iter()
                        .zip(t.columns)
                        .map(|(v, (name, _))| {
                            if BY_DESIGN.contains(name) {
                                Value::Bool(v.is_null())
                            } else {
                                v
                            }
                        })
                        .collect()
                })
                .collect();
            (t.name, rows)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_postgres_gives_the_sqlite_network_and_working_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new().await;
    let url = db.url().to_owned();
    let d = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let (a, b) = (d.join("a"), d.join("b"));
        let keys = d.join("keys.tsv");
        let mut args = vec!["seed", "--data-dir", a.to_str().unwrap()];
        args.extend_from_slice(SIZE);
        let (ok, out) = tidepool(&args);
        assert!(ok, "{out}");
        // The data directory `b` does not exist yet: seeding creates it and its secret.
        let mut args = vec![
            "seed",
            "--data-dir",
            b.to_str().unwrap(),
            "--database",
            &url,
            "--keys-out",
            keys.to_str().unwrap(),
        ];
        args.extend_from_slice(SIZE);
        let (ok, out) = tidepool(&args);
        assert!(ok, "{out}");
        assert!(out.contains("seeded 120 agents"), "{out}");
        // Only the secret is left in the data directory: the temporary store is gone.
        let left: Vec<String> = std::fs::read_dir(&b)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["server.secret"]);

        let (e1, e2) = (d.join("e1"), d.join("e2"));
        let (ok, out) = tidepool(&[
            "export",
            "--data-dir",
            a.to_str().unwrap(),
            "--out",
            e1.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let (ok, out) = tidepool(&[
            "export",
            "--data-dir",
            b.to_str().unwrap(),
            "--database",
            &url,
            "--out",
            e2.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let (sqlite, pg) = (content(&e1), content(&e2));
        let rows = |c: &[(&str, Vec<Vec<Value>>)], t: &str| {
            c.iter().find(|(n, _)| *n == t).unwrap().1.len()
        };
        assert_eq!(rows(&pg, "agents"), 120);
        assert_eq!(rows(&pg, "posts"), 600);
        assert_eq!(rows(&pg, "comments"), 1500);
        assert!(rows(&pg, "votes") > 2_500);
        for ((name, x), (_, y)) in sqlite.iter().zip(&pg) {
            assert_eq!(x.len(), y.len(), "{name}: row counts differ");
            for (rx, ry) in x.iter().zip(y) {
                assert_eq!(rx, ry, "{name}: rows differ");
            }
        }

        // A seeded agent's key works through a server on PostgreSQL with data dir `b`.
        let line = std::fs::read_to_string(&keys)
            .unwrap()
            .lines()
            .nth(7)
            .unwrap()
            .to_owned();
        let (name, key) = line.split_once('\t').unwrap();
        let s = common::start(&b, &["--database", &url, "--rate-limits", "off"], "warn");
        let (status, me) = common::api(&s.base, "GET", "/agents/me", Some(key), Value::Null);
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["name"], name);
        assert_eq!(me["is_claimed"], true);
        let (_, feed) = common::api(&s.base, "GET", "/posts?sort=hot&limit=5", None, Value::Null);
        let post_id = feed["posts"][0]["id"].as_str().unwrap().to_owned();
        let (status, body) = common::api(
            &s.base,
            "POST",
            &format!("/posts/{post_id}/comments"),
            Some(key),
            serde_json::json!({"content": "hello from a seeded agent"}),
        );
        assert_eq!(status, 201, "{body}");
        // The search index was loaded with the rows.
        for kind in ["post", "comment"] {
            let (status, found) = common::api(
                &s.base,
                "GET",
                &format!("/search?q=reef&type={kind}s&limit=5"),
                None,
                Value::Null,
            );
            assert_eq!(status, 200, "{found}");
            let results = found["results"].as_array().unwrap();
            assert!(!results.is_empty(), "{found}");
            assert!(results.iter().all(|r| r["type"] == kind), "{found}");
        }
        common::stop(s);

        // A database that holds a network is refused, and nothing is left behind.
        let (ok, out) = tidepool(&[
            "seed",
            "--data-dir",
            b.to_str().unwrap(),
            "--database",
            &url,
            "--agents",
            "10",
            "--posts",
            "5",
        ]);
        assert!(!ok, "{out}");
        assert!(out.contains("already holds a network"), "{out}");
        assert_eq!(std::fs::read_dir(&b).unwrap().count(), 1);
    })
    .await
    .unwrap();
}
