//! `tidepool guard ...`: the guard on its own, for measurement and batch use.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use tidepool_guard::model::Model;
use tidepool_guard::{Guard, Label, Policy};

#[derive(Deserialize)]
struct ScanInput {
    id: Option<serde_json::Value>,
    text: Option<String>,
}

/// JSON Lines in (`{"id", "text"}`), one line out per input. Findings carry kind, rule and
/// UTF-8 byte offsets, never the matched text.
pub fn scan(policy: Policy) -> Result<()> {
    let guard = Guard::new(policy);
    let stdin = std::io::stdin();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Result<ScanInput, _> = serde_json::from_str(&line);
        let result = match parsed {
            Ok(ScanInput {
                id,
                text: Some(text),
            }) => {
                let s = guard.scan(&text);
                json!({
                    "id": id,
                    "verdict": s.verdict.as_str(),
                    "labels": s.labels,
                    "injection_score": s.injection_score,
                    "findings": s.findings.iter().map(|f| json!({"kind": f.kind, "rule": f.rule, "start": f.start, "end": f.end})).collect::<Vec<_>>(),
                })
            }
            Ok(ScanInput { id, text: None }) => json!({"id": id, "error": "missing \"text\""}),
            Err(e) => json!({"id": null, "error": format!("line {}: invalid JSON: {e}", n + 1)}),
        };
        writeln!(out, "{result}")?;
    }
    out.flush()?;
    Ok(())
}

/// One labelled example of the team's corpus.
#[derive(Deserialize)]
struct Example {
    text: String,
    #[serde(default)]
    injection: bool,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    pii: bool,
    /// `train` or `eval`: the family-held-out assignment made by `build.py`.
    #[serde(default)]
    split: String,
    #[serde(default)]
    family: String,
    /// `generated`, `handwritten`, or a sibling generator's name.
    #[serde(default)]
    source: String,
}

fn read_corpus(path: &Path) -> Result<Vec<Example>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// Model examples for some corpus rows: each text whole, and the windows around attack-rule
/// hits in benign texts as benign examples too (those windows are scored at run time, so
/// they must stay low). Features come from the prior-weighted guard: the
/// features do not depend on the weights.
fn model_examples<'a>(
    rows: impl Iterator<Item = &'a Example>,
) -> Vec<tidepool_guard::model::Example> {
    let guard = Guard::with_model(Policy::default(), Model::prior());
    let mut out = Vec::new();
    for e in rows {
        let (whole, windows) = guard.features_and_windows(&e.text);
        out.push((whole, e.injection));
        if !e.injection {
            out.extend(windows.into_iter().map(|w| (w, false)));
        }
    }
    out
}

/// Learning rate of the full-batch Adam steps.
const LEARNING_RATE: f32 = 0.05;

/// Trains the injection model on the `train` split (the training families) and writes its
/// weights.
pub fn train(corpus: &Path, out: &Path, epochs: usize) -> Result<()> {
    let examples = read_corpus(corpus)?;
    let train = model_examples(examples.iter().filter(|e| e.split == "train"));
    if train.is_empty() {
        bail!(
            "no example has \"split\": \"train\" in {}",
            corpus.display()
        );
    }
    let positives = train.iter().filter(|(_, l)| *l).count();
    eprintln!(
        "training on {} examples ({} injections, texts and benign windows), {epochs} epochs",
        train.len(),
        positives
    );
    let model = Model::train(&train, epochs, LEARNING_RATE);
    std::fs::write(out, serde_json::to_string(&model)?)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

#[derive(Default, Clone)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
    tn: usize,
}

