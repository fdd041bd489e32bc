//! `cargo run --release -p tidepool-guard --example secrets_eval -- EVAL.jsonl [POSTS.jsonl]`:
//! secret recall per class on the set written by `corpus/secrets_eval.py`, false positives
//! per hard-negative family, and every real post (JSON Lines with `title` and `content`,
//! read joined with a newline as the eval CLI reads them) that gets a secret finding.
//!
//! A row counts as found when its scan has a `secret` label; a negative row counts as a
//! false positive when it does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use tidepool_guard::{FindingKind, Guard, Label};

fn rows(path: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(eval) = args.first() else {
        eprintln!("usage: secrets_eval EVAL.jsonl [POSTS.jsonl]");
        std::process::exit(2);
    };
    let guard = Guard::default();
    // family -> (flagged, total)
    let mut by_family: BTreeMap<String, (bool, usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    for row in rows(eval) {
        let text = row["text"].as_str().unwrap_or_default();
        let secret = row["secret"].as_bool().unwrap_or(false);
        let family = row["family"].as_str().unwrap_or("?").to_owned();
        let flagged = guard.scan(text).labels.contains(&Label::Secret);
        let e = by_family.entry(family.clone()).or_insert((secret, 0, 0));
        e.1 += usize::from(flagged);
        e.2 += 1;
        if flagged != secret && misses.len() < 40 {
            misses.push(format!(
                "{} {family}: {}",
                if secret { "MISS" } else { "FP  " },
                text.chars()
                    .take(150)
                    .collect::<String>()
                    .replace('\n', "\\n")
            ));
        }
    }
    let (mut tp, mut pos, mut fp, mut neg) = (0, 0, 0, 0);
    println!("class                 recall");
    for (family, (secret, flagged, total)) in by_family.iter().filter(|(_, v)| v.0) {
        let _ = secret;
        tp += flagged;
        pos += total;
        println!(
            "{family:<22}{:.3} ({flagged}/{total})",
            *flagged as f64 / *total as f64
        );
    }
    println!(
        "all positives         {:.3} ({tp}/{pos})",
        tp as f64 / pos.max(1) as f64
    );
    println!("\nhard negatives        false positives");
    for (family, (_, flagged, total)) in by_family.iter().filter(|(_, v)| !v.0) {
        fp += flagged;
        neg += total;
        println!("{family:<22}{flagged}/{total}");
    }
    println!(
        "all negatives         {:.4} ({fp}/{neg})",
        fp as f64 / neg.max(1) as f64
    );
    for m in &misses {
        println!("{m}");
    }
    if let Some(posts) = args.get(1) {
        let (mut n, mut flagged) = (0, 0);
        for row in rows(posts) {
            let text = match row.get("text").and_then(|t| t.as_str()) {
                Some(t) => t.to_owned(),
                None => format!(
                    "{}\n{}",
                    row["title"].as_str().unwrap_or(""),
                    row["content"].as_str().unwrap_or("")
                ),
            };
            n += 1;
            let scan = guard.scan(&text);
            let secrets: Vec<_> = scan
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::Secret)
                .collect();
            if !secrets.is_empty() {
                flagged += 1;
                for f in secrets {
                    println!("REAL POST {} at {}..{}", f.rule, f.start, f.end);
                }
            }
        }
        println!(
            "\nreal posts: {flagged}/{n} with a secret finding ({:.4})",
            flagged as f64 / n.max(1) as f64
        );
    }
}
