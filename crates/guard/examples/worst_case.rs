//! `cargo run --release -p tidepool-guard --example worst_case`: the guard's cost on
//! adversarial inputs, per KB and as a multiple of a typical 1 KB post's cost per KB.
//!
//! Options: `--only a,b` (inputs whose name contains one of these), `--sizes 1KB,40KB`,
//! `--budget SECS` (an input whose scan takes longer is not run at larger sizes; default
//! 20), `--stages` (time each stage of the guard too), `--posts FILE` (JSON Lines of real
//! posts with a `content` field, for a second reference; by default
//! `../shared/data/moltbook-posts-dev.jsonl` beside the workspace, when present), `--check`
//! (exit with status 1 if any ratio is above 10).
//!
//! The inputs are those of the criterion bench (`benches/support/adversarial.rs`); this
//! runs in a minute or two instead of criterion's long runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../benches/support/adversarial.rs"]
mod adversarial;

use std::hint::black_box;
use std::time::{Duration, Instant};

use tidepool_guard::Guard;

/// Median time of `f`, repeated for about `target` (at least once, at most 500 times).
fn time(target: Duration, mut f: impl FnMut()) -> Duration {
    let t0 = Instant::now();
    f();
    let first = t0.elapsed();
    let reps = (target.as_secs_f64() / first.as_secs_f64().max(1e-9)).clamp(0.0, 500.0) as usize;
    if reps <= 1 {
        return first;
    }
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn fmt(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn per_kb(d: Duration, bytes: usize) -> Duration {
    d.mul_f64(1024.0 / bytes.max(1) as f64)
}

struct Args {
    only: Vec<String>,
    sizes: Vec<String>,
    budget: f64,
    stages: bool,
    posts: Option<String>,
    check: bool,
    /// Skip the reference measurements (for profiling one input under perf).
    no_reference: bool,
}

fn args() -> Args {
    let mut a = Args {
        only: Vec::new(),
        sizes: Vec::new(),
        budget: 20.0,
        stages: false,
        posts: None,
        check: false,
        no_reference: false,
    };
    let mut it = std::env::args().skip(1);
    let list = |s: Option<String>| -> Vec<String> {
        s.unwrap_or_default()
            .split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--only" => a.only = list(it.next()),
            "--sizes" => a.sizes = list(it.next()),
            "--budget" => a.budget = it.next().and_then(|s| s.parse().ok()).unwrap_or(20.0),
            "--stages" => a.stages = true,
            "--posts" => a.posts = it.next(),
            "--check" => a.check = true,
            "--no-reference" => a.no_reference = true,
            other => {
                eprintln!("unknown argument {other} (see the top of examples/worst_case.rs)");
                std::process::exit(2);
            }
        }
    }
    a
}

/// Real posts' contents, when the file is there.
fn real_posts(path: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get("content")?.as_str().map(str::to_owned))
            .filter(|c| !c.is_empty())
            .collect(),
    )
}

fn stages(text: &str) {
    use tidepool_guard::{injection, model, normalize, pii, secrets};
    let target = Duration::from_millis(200);
    let norm = normalize::normalize(text);
    let hits = injection::hits(&norm.folded.text);
    let parts = [
        (
            "normalize",
            time(target, || {
                black_box(normalize::normalize(black_box(text)));
            }),
        ),
        (
            "secrets",
            time(target, || {
                black_box(secrets::find(black_box(&norm.clean.text)));
            }),
        ),
        (
            "pii",
            time(target, || {
                black_box(pii::find(black_box(&norm.clean.text)));
            }),
        ),
        (
            "injection",
            time(target, || {
                black_box(injection::hits(black_box(&norm.folded.text)));
            }),
        ),
        (
            "features",
            time(target, || {
                black_box(model::features(
                    black_box(&norm.folded.text),
                    &hits,
                    Default::default(),
                ));
            }),
        ),
    ];
    let line: Vec<String> = parts
        .iter()
        .map(|(n, d)| format!("{n} {}", fmt(*d)))
        .collect();
    println!("    stages: {}", line.join(", "));
}