impl Counts {
    fn add(&mut self, truth: bool, predicted: bool) {
        match (truth, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    fn line(&self, name: &str) -> String {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        let fpr = self.fp as f64 / (self.fp + self.tn).max(1) as f64;
        format!(
            "{name:<28} precision {p:.3}  recall {r:.3}  FPR {fpr:.4}  (tp {} fp {} fn {} tn {})",
            self.tp, self.fp, self.fn_, self.tn
        )
    }
    /// One line for a family: only the rates that exist for it.
    fn family_line(&self, name: &str) -> String {
        let pos = self.tp + self.fn_;
        let neg = self.fp + self.tn;
        let mut s = format!("  {name:<26}");
        if pos > 0 {
            s += &format!(
                " recall {:.3} ({}/{pos})",
                self.tp as f64 / pos as f64,
                self.tp
            );
        }
        if neg > 0 {
            s += &format!(
                " FPR {:.4} ({}/{neg})",
                self.fp as f64 / neg as f64,
                self.fp
            );
        }
        s
    }
}

/// Injection, secret and personal-data counts for a set of corpus rows under one guard,
/// overall, per family and per source.
#[derive(Default)]
struct Report {
    injection: Counts,
    secret: Counts,
    pii: Counts,
    families: std::collections::BTreeMap<String, Counts>,
    sources: std::collections::BTreeMap<String, Counts>,
}

impl Report {
    fn run<'a>(
        guard: &Guard,
        rows: impl Iterator<Item = &'a Example>,
        show_errors: bool,
    ) -> Report {
        let mut r = Report::default();
        for e in rows {
            let s = guard.scan(&e.text);
            let has = |l: &str| s.labels.iter().any(|x| x.as_str() == l);
            let inj = has("injection");
            r.injection.add(e.injection, inj);
            r.secret.add(e.secret, has("secret"));
            r.pii.add(e.pii, has("pii"));
            r.families
                .entry(e.family.clone())
                .or_default()
                .add(e.injection, inj);
            r.sources
                .entry(e.source.clone())
                .or_default()
                .add(e.injection, inj);
            if show_errors && e.injection != inj {
                println!(
                    "MISS {} inj={}/{inj} score={:.2} {}",
                    e.family,
                    e.injection,
                    s.injection_score,
                    e.text
                        .chars()
                        .take(160)
                        .collect::<String>()
                        .replace('\n', " ")
                );
            }
        }
        r
    }

    fn print(&self, title: &str) {
        println!("{title}");
        println!("{}", self.injection.line("  injection"));
        println!("{}", self.secret.line("  secret"));
        println!("{}", self.pii.line("  pii"));
        println!("  per source (injection):");
        for (k, c) in &self.sources {
            println!("  {}", c.family_line(k));
        }
        println!("  per family (injection):");
        for (k, c) in &self.families {
            println!("{}", c.family_line(k));
        }
    }
}

/// The real-post file the eval reads when none is given (outside the product; optional).
const DEFAULT_REAL_POSTS: &str = "../shared/data/moltbook-posts-dev.jsonl";

fn read_posts(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        out.push(match v.get("text").and_then(|t| t.as_str()) {
            Some(t) => t.to_owned(),
            None => format!(
                "{}\n{}",
                v["title"].as_str().unwrap_or(""),
                v["content"].as_str().unwrap_or("")
            ),
        });
    }
    Ok(out)
}

/// Verdicts on benign real posts: how many are not allowed, and each one flagged.
fn real_posts(guard: &Guard, posts: &[String], name: &str, show: bool) {
    let (mut inj, mut sec, mut pii, mut any) = (0usize, 0usize, 0usize, 0usize);
    for text in posts {
        let s = guard.scan(text);
        let has = |l: &str| s.labels.iter().any(|x| x.as_str() == l);
        inj += has("injection") as usize;
        sec += has("secret") as usize;
        pii += has("pii") as usize;
        any += (s.verdict != tidepool_guard::Verdict::Allow) as usize;
        if show && s.verdict != tidepool_guard::Verdict::Allow {
            let mut rules: Vec<&str> = s.findings.iter().map(|f| f.rule.as_str()).collect();
            rules.dedup();
            println!(
                "  FLAG {} {:?} score={:.3} {:?} | {}",
                s.verdict.as_str(),
                s.labels.iter().map(Label::as_str).collect::<Vec<_>>(),
                s.injection_score,
                rules,
                text.chars()
                    .take(160)
                    .collect::<String>()
                    .replace('\n', " ")
            );
        }
    }
    let n = posts.len();
    let rate = |k: usize| k as f64 / n.max(1) as f64;
    println!(
        "{name}: {n} posts; injection {inj} ({:.4}), secret {sec} ({:.4}), pii {pii} ({:.4}), any verdict but allow {any} ({:.4})",
        rate(inj),
        rate(sec),
        rate(pii),
        rate(any)
    );
}

