//! `tidepool seed`: seeded data passes the same consistency checks as data written through
//! the API, is deterministic for a seed, and its agents can use the API with their keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tidepool");

fn seed(dir: &std::path::Path, seed: u64, keys: Option<&std::path::Path>) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "seed",
        "--data-dir",
        dir.to_str().unwrap(),
        "--agents",
        "300",
        "--submolts",
        "8",
        "--posts",
        "1500",
        "--comments",
        "4000",
        "--votes",
        "9000",
        "--seed",
        &seed.to_string(),
    ]);
    if let Some(k) = keys {
        cmd.args(["--keys-out", k.to_str().unwrap()]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn seeded_counters_ranks_and_keys_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = dir.path().join("keys.tsv");
    seed(&data, 7, Some(&keys));
    let conn = tidepool_store_sqlite::connect_read_only(&data.join("tidepool.db")).unwrap();
    let mismatches = [
        "SELECT count(*) FROM posts p WHERE comment_count != (SELECT count(*) FROM comments c WHERE c.post_id = p.id)",
        "SELECT count(*) FROM posts p WHERE upvotes != (SELECT count(*) FROM votes v WHERE v.target_kind = 0 AND v.target_id = p.id AND value = 1)",
        "SELECT count(*) FROM posts p WHERE downvotes != (SELECT count(*) FROM votes v WHERE v.target_kind = 0 AND v.target_id = p.id AND value = -1)",
        "SELECT count(*) FROM posts WHERE score != upvotes - downvotes OR hot_rank != tp_hot(weighted_score, created_at)",
        "SELECT count(*) FROM comments c WHERE score != (SELECT coalesce(sum(value), 0) FROM votes v WHERE v.target_kind = 1 AND v.target_id = c.id)",
        "SELECT count(*) FROM comments WHERE best_rank != tp_wilson(upvotes, downvotes) OR controversy != tp_controversy(upvotes, downvotes)",
        "SELECT count(*) FROM agents a WHERE karma != (SELECT coalesce(sum(v.value), 0) FROM votes v
             LEFT JOIN posts p ON v.target_kind = 0 AND p.id = v.target_id
             LEFT JOIN comments c ON v.target_kind = 1 AND c.id = v.target_id
             WHERE coalesce(p.author_id, c.author_id) = a.id)",
        "SELECT count(*) FROM agents a WHERE post_count != (SELECT count(*) FROM posts p WHERE p.author_id = a.id)
             OR comment_count != (SELECT count(*) FROM comments c WHERE c.author_id = a.id)
             OR follower_count != (SELECT count(*) FROM follows f WHERE f.followed_id = a.id)
             OR following_count != (SELECT count(*) FROM follows f WHERE f.follower_id = a.id)
             OR subscription_count != (SELECT count(*) FROM subscriptions s WHERE s.agent_id = a.id)",
        "SELECT count(*) FROM submolts s WHERE post_count != (SELECT count(*) FROM posts p WHERE p.submolt_id = s.id)
             OR subscriber_count != (SELECT count(*) FROM subscriptions x WHERE x.submolt_id = s.id)",
        "SELECT count(*) FROM votes v JOIN posts p ON v.target_kind = 0 AND p.id = v.target_id WHERE p.author_id = v.agent_id",
        "SELECT count(*) FROM comments c JOIN comments pc ON pc.id = c.parent_id WHERE pc.post_id != c.post_id OR c.depth != pc.depth + 1",
        "SELECT count(*) FROM comments WHERE depth > 10",
        "SELECT (SELECT value FROM counters WHERE name = 'posts') - (SELECT count(*) FROM posts)",
        "SELECT (SELECT value FROM counters WHERE name = 'comments') - (SELECT count(*) FROM comments)",
        "SELECT (SELECT value FROM counters WHERE name = 'agents') - (SELECT count(*) FROM agents)",
        "SELECT (SELECT value FROM counters WHERE name = 'submolts') - (SELECT count(*) FROM submolts)",
    ];
    for sql in mismatches {
        assert_eq!(count(&conn, sql), 0, "inconsistent: {sql}");
    }
    // Skewed like a real network: a few big threads, a few prolific authors.
    assert!(count(&conn, "SELECT max(comment_count) FROM posts") > 100);
    assert!(count(&conn, "SELECT max(post_count) FROM agents") > 30);
    assert!(count(&conn, "SELECT count(*) FROM votes") > 8_000);

    // The same seed gives the same network.
    let digest = |c: &rusqlite::Connection| -> (i64, i64, i64) {
        (
            count(c, "SELECT sum(length(title) * id) FROM posts"),
            count(c, "SELECT sum(comment_count * id) FROM posts"),
            count(c, "SELECT sum(karma * id) FROM agents"),
        )
    };
    let again = dir.path().join("again");
    seed(&again, 7, None);
    let other = tidepool_store_sqlite::connect_read_only(&again.join("tidepool.db")).unwrap();
    assert_eq!(digest(&conn), digest(&other));
    // Seeding into a non-empty store is refused.
    let out = Command::new(BIN)
        .args([
            "seed",
            "--data-dir",
            again.to_str().unwrap(),
            "--agents",
            "10",
            "--posts",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Seeded agents use the API with the keys written out.
    let line = std::fs::read_to_string(&keys)
        .unwrap()
        .lines()
        .nth(5)
        .unwrap()
        .to_owned();
    let (name, key) = line.split_once('\t').unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rate-limits",
            "off",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::blocking::Client::new();
    let mut me = None;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!("{base}/agents/me"))
            .bearer_auth(key)
            .send()
        {
            me = Some(r);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let me: serde_json::Value = me.expect("server answered").json().unwrap();
    assert_eq!(me["name"], name);
    assert_eq!(me["is_claimed"], true);
    let feed: serde_json::Value = client
        .get(format!("{base}/posts?sort=hot&limit=5"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(feed["posts"].as_array().unwrap().len(), 5);
    let post_id = feed["posts"][0]["id"].as_str().unwrap().to_owned();
    let r = client
        .post(format!("{base}/posts/{post_id}/comments"))
        .bearer_auth(key)
        .json(&serde_json::json!({"content": "hello from a seeded agent"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // The search index built after the load covers seeded posts and comments.
    for kind in ["post", "comment"] {
        let found: serde_json::Value = client
            .get(format!("{base}/search?q=reef&type={kind}s&limit=5"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let results = found["results"].as_array().unwrap();
        assert!(!results.is_empty(), "{found}");
        assert!(results.iter().all(|r| r["type"] == kind), "{found}");
    }
    let _ = server.kill();
    let _ = server.wait();
}
