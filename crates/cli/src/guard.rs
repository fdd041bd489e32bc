//! `tidepool guard ...`: the guard on its own, for measurement and batch use.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use tidepool_guard::model::Model;
use tidepool_guard::{Guard, Policy};

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
    #[serde(default)]
    split: String,
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

/// Trains the injection model on the `train` split and writes its weights.
pub fn train(corpus: &Path, out: &Path, epochs: usize) -> Result<()> {
    let examples = read_corpus(corpus)?;
    let guard = Guard::with_model(Policy::default(), Model::prior());
    let train: Vec<_> = examples
        .iter()
        .filter(|e| e.split == "train")
        .map(|e| (guard.features(&e.text), e.injection))
        .collect();
    if train.is_empty() {
        bail!(
            "no example has \"split\": \"train\" in {}",
            corpus.display()
        );
    }
    let positives = train.iter().filter(|(_, l)| *l).count();
    eprintln!(
        "training on {} examples ({} injections), {epochs} epochs",
        train.len(),
        positives
    );
    let model = Model::train(&train, epochs, 0.5);
    std::fs::write(out, serde_json::to_string(&model)?)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

#[derive(Default)]
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
            "{name:<10} precision {p:.3}  recall {r:.3}  false-positive rate {fpr:.4}  (tp {} fp {} fn {} tn {})",
            self.tp, self.fp, self.fn_, self.tn
        )
    }
}

/// Precision/recall per label on a split of the corpus, and false positives on benign posts.
pub fn eval(
    corpus: Option<&Path>,
    split: &str,
    benign: Option<&Path>,
    show_errors: bool,
) -> Result<()> {
    let guard = Guard::new(Policy::default());
    if let Some(corpus) = corpus {
        let examples = read_corpus(corpus)?;
        let (mut inj, mut sec, mut pii) = (Counts::default(), Counts::default(), Counts::default());
        let mut n = 0;
        for e in examples.iter().filter(|e| e.split == split) {
            n += 1;
            let s = guard.scan(&e.text);
            let has = |l: &str| s.labels.iter().any(|x| x == l);
            inj.add(e.injection, has("injection"));
            sec.add(e.secret, has("secret"));
            pii.add(e.pii, has("pii"));
            if show_errors
                && (e.injection != has("injection")
                    || e.secret != has("secret")
                    || e.pii != has("pii"))
            {
                println!(
                    "MISS inj={}/{} sec={}/{} pii={}/{} score={:.2} {}",
                    e.injection,
                    has("injection"),
                    e.secret,
                    has("secret"),
                    e.pii,
                    has("pii"),
                    s.injection_score,
                    e.text
                        .chars()
                        .take(160)
                        .collect::<String>()
                        .replace('\n', " ")
                );
            }
        }
        println!("{} split: {n} examples", split);
        println!("{}", inj.line("injection"));
        println!("{}", sec.line("secret"));
        println!("{}", pii.line("pii"));
    }
    if let Some(benign) = benign {
        let file =
            std::fs::File::open(benign).with_context(|| format!("opening {}", benign.display()))?;
        let (mut n, mut inj, mut sec, mut pii, mut any) = (0usize, 0usize, 0usize, 0usize, 0usize);
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let text = match v.get("text").and_then(|t| t.as_str()) {
                Some(t) => t.to_owned(),
                None => format!(
                    "{}\n{}",
                    v["title"].as_str().unwrap_or(""),
                    v["content"].as_str().unwrap_or("")
                ),
            };
            n += 1;
            let s = guard.scan(&text);
            let has = |l: &str| s.labels.iter().any(|x| x == l);
            inj += has("injection") as usize;
            sec += has("secret") as usize;
            pii += has("pii") as usize;
            any += (s.verdict != tidepool_guard::Verdict::Allow) as usize;
            if show_errors && s.verdict != tidepool_guard::Verdict::Allow {
                let rules: Vec<&str> = s.findings.iter().map(|f| f.rule.as_str()).collect();
                println!(
                    "FLAG {} {:?} score={:.2} {:?} | {}",
                    s.verdict.as_str(),
                    s.labels,
                    s.injection_score,
                    rules,
                    text.chars()
                        .take(200)
                        .collect::<String>()
                        .replace('\n', " ")
                );
            }
        }
        let rate = |k: usize| k as f64 / n.max(1) as f64;
        println!("benign {}: {n} texts", benign.display());
        println!(
            "  labelled injection {inj} ({:.4}), secret {sec} ({:.4}), pii {pii} ({:.4}), any verdict but allow {any} ({:.4})",
            rate(inj),
            rate(sec),
            rate(pii),
            rate(any)
        );
    }
    Ok(())
}
