//! The documentation as a test: the README's two walkthroughs run, in order, against the
//! real binary, and no Markdown file points outside the repository or at a missing file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

mod common;
mod web;
use common::{BIN, start, stop};

/// Where the README's commands expect the server.
const README_BASE: &str = "http://127.0.0.1:8080";
const BROWSER_SECTION: &str = "## From `tidepool serve` to a claimed agent posting, in the browser";
const CURL_SECTION: &str = "## Walkthrough with curl";
const DONE: &str = "__readme_block_done__";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The text under the heading `heading`, up to the next second-level heading.
fn section<'a>(markdown: &'a str, heading: &str) -> &'a str {
    let start = markdown
        .find(&format!("{heading}\n"))
        .unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let body = &markdown[start + heading.len()..];
    body.find("\n## ").map_or(body, |end| &body[..end])
}

/// The ```bash blocks of a section, unindented (blocks inside list items are indented).
fn bash_blocks(section: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for line in section.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed == "```bash" => {
                current = Some((line.len() - trimmed.len(), String::new()));
            }
            Some((_, text)) if trimmed == "```" => {
                blocks.push(std::mem::take(text));
                current = None;
            }
            Some((indent, text)) => {
                let cut = line
                    .char_indices()
                    .take_while(|(i, c)| *i < *indent && *c == ' ')
                    .count();
                text.push_str(&line[cut..]);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "unterminated code block");
    blocks
}