/// The typical post's time per KB, measured again before each input: the machine is
/// shared, and a ratio against a reference taken minutes earlier would drift with its load.
fn reference(guard: &Guard, target: Duration) -> Duration {
    let post = adversarial::TYPICAL_POST;
    per_kb(
        time(target, || {
            black_box(guard.scan(black_box(post)));
        }),
        post.len(),
    )
}

fn main() {
    let a = args();
    let guard = Guard::default();
    let target = Duration::from_millis(300);
    let short = if a.no_reference {
        Duration::ZERO
    } else {
        Duration::from_millis(300)
    };

    let post = adversarial::TYPICAL_POST;
    let first = reference(
        &guard,
        if a.no_reference {
            short
        } else {
            Duration::from_secs(1)
        },
    );
    println!(
        "typical post ({} bytes, embedded): {} per KB",
        post.len(),
        fmt(first)
    );
    let default_posts = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/moltbook-posts-dev.jsonl"
    );
    let path = a.posts.clone().unwrap_or_else(|| default_posts.to_owned());
    if let Some(posts) = real_posts(&path).filter(|_| !a.no_reference) {
        let bytes: usize = posts.iter().map(String::len).sum();
        let all = time(Duration::from_secs(1), || {
            for p in &posts {
                black_box(guard.scan(black_box(p)));
            }
        });
        let mut near_1kb: Vec<Duration> = posts
            .iter()
            .filter(|p| (768..=1536).contains(&p.len()))
            .map(|p| {
                per_kb(
                    time(Duration::from_millis(20), || {
                        black_box(guard.scan(black_box(p)));
                    }),
                    p.len(),
                )
            })
            .collect();
        near_1kb.sort();
        println!(
            "real posts ({path}): {} posts, {bytes} bytes, {} per KB over all of them; median {} per KB over the {} posts of 0.75-1.5 KB",
            posts.len(),
            fmt(per_kb(all, bytes)),
            near_1kb
                .get(near_1kb.len() / 2)
                .map_or("-".into(), |d| fmt(*d)),
            near_1kb.len(),
        );
    }
    println!();
    println!("| input | size | time | per KB | ratio |");
    println!("|---|---|---|---|---|");
    let mut worst: (f64, String) = (0.0, String::new());
    let mut legend: Vec<String> = Vec::new();
    for input in adversarial::inputs() {
        if !a.only.is_empty() && !a.only.iter().any(|o| input.name.contains(o.as_str())) {
            continue;
        }
        legend.push(format!("{}: {}", input.name, input.what));
        let reference = reference(&guard, short);
        let mut over_budget = false;
        for &(label, size) in adversarial::SIZES {
            if !a.sizes.is_empty() && !a.sizes.iter().any(|s| s.eq_ignore_ascii_case(label)) {
                continue;
            }
            if over_budget {
                println!("| {} | {label} | skipped | | |", input.name);
                continue;
            }
            let text = (input.make)(size);
            let t = time(target, || {
                black_box(guard.scan(black_box(&text)));
            });
            let kb = per_kb(t, text.len());
            let ratio = kb.as_secs_f64() / reference.as_secs_f64();
            println!(
                "| {} | {label} | {} | {} | {ratio:.1} |",
                input.name,
                fmt(t),
                fmt(kb)
            );
            if a.stages {
                stages(&text);
            }
            if ratio > worst.0 {
                worst = (ratio, format!("{} at {label}", input.name));
            }
            over_budget = t.as_secs_f64() > a.budget;
        }
    }
    println!();
    for l in legend {
        println!("{l}");
    }
    println!();
    println!("worst ratio: {:.1} ({})", worst.0, worst.1);
    if a.check && worst.0 > 10.0 {
        std::process::exit(1);
    }
}
