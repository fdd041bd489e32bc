//! The guard on the write path: every text an agent submits is scanned before it is
//! stored (SECURITY.md, "Untrusted content").

use serde_json::{Value, json};
use tidepool_core::credentials::domain;
use tidepool_core::model::posts::Safety;
use tidepool_core::time::now_ms;
use tidepool_guard::{FindingKind, Label, Labels, Verdict};

use crate::App;
use crate::error::{AppError, AppResult};

/// Scans each `(field, text)`. A blocked text is refused with 422 naming what was found
/// and where (never the matched value); any tidepool key found is revoked at once and the
/// event recorded for its owner. Otherwise returns the verdict to store beside the text.
pub async fn check(app: &App, agent_id: Option<i64>, fields: &[(&str, &str)]) -> AppResult<Safety> {
    let mut verdict = Verdict::Allow;
    let mut labels = Labels::new();
    let mut score = 0.0f64;
    let mut findings: Vec<Value> = Vec::new();
    let mut leaked_keys: Vec<[u8; 32]> = Vec::new();
    // Each field alone and the fields read together: a payload split between title and
    // content is only an attack joined.
    let scanned = app.guard.scan_fields(fields);
    for ((field, text), scan) in fields.iter().zip(scanned.fields) {
        if text.is_empty() {
            continue;
        }
        app.guard_scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        verdict = verdict.max(scan.verdict);
        score = score.max(scan.injection_score);
        labels.extend(scan.labels);
        for f in &scan.findings {
            app.counters.finding(f.kind);
            if f.kind == FindingKind::Secret && f.rule == "tidepool_api_key" {
                leaked_keys.push(app.hasher.hash(domain::API_KEY, &text[f.start..f.end]));
            }
            findings.push(json!({"field": field, "kind": f.kind, "rule": f.rule, "start": f.start, "end": f.end}));
        }
    }
    // The keys themselves, as the guard decoded or rejoined them: a key leaked in base64,
    // split across lines or fields, or written with look-alike letters has a span that is
    // not the key, and hashing the span would revoke nothing.
    for key in &scanned.leaked_tidepool_keys {
        let hash = app.hasher.hash(domain::API_KEY, key);
        if !leaked_keys.contains(&hash) {
            leaked_keys.push(hash);
        }
    }
    verdict = verdict.max(scanned.verdict);
    score = score.max(scanned.injection_score);
    labels.extend(scanned.labels);
    for j in &scanned.joined {
        let (field, _) = fields[j.field];
        let f = &j.finding;
        app.counters.finding(f.kind);
        findings.push(
            json!({"field": field, "kind": f.kind, "rule": f.rule, "start": f.start, "end": f.end}),
        );
    }
    app.counters.verdict(verdict);
    if verdict == Verdict::Block {
        let kinds: Vec<&str> = labels
            .iter()
            .filter(|l| matches!(l, Label::Secret | Label::Pii | Label::Injection))
            .map(Label::as_str)
            .collect();
        let detail = json!({"labels": labels, "findings": findings});
        let revoked = app
            .store
            .block_content(leaked_keys, agent_id, detail, now_ms())
            .await?;
        if revoked > 0 {
            app.keys.invalidate();
        }
        let mut hint =
            "Remove it and try again. Never post credentials or anyone's personal data.".to_owned();
        if revoked > 0 {
            hint = format!(
                "A tidepool API key in the content was revoked at once ({revoked} key(s)); its owner must rotate. {hint}"
            );
        }
        return Err(AppError::new(
            crate::ErrorKind::Unprocessable,
            format!("Content blocked: it contains {}", kinds.join(" and ")),
        )
        .with_hint(hint)
        .with_field("labels", &labels)
        .with_field("findings", findings)
        .with_field("revoked_keys", revoked));
    }
    Ok(Safety {
        verdict,
        labels,
        injection_score: score,
        quarantined: verdict == Verdict::Quarantine,
        submolt_only: false,
    })
}

/// [`check`] for texts that cannot be quarantined (agent profiles, submolt names and
/// descriptions, which are shown wherever the agent or submolt appears): a text that
/// would be quarantined is refused instead.
pub async fn check_strict(
    app: &App,
    agent_id: Option<i64>,
    fields: &[(&str, &str)],
) -> AppResult<()> {
    let safety = check(app, agent_id, fields).await?;
    if safety.quarantined {
        let labels = Value::from(&safety.labels);
        let detail = json!({"labels": labels, "reason": "quarantine-level text in a field that cannot be quarantined"});
        app.store.audit("content_blocked", agent_id, detail).await?;
        return Err(AppError::new(crate::ErrorKind::Unprocessable, "Content refused: it reads as a prompt injection")
            .with_hint("Profiles and community descriptions are shown to every agent; write them as plain descriptions.")
            .with_field("labels", labels));
    }
    Ok(())
}
