//! The page cache's memory bound, on the real binary: ten thousand distinct listing URLs
//! (each a page the server really renders and may cache) must not grow the resident set
//! past what the cache is allowed to hold plus a margin. Before the bound, 2,000 URLs took
//! the server from about 100 MB to over 1 GB, and it stayed there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::{start, stop};

const MIB: u64 = 1024 * 1024;
/// The cache's bound for this run (`--page-cache-bytes`).
const BOUND: u64 = 8 * MIB;
/// What the process may grow by beyond the bound, over its size after start-up, seeding
/// and a small warm-up. The cache charges its bodies exactly and estimates its
/// bookkeeping, but the resident set also holds what no cache account sees:
/// - growth unrelated to the cache: worker threads, the reader connections' SQLite page
///   caches and the mapped database pages they touch, four requests in flight with their
///   rows and rendered buffers. Measured with the cache off (`--page-cache-ms 0`) on this
///   loop: about 8 MiB.
/// - allocator slack around the cached pages: mimalloc keeps freed pages for reuse and
///   rounds allocations up to size classes. The cache holds bodies in pieces of one size
///   (`cache::PIECE`) to keep this small; measured, the cache at its bound added 6 to
///   8 MiB, no more than the bound itself.
///
/// So 14 to 16 MiB of growth was observed in all (bound included); bound plus margin
/// allows 32 MiB, twice that, and is still far below what the same loop cost without a
/// bound (hundreds of MiB).
const MARGIN: u64 = 24 * MIB;
const URLS: usize = 10_000;
const POSTS: usize = 160;
const THREADS: usize = 4;
/// The resident set is sampled between rounds, so a peak in the middle counts too.
const ROUNDS: usize = 20;

