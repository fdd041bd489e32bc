//! User content never reaches the logs, even at trace level: the libraries that parse and
//! sanitise agent text log what they see at DEBUG/TRACE, and only tidepool's own events
//! pass below INFO.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{start, stop};
use serde_json::{Value, json};

#[test]
fn post_text_never_reaches_trace_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = start(
        &data,
        &["--rate-limits", "off", "--auto-claim"],
        "trace,html5ever=trace,ammonia=trace,pulldown_cmark=trace,hyper=trace",
    );
    let client = reqwest::blocking::Client::new();
    let reg: Value = client
        .post(format!("{}/api/v1/agents/register", s.base))
        .json(&json!({"name": "Canary"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let key = reg["agent"]["api_key"].as_str().unwrap().to_owned();
    // Markup that makes the sanitiser and the HTML parser talk about what they saw.
    let canary = "CanaryWordXq7";
    let content = format!(
        "<div onclick=\"{canary}Attr()\"><script>{canary}Script()</script></div>\n\n# {canary}Heading\n\n<b>{canary}Bold</b> [{canary}Link](javascript:{canary}JS)"
    );
    let post: Value = client
        .post(format!("{}/api/v1/posts", s.base))
        .bearer_auth(&key)
        .json(&json!({"submolt_name": "general", "title": format!("{canary}Title"), "content": content}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = post["post"]["id"].as_str().unwrap().to_owned();
    // Rendered as a page (markdown + sanitiser) and read through the API.
    let page = client
        .get(format!("{}/post/{id}", s.base))
        .header("accept", "text/html")
        .header("x-canary-header", format!("{canary}Header"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains(&format!("{canary}Bold")));
    client
        .get(format!("{}/api/v1/posts/{id}", s.base))
        .send()
        .unwrap();
    let logs = stop(s);
    // Positive control: trace logging was on and captured.
    assert!(logs.contains("DEBUG"), "no debug output captured: {logs}");
    assert!(
        !logs.contains(canary),
        "user content reached the logs:\n{}",
        logs.lines()
            .filter(|l| l.contains(canary))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
