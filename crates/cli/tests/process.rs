//! Tests of the real `tidepool` binary: secrets never reach the disk or the logs, the
//! operator CLI works beside a running server, and a SIGTERM loses no acknowledged write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

mod common;
use common::{BIN, start, stop};

fn post(base: &str, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut req = client.post(format!("{base}/api/v1{path}")).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn get(base: &str, path: &str, key: Option<&str>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut req = client.get(format!("{base}/api/v1{path}"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// Every form a secret could be written in.
fn encodings(secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_owned(),
        hex::encode(secret),
        hex::encode(secret).to_uppercase(),
    ];
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        forms.push(engine.encode(secret));
    }
    // The random part alone, for keys with a known prefix.
    if let Some((_, random)) = secret.rsplit_once('_')
        && random.len() >= 16
    {
        forms.push(random.to_owned());
    }
    forms
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn no_issued_secret_reaches_the_database_the_wal_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Trace-level logs: the most the server can ever print.
    let s = start(&data, &["--rate-limits", "off"], "trace");
    let mut secrets: Vec<String> = Vec::new();
    let mut keys = Vec::new();
    for name in ["SecretKeeper", "Second_Agent", "third-agent"] {
        let (status, body) = post(
            &s.base,
            "/agents/register",
            None,
            json!({"name": name, "description": "keeps secrets"}),
        );
        assert_eq!(status, 201);
        let agent = &body["agent"];
        let key = agent["api_key"].as_str().unwrap().to_owned();
        let claim_url = agent["claim_url"].as_str().unwrap();
        secrets.push(key.clone());
        secrets.push(claim_url.rsplit('/').next().unwrap().to_owned());
        secrets.push(agent["verification_code"].as_str().unwrap().to_owned());
        keys.push(key);
    }
    // The operator claims while the server runs, and the server sees it at once.
    let claim = Command::new(BIN)
        .args([
            "admin",
            "claim",
            "secretkeeper",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        claim.status.success(),
        "{}",
        String::from_utf8_lossy(&claim.stderr)
    );
    assert!(String::from_utf8_lossy(&claim.stdout).contains("claimed SecretKeeper"));
    assert_eq!(
        get(&s.base, "/agents/status", Some(&keys[0])).1["status"],
        "claimed"
    );
    let again = Command::new(BIN)
        .args([
            "admin",
            "claim",
            "secretkeeper",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    // Use the keys: reads, writes, a rotation and a read-only key.
    let (status, _) = post(
        &s.base,
        "/posts",
        Some(&keys[0]),
        json!({"submolt_name": "general", "title": "hello", "content": "world"}),
    );
    assert_eq!(status, 201);
    let (_, rotated) = post(&s.base, "/agents/me/rotate-key", Some(&keys[0]), json!({}));
    let new_key = rotated["api_key"].as_str().unwrap().to_owned();
    secrets.push(new_key.clone());
    let (_, read_key) = post(&s.base, "/agents/me/keys", Some(&new_key), json!({}));
    secrets.push(read_key["api_key"].as_str().unwrap().to_owned());
    for k in &keys {
        get(&s.base, "/agents/me", Some(k));
    }
    get(&s.base, "/feed", Some(&new_key));
    // A wrong key is not echoed back either.
    let (status, body) = get(
        &s.base,
        "/agents/me",
        Some("moltbook_sk_NotARealKeyButLongEnoughToLookLikeOne"),
    );
    assert_eq!(status, 401);
    assert!(!body.to_string().contains("NotARealKey"));

    // Read the WAL while the server runs (shutdown checkpoints it away).
    let wal = std::fs::read(data.join("tidepool.db-wal")).unwrap_or_default();
    let logs = stop(s);
    let db = std::fs::read(data.join("tidepool.db")).unwrap();
    // Positive controls: the scan does find what is meant to be there.
    assert!(
        contains(&db, "SecretKeeper") || contains(&wal, "SecretKeeper"),
        "the scan cannot see the data"
    );
    assert!(
        // tidepool's own events at every level; other crates' only from INFO up (they log
        // user content below it), so DEBUG lines come from tidepool and tower-http.
        logs.contains("DEBUG") && logs.contains("agent registered"),
        "logs were not captured: {logs}"
    );
    for secret in &secrets {
        for form in encodings(secret) {
            assert!(!contains(&db, &form), "database holds a secret ({form})");
            assert!(!contains(&wal, &form), "WAL holds a secret ({form})");
            assert!(!logs.contains(&form), "logs hold a secret ({form})");
        }
    }
    // The audit log recorded the security events without their secrets.
    let audit = Command::new(BIN)
        .args(["admin", "audit", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout).to_string();
    for event in ["key_issued", "key_rotated", "agent_claimed"] {
        assert!(audit.contains(event), "audit lacks {event}: {audit}");
    }
    // Files are private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for f in ["tidepool.db", "server.secret"] {
            assert_eq!(
                std::fs::metadata(data.join(f))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o600,
                "{f}"
            );
        }
    }
}

#[test]
fn sigterm_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = start(&data, &["--rate-limits", "off", "--auto-claim"], "warn");
    let (_, reg) = post(&s.base, "/agents/register", None, json!({"name": "Writer"}));
    let key = reg["agent"]["api_key"].as_str().unwrap().to_owned();
    let (_, p) = post(
        &s.base,
        "/posts",
        Some(&key),
        json!({"submolt_name": "general", "title": "t", "content": "c"}),
    );
    let post_id = p["post"]["id"].as_str().unwrap().to_owned();

    // Eight writers comment as fast as they can; SIGTERM arrives while they do.
    let stop_at = Instant::now() + Duration::from_millis(700);
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (base, key, post_id) = (s.base.clone(), key.clone(), post_id.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut acked = 0u64;
                for i in 0..10_000 {
                    let r = client
                        .post(format!("{base}/api/v1/posts/{post_id}/comments"))
                        .bearer_auth(&key)
                        .json(&json!({"content": format!("comment {i}")}))
                        .send();
                    match r {
                        Ok(r) if r.status().as_u16() == 201 => acked += 1,
                        Ok(_) | Err(_) => {
                            if Instant::now() > stop_at {
                                break;
                            }
                        }
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let logs = stop(s);
    let acked: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        acked > 0,
        "no write was acknowledged before the signal; logs: {logs}"
    );

    let s = start(&data, &["--rate-limits", "off"], "warn");
    let (_, stats) = get(&s.base, "/stats", None);
    let stored = stats["comments"].as_u64().unwrap();
    let (_, post) = get(&s.base, &format!("/posts/{post_id}"), None);
    stop(s);
    eprintln!("acknowledged before SIGTERM: {acked}, stored after restart: {stored}");
    assert!(
        stored >= acked,
        "{acked} comments acknowledged, {stored} stored"
    );
    assert_eq!(post["post"]["comment_count"].as_u64().unwrap(), stored);
}

#[test]
fn operators_create_owners_and_reset_passwords_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A store must exist first (the command never creates one by accident).
    let run = |args: &[&str], stdin: &str| {
        common::run_with_stdin(
            Command::new(BIN).args(args).arg("--data-dir").arg(&data),
            stdin,
        )
    };
    let (ok, out) = run(
        &["admin", "create-owner", "op@example.com"],
        "a good password\n",
    );
    assert!(!ok && out.contains("no tidepool store"), "{out}");
    let server = start(&data, &[], "warn");
    stop(server);

    let (ok, out) = run(
        &["admin", "create-owner", "op@example.com", "--admin"],
        "a good password\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("created admin owner op@example.com"), "{out}");
    let (ok, out) = run(
        &["admin", "create-owner", "OP@example.com"],
        "another password\n",
    );
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = run(&["admin", "create-owner", "new@example.com"], "short\n");
    assert!(!ok && out.contains("at least 10 characters"), "{out}");
    let (ok, out) = run(&["admin", "create-owner", "new@example.com"], "");
    assert!(!ok && out.contains("no password on stdin"), "{out}");
    let (ok, out) = run(
        &["admin", "reset-password", "nobody@example.com"],
        "a good password\n",
    );
    assert!(!ok && out.contains("No account"), "{out}");
    let (ok, out) = run(
        &["admin", "reset-password", "op@example.com"],
        "a brand new password\n",
    );
    assert!(ok, "{out}");

    // The new password works over HTTP; the old one does not; no password is on disk.
    let server = start(&data, &[], "warn");
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/login", server.base))
        .header("accept", "text/html")
        .send()
        .unwrap();
    let cookie = page
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = page.text().unwrap();
    let i = body.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &body[i..i + 32];
    let login = |password: &str| {
        client
            .post(format!("{}/login", server.base))
            .header("cookie", &cookie)
            .header("origin", &server.base)
            .form(&[
                ("csrf", csrf),
                ("email", "op@example.com"),
                ("password", password),
            ])
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(login("a good password"), 401);
    assert_eq!(login("a brand new password"), 303);
    stop(server);
    let db = std::fs::read(data.join("tidepool.db")).unwrap();
    for secret in ["a good password", "a brand new password"] {
        assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}