/// Kills the server if the test fails before stopping it, so no server outlives its test.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// VmRSS of `pid`, in bytes.
fn resident(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kb: u64 = line
        .trim_start_matches(field)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Varied, harmless prose of about `len` bytes (the same text repeated would still be
/// rendered in full, but varied words make search pages differ too).
fn prose(seed: u64, len: usize) -> String {
    const WORDS: &[&str] = &[
        "tide", "pool", "anemone", "kelp", "crab", "barnacle", "mussel", "urchin", "starfish",
        "limpet", "current", "shore", "rock", "sand", "wave", "foam", "salt", "sun", "shell",
        "seaweed", "gull", "heron", "drift", "reef", "lagoon", "morning", "evening", "quiet",
        "bright", "cold", "warm", "slow", "green", "blue", "grey", "small", "hidden", "open",
        "watch", "count", "notice", "follow", "return", "settle", "gather", "rest",
    ];
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut out = String::with_capacity(len + 16);
    let mut n = 0u64;
    while out.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        n += 1;
        // A number every few words: a long run of dictionary words reads as a wallet
        // seed phrase to the guard, which refuses the post.
        if n.is_multiple_of(5) {
            let _ = write!(out, "{}. ", (x >> 40) % 1000);
        } else {
            out.push_str(WORDS[((x >> 33) % WORDS.len() as u64) as usize]);
            out.push(' ');
        }
    }
    out
}

/// The `i`-th distinct listing URL: four routes, each with its own (limit, offset) pair,
/// all within what the handlers accept, so each is a distinct cache key with a full page.
fn url(base: &str, i: usize) -> String {
    let j = i / 4;
    let (limit, offset) = (10 + j % 41, j / 41);
    match i % 4 {
        0 => format!("{base}/api/v1/posts?sort=new&limit={limit}&offset={offset}"),
        1 => format!("{base}/api/v1/submolts/general/feed?sort=new&limit={limit}&offset={offset}"),
        2 => format!("{base}/api/v1/posts?sort=top&t=all&limit={limit}&offset={offset}"),
        _ => format!("{base}/api/v1/search?q=tide&type=posts&limit={limit}&offset={offset}"),
    }
}

/// Fetches `urls` on `THREADS` threads (each with its own keep-alive client); returns
/// the bytes received.
fn fetch_all(urls: Vec<String>) -> u64 {
    let chunks: Vec<Vec<String>> = (0..THREADS)
        .map(|t| urls.iter().skip(t).step_by(THREADS).cloned().collect())
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut bytes = 0;
                for u in chunk {
                    let r = client.get(&u).send().unwrap();
                    assert_eq!(r.status().as_u16(), 200, "{u}");
                    bytes += r.bytes().unwrap().len() as u64;
                }
                bytes
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn resident_memory_stays_within_the_cache_bound_after_ten_thousand_distinct_listings() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc to read the resident set from");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bound = BOUND.to_string();
    let s = start(
        &dir.path().join("data"),
        &[
            "--auto-claim",
            "--rate-limits",
            "off",
            "--page-cache-bytes",
            &bound,
            // Nothing expires during the run: the byte bound alone must hold memory down.
            "--page-cache-ms",
            "600000",
        ],
        "warn",
    );
    let pid = s.child.id();
    let _guard = KillOnPanic(pid);
    let client = reqwest::blocking::Client::new();
    let api = |path: &str| format!("{}/api/v1{path}", s.base);

    let reg: Value = client
        .post(api("/agents/register"))
        .json(&json!({"name": "MemoryProbe", "description": "fills listings"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let key = reg["agent"]["api_key"].as_str().unwrap().to_owned();
    for i in 0..POSTS {
        let r = client
            .post(api("/posts"))
            .bearer_auth(&key)
            .json(&json!({
                "submolt_name": "general",
                "title": format!("tide notes {i}"),
                "content": format!("tide {}", prose(i as u64, 800)),
            }))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap());
    }
    // Warm-up: each route once per client thread, on one-post pages the loop does not ask
    // for, so code paths, connections and worker threads exist before the baseline while
    // the cache stays all but empty (what it holds later must count).
    let warm: Vec<String> = (0..4 * THREADS)
        .map(|i| {
            let u = url(&s.base, i % 4);
            u.replace("limit=10&offset=0", &format!("limit=1&offset={}", 100 + i))
        })
        .collect();
    fetch_all(warm);
    let baseline = resident(pid);

    // Every URL the loop asks for is a full page of visible posts (checked on the first
    // and the deepest; these two pages are part of the loop's own).
    let first: Value = client.get(url(&s.base, 3)).send().unwrap().json().unwrap();
    assert_eq!(first["count"], 10, "{first}");
    let deepest: Value = client
        .get(url(&s.base, URLS - 4))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(deepest["count"], 10 + ((URLS - 4) / 4) % 41, "{deepest}");

    let mut peak = baseline;
    let mut received = 0;
    let per_round = URLS / ROUNDS;
    for round in 0..ROUNDS {
        let urls = (round * per_round..(round + 1) * per_round)
            .map(|i| url(&s.base, i))
            .collect();
        received += fetch_all(urls);
        peak = peak.max(resident(pid));
    }
    let after = resident(pid);
    let hwm = status_field(pid, "VmHWM:");
    std::thread::sleep(Duration::from_secs(3));
    let settled = resident(pid);
    stop(s);

    let mb = |b: u64| b as f64 / MIB as f64;
    eprintln!(
        "page cache bound {:.0} MiB; {URLS} distinct URLs, {:.0} MiB of pages received; \
         resident: {:.1} MiB before, {:.1} MiB peak between rounds, {:.1} MiB after, \
         {:.1} MiB 3 s later (VmHWM {:.1} MiB)",
        mb(BOUND),
        mb(received),
        mb(baseline),
        mb(peak),
        mb(after),
        mb(settled),
        mb(hwm),
    );
    // The loop received far more than the bound, so an unbounded cache would show.
    assert!(received > 20 * BOUND, "{received}");
    let limit = baseline + BOUND + MARGIN;
    assert!(
        peak <= limit,
        "resident set {:.1} MiB exceeds {:.1} MiB (start {:.1} + bound {:.0} + margin {:.0})",
        mb(peak),
        mb(limit),
        mb(baseline),
        mb(BOUND),
        mb(MARGIN)
    );
}
