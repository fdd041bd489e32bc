//! The operator commands of the real binary: `admin claim` with and without an owner, the
//! configuration file they share with `serve`, and a store written by a newer tidepool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
mod web;
use common::{BIN, start, stop};

/// Runs `tidepool ARGS` in `cwd` with `stdin`; returns success and everything printed.
fn tidepool(cwd: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    common::run_with_stdin(
        Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env_remove("TIDEPOOL_DATA_DIR")
            .env_remove("TIDEPOOL_CONFIG")
            .env("RUST_LOG", "warn"),
        stdin,
    )
}

/// Registers an agent: (key, claim URL, verification code).
fn register(base: &str, name: &str) -> (String, String, String) {
    let (status, body) = common::api(
        base,
        "POST",
        "/agents/register",
        None,
        json!({"name": name}),
    );
    assert_eq!(status, 201, "{body}");
    let a = &body["agent"];
    let s = |k: &str| a[k].as_str().unwrap().to_owned();
    (s("api_key"), s("claim_url"), s("verification_code"))
}

fn post_as(base: &str, key: &str, title: &str) -> u16 {
    common::api(
        base,
        "POST",
        "/posts",
        Some(key),
        json!({"submolt_name": "general", "title": title, "content": "from the admin test"}),
    )
    .0
}

/// The agent's owner account, read straight from the database (beside the running server).
fn owner_email(data: &Path, agent: &str) -> Option<String> {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("tidepool.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT o.email FROM agents a LEFT JOIN owners o ON o.id = a.owner_id WHERE a.name = ?1",
        [agent],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn admin_claim_gives_an_owner_or_keeps_the_claim_link_under_the_servers_config() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let data = home.join("store");
    // The server and the admin commands share this file; admin commands run without
    // --data-dir, so only the file can lead them to the store.
    let config = home.join("tidepool.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nmax_agents_per_owner = 1\nrate_limits = false\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let server = start(&data, &["--config", config.to_str().unwrap()], "warn");
    let base = server.base.clone();
    let (key_a, _, _) = register(&base, "Anemone");
    let (key_b, claim_b, code_b) = register(&base, "Barnacle");
    register(&base, "Cuttlefish");

    // ./tidepool.toml is read from the working directory...
    let (ok, out) = tidepool(
        home,
        &["admin", "create-owner", "op@example.com"],
        "an operator password\n",
    );
    assert!(ok, "{out}");
    // ...and --config names it from anywhere else.
    let elsewhere = home.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let cfg = config.to_str().unwrap();
    let (ok, out) = tidepool(
        &elsewhere,
        &[
            "admin",
            "claim",
            "anemone",
            "--owner",
            "OP@example.com",
            "--config",
            cfg,
        ],
        "",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("claimed Anemone") && out.contains("op@example.com"),
        "{out}"
    );
    assert_eq!(
        owner_email(&data, "Anemone").as_deref(),
        Some("op@example.com")
    );
    assert_eq!(post_as(&base, &key_a, "owned and writing"), 201);

    // The file's cap of one agent per owner applies to operators too.
    let (ok, out) = tidepool(
        home,
        &["admin", "claim", "Cuttlefish", "--owner", "op@example.com"],
        "",
    );
    assert!(!ok && out.contains("already own 1 agents"), "{out}");
    let (ok, out) = tidepool(
        home,
        &[
            "admin",
            "claim",
            "Cuttlefish",
            "--owner",
            "nobody@example.com",
        ],
        "",
    );
    assert!(
        !ok && out.contains("no owner account nobody@example.com"),
        "{out}"
    );
    assert_eq!(owner_email(&data, "Cuttlefish"), None);

    // Without --owner the agent writes at once, and its claim link still works for a human.
    assert_eq!(post_as(&base, &key_b, "too early"), 403);
    let (ok, out) = tidepool(home, &["admin", "claim", "Barnacle"], "");
    assert!(
        ok && out.contains("claimed Barnacle") && out.contains("no owner"),
        "{out}"
    );
    assert_eq!(
        common::api(&base, "GET", "/agents/status", Some(&key_b), json!({})).1["status"],
        "claimed"
    );
    assert_eq!(post_as(&base, &key_b, "operator says yes"), 201);
    let (ok, out) = tidepool(home, &["admin", "claim", "Barnacle"], "");
    assert!(!ok && out.contains("already claimed"), "{out}");
    let mut human = web::Browser::new(&base);
    human.sign_up_and_log_in("human@example.com", "a human's long password");
    let claimed = human.claim(&claim_b, &code_b);
    assert_eq!(claimed.status, 303, "{}", claimed.body);
    assert_eq!(
        owner_email(&data, "Barnacle").as_deref(),
        Some("human@example.com")
    );
    // Used once, the link is gone; and an owned agent is not handed to someone else.
    assert_eq!(human.get(&claim_b.replace(&base, "")).status, 404);
    let (ok, out) = tidepool(
        home,
        &["admin", "claim", "Barnacle", "--owner", "op@example.com"],
        "",
    );
    assert!(!ok && out.contains("already has an owner"), "{out}");

    let (ok, audit) = tidepool(home, &["admin", "audit"], "");
    assert!(ok, "{audit}");
    let operator_claims: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("agent_claimed") && l.contains(r#""by":"operator""#))
        .collect();
    assert_eq!(operator_claims.len(), 2, "{audit}");
    assert!(
        operator_claims
            .iter()
            .any(|l| l.contains("Anemone") && l.contains(r#""owner":"#) && !l.contains("null")),
        "{audit}"
    );
    stop(server);
}

/// Waits for a process that should exit on its own; kills it and fails if it does not.
fn exits_within(mut child: std::process::Child, secs: u64) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_store_from_a_newer_tidepool_is_refused_by_serve_and_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    stop(start(&data, &[], "warn"));
    let db = data.join("tidepool.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let known: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let future = known + 1;
    conn.pragma_update(None, "user_version", future).unwrap();
    drop(conn);

    let serve = Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, out) = exits_within(serve, 30);
    let says = |out: &str| {
        out.contains(&format!("schema version {future}"))
            && out.contains(&format!("({known})"))
            && out.contains("Upgrade tidepool")
    };
    assert!(!ok && says(&out), "{out}");
    let (ok, out) = tidepool(
        dir.path(),
        &["admin", "audit", "--data-dir", data.to_str().unwrap()],
        "",
    );
    assert!(!ok && says(&out), "{out}");
    // Refused, not touched.
    let after: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(after, future);
}