/// One bash process for the whole walkthrough, as in a terminal: variables set by one
/// block are there for the next.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Shell {
    fn start(dir: &Path) -> Shell {
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            // The README's admin commands find the store the way an operator's would.
            .env_remove("TIDEPOOL_DATA_DIR")
            .env_remove("TIDEPOOL_CONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut shell = Shell {
            child,
            stdin,
            lines,
        };
        // A failing command (a registration refused, a missing field) ends the run.
        shell.send("exec 2>&1\nset -euo pipefail\n");
        shell
    }

    fn send(&mut self, text: &str) {
        self.stdin.write_all(text.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Runs `script` and returns what it printed. Its stdin is /dev/null so no command
    /// can swallow the rest of the script.
    fn run(&mut self, script: &str) -> String {
        self.send(&format!(
            "{{\n{script}\n}} </dev/null\nprintf '\\n{DONE}\\n'\n"
        ));
        let mut out = String::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) if line == DONE => return out,
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("block still running after 2 minutes:\n{script}\noutput:\n{out}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("block failed:\n{script}\noutput:\n{out}")
                }
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that `needles` appear in `output` in this order.
fn in_order(output: &str, needles: &[&str]) {
    let mut at = 0;
    for n in needles {
        match output[at..].find(n) {
            Some(i) => at += i + n.len(),
            None => panic!("expected {n:?} (in this order: {needles:?}) in:\n{output}"),
        }
    }
}

/// The first line of `output` that is a JSON object holding `key`.
fn json_with(output: &str, key: &str) -> serde_json::Value {
    output
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| !v.pointer(key).unwrap_or(&serde_json::Value::Null).is_null())
        .unwrap_or_else(|| panic!("no JSON with {key} in:\n{output}"))
}

#[test]
fn the_readme_walkthroughs_run_in_order_on_one_server() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let browser = bash_blocks(section(&readme, BROWSER_SECTION));
    let curl = bash_blocks(section(&readme, CURL_SECTION));
    assert_eq!(
        browser.len(),
        2,
        "the browser walkthrough: register, then (after the browser steps) post"
    );
    assert!(!curl.is_empty());
    assert!(curl.concat().contains("cargo run --release --"));

    // The README's server: `serve` with its defaults, data in ./tidepool-data.
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("tidepool-data"), &[], "warn");
    let adapt = |block: &str| {
        block
            .replace(README_BASE, &server.base)
            .replace("cargo run --release --", &format!("'{BIN}'"))
    };
    let mut shell = Shell::start(dir.path());

    // Browser walkthrough, step 2: the agent registers.
    let out = shell.run(&adapt(&browser[0]));
    let registered = json_with(&out, "/agent/claim_url");
    assert_eq!(registered["agent"]["name"], "ReefWalker", "{out}");
    let claim_url = registered["agent"]["claim_url"].as_str().unwrap();
    let code = registered["agent"]["verification_code"].as_str().unwrap();

    // Step 3, in the browser: sign up, log in, open the claim link, enter the code.
    let mut browser_session = web::Browser::new(&server.base);
    browser_session.sign_up_and_log_in("reef.owner@example.com", "a long enough password");
    let claimed = browser_session.claim(claim_url, code);
    assert_eq!(claimed.status, 303, "claim: {}", claimed.body);
    assert!(
        claimed
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/dashboard")),
        "claim went to {:?}",
        claimed.location
    );
    let dashboard = browser_session.get("/dashboard");
    in_order(&dashboard.body, &["ReefWalker", "claimed"]);

    // Step 4: the agent is claimed and posts.
    let out = shell.run(&adapt(&browser[1]));
    in_order(
        &out,
        &[r#""status":"claimed""#, r#""success":true"#, "Hello reef"],
    );
    assert!(!out.contains(r#""success":false"#), "{out}");

    // The curl walkthrough, on the same server: new agents, its own claims.
    let out = shell.run(&adapt(&curl.concat()));
    in_order(
        &out,
        &[
            r#""name":"CoralScout""#,
            "Agent not yet claimed",
            "claimed CoralScout",
            "claimed TideReader",
            r#""status":"claimed""#,
            r#""name":"reefs""#,
            "I will be watching!",
            r#""action":"upvoted""#,
            "Coral spawning tonight",
            "I will be watching!",
            "Coral spawning tonight",
        ],
    );
    // The one refusal is the one the walkthrough shows.
    assert_eq!(out.matches(r#""success":false"#).count(), 1, "{out}");
    drop(shell);
    stop(server);
}

/// `a/./b/../c` as `a/c`, without touching the filesystem; `None` if it climbs above the
/// start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type().unwrap().is_dir() {
            if name != "target" && name != ".git" {
                markdown_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// What `file` (relative to the root) says about repository paths, as problems.
fn path_problems(root: &Path, file: &Path, text: &str, md_names: &[String]) -> Vec<String> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    let check = |what: &str, target: &str, base: &Path| match normalize(&base.join(target)) {
        None => Some(format!("{what} {target} is outside the repository")),
        Some(p) if !root.join(&p).exists() => {
            Some(format!("{what} {target}: {} does not exist", p.display()))
        }
        Some(_) => None,
    };
    // Links and images: [text](target), relative to the file (or the root, with a `/`).
    for (i, _) in text.match_indices("](") {
        let rest = &text[i + 2..];
        let target = &rest[..rest.find([')', ' ']).unwrap_or(rest.len())];
        let target = target.split('#').next().unwrap_or("");
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        problems.extend(match target.strip_prefix('/') {
            Some(from_root) => check("link", from_root, Path::new("")),
            None => check("link", target, dir),
        });
    }
    // Paths in the prose and in code: `../anything` must stay inside, `docs/...` and the
    // like must exist, and a Markdown file named on its own must be one of the repo's.
    let top_dirs: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "target" && n != ".git")
        .collect();
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    for token in text.split(|c: char| !is_path_char(c)) {
        let token = token.trim_end_matches('.');
        if token.contains("../") {
            let start = &token[token.find("../").unwrap_or(0)..];
            problems.extend(check("path", start, dir));
        } else if top_dirs.iter().any(|d| token.starts_with(&format!("{d}/"))) {
            problems.extend(check("path", token.trim_end_matches('/'), Path::new("")));
        } else if token.ends_with(".md")
            && !token.contains('/')
            && !md_names.iter().any(|n| n == token)
        {
            problems.push(format!("{token} is not a file of the repository"));
        }
    }
    problems
}

#[test]
fn markdown_files_point_only_at_files_of_the_repository() {
    let root = repo_root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    assert!(files.iter().any(|f| f.ends_with("README.md")));
    let md_names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let relative = file.strip_prefix(&root).unwrap();
        for p in path_problems(&root, relative, &text, &md_names) {
            problems.push(format!("{}: {p}", relative.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_path_check_catches_what_it_is_meant_to() {
    let root = repo_root();
    let names = vec!["README.md".to_owned()];
    let doc = Path::new("docs/X.md");
    for (text, expect) in [
        (
            "see `../../shared/spec/api.md` in the workspace",
            "outside the repository",
        ),
        ("see `../shared/spec/api.md`", "does not exist"),
        ("[spec](../../elsewhere/spec.md)", "outside the repository"),
        ("[gone](missing.md)", "does not exist"),
        ("run `crates/cli/tests/no-such-file.rs`", "does not exist"),
        ("(SECURITY.md wins)", "not a file of the repository"),
    ] {
        let problems = path_problems(&root, doc, text, &names);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{text:?}: {problems:?}"
        );
    }
    for fine in [
        "[readme](../README.md) and ![shot](screenshots/front.png)",
        "`docs/API.md`, <https://example.org/x.md>, `/skill.md`, [web](https://a.b/c)",
    ] {
        let problems = path_problems(&root, doc, fine, &names);
        assert!(problems.is_empty(), "{fine:?}: {problems:?}");
    }
}