/// p50 and p99 of each stage of a scan, in microseconds, over the given texts.
fn timing(guard: &Guard, texts: &[String]) {
    use std::time::Instant;
    use tidepool_guard::{injection, model, normalize, pii, secrets};
    let stages = [
        "normalise",
        "injection rules",
        "secrets",
        "personal data",
        "model (+windows)",
        "full scan",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(texts.len()); stages.len()];
    for text in texts {
        let t = Instant::now();
        let norm = normalize::normalize(text);
        times[0].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let hits = injection::hits(&norm.folded.text);
        times[1].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(secrets::find(&norm.clean.text));
        times[2].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(pii::find(&norm.clean.text));
        times[3].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let f = model::features(&norm.folded.text, &hits, model::Carriers::default());
        let w = model::sentence_windows(&norm.folded.text, &hits, model::Carriers::default());
        std::hint::black_box(
            w.iter()
                .map(|w| guard.model().score(w))
                .fold(guard.model().score(&f), f32::max),
        );
        times[4].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(guard.scan(text));
        times[5].push(t.elapsed().as_secs_f64());
    }
    let mut sizes: Vec<usize> = texts.iter().map(|t| t.len()).collect();
    sizes.sort_unstable();
    println!(
        "cost per text ({} texts, median {} bytes), microseconds:",
        texts.len(),
        sizes.get(sizes.len() / 2).copied().unwrap_or(0)
    );
    // Full scans of posts of about a kilobyte (0.75 to 1.5 KB).
    let mut kb: Vec<f64> = texts
        .iter()
        .zip(&times[5])
        .filter(|(t, _)| (768..1536).contains(&t.len()))
        .map(|(_, &d)| d)
        .collect();
    kb.sort_by(f64::total_cmp);
    if !kb.is_empty() {
        println!(
            "  full scan of {} posts of 0.75-1.5 KB: p50 {:.1}  p99 {:.1}",
            kb.len(),
            kb[kb.len() / 2] * 1e6,
            kb[((kb.len() as f64 * 0.99) as usize).min(kb.len() - 1)] * 1e6
        );
    }
    for (name, mut v) in stages.iter().zip(times) {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
                * 1e6
        };
        println!("  {name:<16} p50 {:>8.1}  p99 {:>8.1}", q(0.5), q(0.99));
    }
}

/// Precision/recall on the corpus under both split disciplines, false positives on real
/// posts, and the cost per stage.
///
/// Family-held-out: the committed model (trained on the `train` families) on the `eval`
/// families, and on the training families for comparison. Source-held-out: a model trained
/// here on every `generated` row, tested on the other sources (hand-written posts, sibling
/// generators) and on the real posts. `split` picks the rows whose misses `--errors`
/// prints.
pub fn eval(
    corpus: Option<&Path>,
    split: &str,
    benign: Option<&Path>,
    show_errors: bool,
) -> Result<()> {
    let guard = Guard::new(Policy::default());
    if Model::embedded().is_none() {
        println!(
            "WARNING: the committed weights do not match this build's rules; scoring with the hand-set prior (run tidepool guard train, then rebuild)"
        );
    }
    let posts_path = benign.map(Path::to_path_buf).or_else(|| {
        let p = Path::new(DEFAULT_REAL_POSTS);
        p.exists().then(|| p.to_path_buf())
    });
    let posts = match &posts_path {
        Some(p) => read_posts(p)?,
        None => Vec::new(),
    };
    if let Some(corpus) = corpus {
        let examples = read_corpus(corpus)?;
        for s in ["eval", "train"] {
            let rows = examples.iter().filter(|e| e.split == s);
            let r = Report::run(&guard, rows, show_errors && s == split);
            r.print(&format!(
                "family-held-out, committed model, {s} split ({} rows):",
                r.injection.tp + r.injection.fp + r.injection.fn_ + r.injection.tn
            ));
        }
        let generated = model_examples(examples.iter().filter(|e| e.source == "generated"));
        let source_model = Model::train(&generated, 400, LEARNING_RATE);
        let source_guard = Guard::with_model(Policy::default(), source_model);
        let rows = examples.iter().filter(|e| e.source != "generated");
        let r = Report::run(&source_guard, rows, show_errors && split == "source");
        r.print(&format!(
            "source-held-out: trained on all {} generated examples, tested on other sources:",
            generated.len()
        ));
        if !posts.is_empty() {
            real_posts(
                &source_guard,
                &posts,
                "  real posts, source-held-out model",
                false,
            );
        }
    }
    if let Some(p) = &posts_path {
        // Every flagged real post is listed: each is read before the rate is reported.
        real_posts(&guard, &posts, &format!("real posts {}", p.display()), true);
        timing(&guard, &posts);
    }
    Ok(())
}
