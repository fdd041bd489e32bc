//! `tidepool bench`: seeding through the API and timed phases against the real server,
//! with reports that add up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

mod common;
use common::{BIN, start, stop};

fn check_row(row: &Value) {
    let (p50, p90, p99, max) = (
        row["p50_ms"].as_f64().unwrap(),
        row["p90_ms"].as_f64().unwrap(),
        row["p99_ms"].as_f64().unwrap(),
        row["max_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p90 && p90 <= p99 && p99 <= max, "{row}");
    assert_eq!(row["errors"], 0, "{row}");
    assert!(row["requests"].as_u64().unwrap() > 0, "{row}");
}

#[test]
fn bench_seeds_through_the_api_and_reports_every_phase() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir.path().join("data"),
        &["--auto-claim", "--rate-limits", "off"],
        "warn",
    );
    let keys = dir.path().join("keys.tsv");
    let seed_json = dir.path().join("seed.json");
    let out = Command::new(BIN)
        .args(["bench", "seed", "--url", &server.base])
        .args(["--agents", "12", "--submolts", "3", "--posts", "40"])
        .args(["--comments", "90", "--votes", "120", "--clients", "6"])
        .arg("--keys-out")
        .arg(&keys)
        .arg("--json-out")
        .arg(&seed_json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seeded: Value = serde_json::from_slice(&std::fs::read(&seed_json).unwrap()).unwrap();
    assert_eq!(
        seeded["overall"]["total"]["requests"],
        12 + 3 + 40 + 90 + 120
    );
    check_row(&seeded["overall"]["total"]);
    assert_eq!(std::fs::read_to_string(&keys).unwrap().lines().count(), 12);

    // The network the API reports is the one the bench built.
    let stats: Value = reqwest::blocking::get(format!("{}/api/v1/stats", server.base))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["agents"], 12, "{stats}");
    assert_eq!(stats["posts"], 40, "{stats}");
    assert_eq!(stats["comments"], 90, "{stats}");

    let load_json = dir.path().join("load.json");
    let out = Command::new(BIN)
        .args(["bench", "load", "--url", &server.base, "--keys"])
        .arg(&keys)
        .args(["--phases", "read,write,mixed", "--clients", "2,4"])
        .args(["--duration", "0.7", "--warmup", "0.1", "--json-out"])
        .arg(&load_json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("GET /posts?sort=hot") && table.contains("p99 ms"),
        "{table}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&load_json).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for run in runs {
        check_row(&run["total"]);
        let endpoints = run["endpoints"].as_array().unwrap();
        let sum: u64 = endpoints
            .iter()
            .map(|e| e["requests"].as_u64().unwrap())
            .sum();
        assert_eq!(sum, run["total"]["requests"].as_u64().unwrap());
        let writes = endpoints
            .iter()
            .any(|e| e["endpoint"].as_str().unwrap().starts_with("POST"));
        assert_eq!(writes, run["phase"] != "read", "{run}");
    }
    stop(server);
}

#[test]
fn bench_refuses_unbounded_or_remote_runs_with_a_clear_error() {
    for (args, expect) in [
        (vec!["--duration", "100000"], "--duration"),
        (vec!["--clients", "0"], "--clients"),
        (vec!["--url", "https://example.com"], "http://"),
    ] {
        let out = Command::new(BIN)
            .args(["bench", "load"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
