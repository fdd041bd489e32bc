//! Three `tidepool serve` processes on one PostgreSQL database, spoken to in turn (a
//! round-robin "balancer" in the test): what they must agree on, they agree on. Every test
//! is bounded in requests and time and sends traffic only to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidepool_store_pg::testing::TestDb;
use tidepool_store_pg::{PgPool, Sql};

struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    nodes: Vec<Node>,
    db: TestDb,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Cluster {
    /// `n` nodes on a fresh database, agents claimed at registration; `toml` is added to
    /// every node's configuration file.
    async fn start(n: usize, toml: &str) -> Self {
        Self::start_on(TestDb::new().await, n, toml).await
    }

    /// [`Cluster::start`] on `db` (nodes connect to its [`TestDb::url`]).
    async fn start_on(db: TestDb, n: usize, toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tidepool.toml");
        std::fs::write(&config, format!("auto_claim = true\n{toml}\n")).unwrap();
        let mut cluster = Self {
            nodes: Vec::new(),
            db,
            dir,
            config,
        };
        for i in 0..n {
            cluster.start_node(i).await;
        }
        cluster
    }

    fn data_dir(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    /// Starts node `i` (its data dir carries node 0's secret: nodes of one database share
    /// it, and refuse to start otherwise).
    async fn start_node(&mut self, i: usize) {
        let data = self.data_dir(i);
        if i > 0 && !data.exists() {
            std::fs::create_dir_all(&data).unwrap();
            std::fs::copy(
                self.data_dir(0).join("server.secret"),
                data.join("server.secret"),
            )
            .unwrap();
        }
        let node = spawn_node(&data, &self.config, self.db.url(), &format!("n{i}")).await;
        if i < self.nodes.len() {
            self.nodes[i] = node;
        } else {
            self.nodes.push(node);
        }
    }

    fn pool(&self) -> PgPool {
        PgPool::new(&self.db.config()).unwrap()
    }
}

async fn spawn_node(data: &Path, config: &Path, url: &str, id: &str) -> Node {
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(common::BIN)
        .args([
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .args(["--config", config.to_str().unwrap(), "--database", url])
        .args(["--node-id", id])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/ready"))
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "node {id} did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Node { child, base }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut req = client.request(method, url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn register(client: &reqwest::Client, base: &str, name: &str) -> String {
    let (status, body) = call(
        client,
        reqwest::Method::POST,
        format!("{base}/api/v1/agents/register"),
        None,
        Some(json!({"name": name, "description": "a test agent"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    body["agent"]["api_key"].as_str().unwrap().to_owned()
}

async fn one_i64(db: &PgPool, sql: &'static str) -> i64 {
    let row = db.query_one(&Sql::new(sql, &[]), &[]).await.unwrap();
    row.get(0)
}

/// 20,000 concurrent votes and comments spread over three nodes: afterwards every
/// counter, rank and karma equals what the vote and comment rows say, and nothing failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_stay_exact_under_concurrent_writes_on_three_nodes() {
    let cluster = Cluster::start(3, "rate_limits = false").await;
    let client = reqwest::Client::new();
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let mut keys = Vec::new();
    for i in 0..40 {
        keys.push(register(&client, &bases[i % 3], &format!("Writer{i}")).await);
    }
    let mut posts = Vec::new();
    for i in 0..10 {
        let (status, body) = call(
            &client,
            reqwest::Method::POST,
            format!("{}/api/v1/posts", bases[i % 3]),
            Some(&keys[i]),
            Some(json!({"submolt_name": "general", "title": format!("Post {i}"), "content": "count me"})),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{body}");
        posts.push((i, body["post"]["id"].as_str().unwrap().to_owned()));
    }
    const TOTAL: usize = 20_000;
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, bases, keys, posts) =
            (client.clone(), bases.clone(), keys.clone(), posts.clone());
        let (next, failures) = (next.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= TOTAL {
                    break;
                }
                // A fixed pseudo-random walk: which agent, which post, which action.
                let x = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
                let (author, post) = &posts[(x % 10) as usize];
                let mut agent = ((x >> 8) % 40) as usize;
                if agent == *author {
                    agent = (agent + 1) % 40;
                }
                let base = &bases[n % 3];
                let (path, body) = match (x >> 20) % 3 {
                    0 => (format!("{base}/api/v1/posts/{post}/upvote"), None),
                    1 => (format!("{base}/api/v1/posts/{post}/downvote"), None),
                    _ => (
                        format!("{base}/api/v1/posts/{post}/comments"),
                        Some(json!({"content": format!("comment {n}")})),
                    ),
                };
                match call(
                    &client,
                    reqwest::Method::POST,
                    path,
                    Some(&keys[agent]),
                    body,
                )
                .await
                {
                    Ok((200 | 201, _)) => {}
                    Ok((status, body)) => {
                        eprintln!("{status}: {body}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "{TOTAL} writes over 3 nodes in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0);

    let db = cluster.pool();
    let wrong_posts = one_i64(
        &db,
        "SELECT count(*) FROM posts p WHERE
            p.score <> (SELECT coalesce(sum(value), 0) FROM votes v WHERE v.target_kind = 0 AND v.target_id = p.id)
         OR p.upvotes <> (SELECT count(*) FROM votes v WHERE v.target_kind = 0 AND v.target_id = p.id AND v.value > 0)
         OR p.downvotes <> (SELECT count(*) FROM votes v WHERE v.target_kind = 0 AND v.target_id = p.id AND v.value < 0)
         OR p.comment_count <> (SELECT count(*) FROM comments c WHERE c.post_id = p.id)
         OR abs(p.hot_rank - tp_hot(p.score, p.created_at)) > 1e-9",
    )
    .await;
    assert_eq!(
        wrong_posts, 0,
        "posts whose counters disagree with their rows"
    );
    let wrong_karma = one_i64(
        &db,
        "SELECT count(*) FROM agents a WHERE a.karma <>
            (SELECT coalesce(sum(v.value), 0) FROM votes v JOIN posts p ON v.target_kind = 0 AND p.id = v.target_id WHERE p.author_id = a.id)
          + (SELECT coalesce(sum(v.value), 0) FROM votes v JOIN comments c ON v.target_kind = 1 AND c.id = v.target_id WHERE c.author_id = a.id)",
    )
    .await;
    assert_eq!(
        wrong_karma, 0,
        "agents whose karma disagrees with the votes"
    );
    let comments = one_i64(&db, "SELECT count(*) FROM comments").await;
    let counted = one_i64(
        &db,
        "SELECT sum(value)::bigint FROM counters WHERE name = 'comments'",
    )
    .await;
    assert_eq!(comments, counted);
    assert!(comments > 5_000, "{comments}");
}

/// A per-key limit of L, 3L requests spread over three nodes: between L and L+2 allowed
/// (per-process limiters would allow about 3L).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_key_limit_holds_across_nodes() {
    let cluster = Cluster::start(
        3,
        "[limits]\nreads = { max = 30, window_secs = 60 }\nper_ip = { max = 10000, window_secs = 60 }",
    )
    .await;
    let client = reqwest::Client::new();
    let key = register(&client, &cluster.nodes[0].base, "Limited").await;
    let mut allowed = 0;
    for i in 0..90 {
        let base = &cluster.nodes[i % 3].base;
        let (status, _) = call(
            &client,
            reqwest::Method::GET,
            format!("{base}/api/v1/agents/me"),
            Some(&key),
            None,
        )
        .await
        .unwrap();
        match status {
            200 => allowed += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!((30..=32).contains(&allowed), "{allowed} of 90 allowed");
}

/// A key rotated through one node stops working on the others within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_refused_by_every_node_within_a_second() {
    let cluster = Cluster::start(3, "rate_limits = false").await;
    let client = reqwest::Client::new();
    let key = register(&client, &cluster.nodes[0].base, "Rotator").await;
    // Every node has seen (and cached) the key.
    for n in &cluster.nodes {
        let (status, _) = call(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/agents/me", n.base),
            Some(&key),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }
    let (status, body) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/agents/me/rotate-key", cluster.nodes[0].base),
        Some(&key),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let rotated = Instant::now();
    for n in &cluster.nodes[1..] {
        loop {
            let (status, _) = call(
                &client,
                reqwest::Method::GET,
                format!("{}/api/v1/agents/me", n.base),
                Some(&key),
                None,
            )
            .await
            .unwrap();
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                rotated.elapsed() < Duration::from_secs(1),
                "the old key still works on {} after a second",
                n.base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `kill -9` of one node under write load: every acknowledged write is there, and the
/// other nodes go on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_node_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, "rate_limits = false").await;
    let client = reqwest::Client::new();
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let key = register(&client, &bases[0], "Survivor").await;
    let (_, body) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/posts", bases[0]),
        Some(&key),
        Some(json!({"submolt_name": "general", "title": "Still here", "content": "x"})),
    )
    .await
    .unwrap();
    let post = body["post"]["id"].as_str().unwrap().to_owned();
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let after_kill = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (client, bases, key, post) = (client.clone(), bases.clone(), key.clone(), post.clone());
        let (acked, after_kill, killed) = (acked.clone(), after_kill.clone(), killed.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..150 {
                let base = &bases[(t + i) % 3];
                let sent_after_kill = killed.load(Ordering::SeqCst);
                if let Ok((201, body)) = call(
                    &client,
                    reqwest::Method::POST,
                    format!("{base}/api/v1/posts/{post}/comments"),
                    Some(&key),
                    Some(json!({"content": format!("w{t}-{i}")})),
                )
                .await
                {
                    acked
                        .lock()
                        .unwrap()
                        .push(body["comment"]["id"].as_str().unwrap().to_owned());
                    if sent_after_kill {
                        after_kill.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let victim = &mut cluster.nodes[1].child;
    Command::new("kill")
        .args(["-9", &victim.id().to_string()])
        .status()
        .unwrap();
    let _ = victim.wait();
    killed.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        after_kill.load(Ordering::Relaxed) > 100,
        "the survivors kept serving"
    );
    let db = cluster.pool();
    let stored: std::collections::HashSet<String> = db
        .query(&Sql::new("SELECT uuid FROM comments", &[]), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged comments lost", lost.len());
    // The restarted node rejoins.
    cluster.start_node(1).await;
    let (status, _) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/posts/{post}", cluster.nodes[1].base),
        Some(&key),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}

/// A one-second job on three nodes runs once per tick; when its node is killed, another
/// takes it over within the lease time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_runs_once_per_tick_and_moves_when_its_node_dies() {
    let mut cluster = Cluster::start(3, "job_interval_ms = 1000").await;
    let db = cluster.pool();
    tokio::time::sleep(Duration::from_secs(6)).await;
    const RUNS: Sql = Sql::new(
        "SELECT tick, node FROM job_runs WHERE job = 'prune' ORDER BY tick",
        &[],
    );
    let runs: Vec<(i64, String)> = db
        .query(&RUNS, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ticks: Vec<i64> = runs.iter().map(|r| r.0).collect();
    // One row per tick (the key forbids two), and no tick skipped while a leader lives.
    assert!(ticks.len() >= 5, "{runs:?}");
    assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "{runs:?}");
    let leader = runs.last().unwrap().1.clone();
    let index: usize = leader.trim_start_matches('n').parse().unwrap();
    let last_before = *ticks.last().unwrap();
    let victim = &mut cluster.nodes[index].child;
    Command::new("kill")
        .args(["-9", &victim.id().to_string()])
        .status()
        .unwrap();
    let _ = victim.wait();
    let killed = Instant::now();
    // Lease time (3 s for one-second ticks) plus a tick.
    loop {
        let runs: Vec<(i64, String)> = db
            .query(&RUNS, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if let Some((tick, node)) = runs.iter().find(|(t, _)| *t > last_before + 1)
            && *node != leader
        {
            eprintln!(
                "tick {tick} ran on {node} {:?} after the kill",
                killed.elapsed()
            );
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "no other node took the jobs over: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Registers an agent through `a`, lets `b` cache its key, rotates the key through `a` and
/// returns how long after the rotation was acknowledged `b` refused the old key. Fails
/// past the bound, a second.
async fn refused_after(client: &reqwest::Client, a: &str, b: &str, name: &str) -> Duration {
    let key = register(client, a, name).await;
    // Twice: the second answer comes from b's key cache.
    for _ in 0..2 {
        let (status, _) = call(
            client,
            reqwest::Method::GET,
            format!("{b}/api/v1/agents/me"),
            Some(&key),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }
    let (status, body) = call(
        client,
        reqwest::Method::POST,
        format!("{a}/api/v1/agents/me/rotate-key"),
        Some(&key),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let rotated = Instant::now();
    loop {
        let (status, _) = call(
            client,
            reqwest::Method::GET,
            format!("{b}/api/v1/agents/me"),
            Some(&key),
            None,
        )
        .await
        .unwrap();
        let after = rotated.elapsed();
        if status == 401 {
            return after;
        }
        assert_eq!(status, 200);
        assert!(
            after < Duration::from_secs(1),
            "the old key of {name} still works on {b} after a second"
        );
    }
}

/// `n` rotations through node 0, each checked on node 1: every one refused within a
/// second. Prints the delays' spread with `label`.
async fn revocations(cluster: &Cluster, n: usize, label: &str) {
    let client = reqwest::Client::new();
    let (a, b) = (&cluster.nodes[0].base, &cluster.nodes[1].base);
    let mut delays = Vec::new();
    for i in 0..n {
        delays.push(refused_after(&client, a, b, &format!("{label}{i}")).await);
    }
    delays.sort();
    println!(
        "{label}: a key rotated through one node is refused by another after: min {:?}, \
         median {:?}, max {:?} ({n} rotations)",
        delays[0],
        delays[n / 2],
        delays[n - 1]
    );
}

/// The process id of node `node`'s LISTEN connection, once it is listening.
async fn listener_pid(db: &PgPool, node: &str) -> i32 {
    const LISTENER: Sql = Sql::new(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        &[tidepool_store_pg::Type::TEXT],
    );
    let name = format!("tidepool-listen {node}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = db.query(&LISTENER, &[&name]).await.unwrap();
        if let [row] = rows.as_slice() {
            return row.get(0);
        }
        assert!(
            rows.len() <= 1 && Instant::now() < deadline,
            "{} listener connections for {node}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Other nodes hear of a revocation as it commits (NOTIFY), well before any cache
/// lifetime; and a post deleted through one node leaves another's cached listing at
/// once, although that cache would keep it for a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_deletions_reach_the_other_nodes_caches_at_once() {
    let cluster = Cluster::start(2, "rate_limits = false\npage_cache_ms = 60000").await;
    listener_pid(&cluster.pool(), "n1").await;
    // Each within the bound (a second); how much faster is printed, not asserted
    // (timings on a shared machine). That notifications, not lifetimes, do it is shown by
    // the page cache below, whose lifetime is a minute, and by store-pg's tests/notify.rs.
    revocations(&cluster, 20, "Notified").await;

    let client = reqwest::Client::new();
    let (a, b) = (&cluster.nodes[0].base, &cluster.nodes[1].base);
    let key = register(&client, a, "Poster").await;
    let post = |title: &'static str| {
        let (client, key) = (client.clone(), key.clone());
        async move {
            let (status, body) = call(
                &client,
                reqwest::Method::POST,
                format!("{a}/api/v1/posts"),
                Some(&key),
                Some(json!({"submolt_name": "general", "title": title, "content": "cached"})),
            )
            .await
            .unwrap();
            assert_eq!(status, 201, "{body}");
            body["post"]["id"].as_str().unwrap().to_owned()
        }
    };
    let listed = || {
        let client = client.clone();
        async move {
            let (status, body) = call(
                &client,
                reqwest::Method::GET,
                format!("{b}/api/v1/posts?sort=new"),
                None,
                None,
            )
            .await
            .unwrap();
            assert_eq!(status, 200, "{body}");
            body["posts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let first = post("first").await;
    assert!(listed().await.contains(&first));
    let second = post("second").await;
    assert!(
        !listed().await.contains(&second),
        "node 1 serves its cached page (a minute long)"
    );
    let (status, body) = call(
        &client,
        reqwest::Method::DELETE,
        format!("{a}/api/v1/posts/{first}"),
        Some(&key),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let deleted = Instant::now();
    loop {
        let ids = listed().await;
        if !ids.contains(&first) {
            assert!(ids.contains(&second), "the whole page was rendered afresh");
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "the deleted post is still in node 1's cached listing after a second"
        );
    }
    println!(
        "a deleted post left the other node's cached listing after {:?}",
        deleted.elapsed()
    );
}

/// The listener's connection killed (`pg_terminate_backend`): the node reconnects and
/// keeps hearing revocations; while it was away its keys lived their short lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_connection_comes_back() {
    let cluster = Cluster::start(2, "rate_limits = false").await;
    let db = cluster.pool();
    let pid = listener_pid(&db, "n1").await;
    const KILL: Sql = Sql::new(
        "SELECT pg_terminate_backend($1)",
        &[tidepool_store_pg::Type::INT4],
    );
    let killed = Instant::now();
    db.query_one(&KILL, &[&pid]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let now = listener_pid(&db, "n1").await;
        if now != pid {
            break now;
        }
        assert!(Instant::now() < deadline, "node 1 did not listen again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "listener back (pid {pid} -> {again}) {:?} after the kill",
        killed.elapsed()
    );
    revocations(&cluster, 10, "Relistened").await;
}

/// Nodes on pgbouncer (transaction mode, `unnamed`) with `listen_url` straight at
/// PostgreSQL: notifications pass through pgbouncer and the listeners hear them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgbouncer_with_listen_url_direct() {
    let db = TestDb::through_pgbouncer().await;
    let toml = format!(
        "rate_limits = false\n[database]\nstatements = \"unnamed\"\nlisten_url = \"{}\"",
        db.direct_url()
    );
    let cluster = Cluster::start_on(db, 2, &toml).await;
    listener_pid(&cluster.pool(), "n1").await;
    revocations(&cluster, 10, "Bounced").await;
}

/// A node that cannot listen at all (its `listen_url` leads nowhere) still refuses a key
/// revoked elsewhere within a second: its key cache stays on the short lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_listener_revocations_still_arrive_within_a_second() {
    let db = TestDb::new().await;
    let nowhere = format!(
        "postgres://postgres@127.0.0.1:{}/nowhere",
        common::free_port()
    );
    let toml = format!("rate_limits = false\n[database]\nlisten_url = \"{nowhere}\"");
    let cluster = Cluster::start_on(db, 2, &toml).await;
    revocations(&cluster, 10, "Unheard").await;
}
