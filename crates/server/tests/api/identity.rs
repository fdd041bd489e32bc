//! Identity tokens for third-party apps: issued for one audience, verified by a separate
//! program that knows only the published key (scripts/verify-identity.py), and refused for
//! another audience, after expiry, and as an API key.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::TestServer;

/// A Python interpreter with `cryptography`, installing it first if needed; a failed
/// installation fails the test (the token is never left unverified).
fn python() -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/install-python-crypto.sh"
    );
    let out = Command::new("sh")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/install-python-crypto.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "could not make Python's cryptography available ({}): {stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// Runs the independent verifier; returns (valid, what it printed).
fn verify_offline(
    jwks: &Value,
    token: &str,
    issuer: &str,
    audience: &str,
    now: Option<i64>,
) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let verifier = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/verify-identity.py"
    );
    let mut cmd = Command::new(python());
    cmd.arg(verifier)
        .arg(&file)
        .arg(token)
        .arg(issuer)
        .arg(audience);
    if let Some(n) = now {
        cmd.arg(n.to_string());
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn identity_tokens_prove_an_agent_to_one_app_and_nothing_else() {
    let s = TestServer::start().await;
    let alice = s.register("Alice").await;
    let r = s
        .post(
            "/api/v1/agents/me/identity-token",
            Some(&alice.key),
            json!({"audience": "https://app.example"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(r.body["identity_token"], token.as_str());
    assert_eq!(r.body["audience"], "https://app.example");
    assert_eq!(r.body["expires_in"], 900);
    assert_eq!(r.body["agent"]["name"], "Alice");
    assert_eq!(
        r.body["jwks_uri"],
        format!("{}/.well-known/jwks.json", s.base)
    );

    // The app, offline, with only the published key.
    let jwks: Value = s
        .client
        .get(format!("{}/.well-known/jwks.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let (ok, out) = verify_offline(&jwks, &token, &s.base, "https://app.example", None);
    assert!(ok, "{out}");
    let claims: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(claims["sub"], alice.id);
    assert_eq!(claims["name"], "Alice");
    let (ok, out) = verify_offline(&jwks, &token, &s.base, "https://evil.example", None);
    assert!(!ok && out.contains("wrong audience"), "{out}");
    let later = claims["exp"].as_i64().unwrap() + 61;
    let (ok, out) = verify_offline(&jwks, &token, &s.base, "https://app.example", Some(later));
    assert!(!ok && out.contains("expired"), "{out}");
    let mut bent = token.clone();
    bent.replace_range(bent.len() - 3.., "AAA");
    let (ok, out) = verify_offline(&jwks, &bent, &s.base, "https://app.example", None);
    assert!(!ok, "{out}");

    // The app, online.
    let r = s
        .post(
            "/api/v1/agents/verify-identity",
            None,
            json!({"token": token, "audience": "https://app.example"}),
        )
        .await;
    let b = r.ok();
    assert_eq!(b["valid"], true);
    assert_eq!(b["agent"]["name"], "Alice");
    assert_eq!(b["agent"]["id"], alice.id);
    assert_eq!(b["is_claimed"], true);
    assert_eq!(b["owner_verified"], false);
    assert!(b["karma"].is_i64());
    let r = s
        .post(
            "/api/v1/agents/verify-identity",
            None,
            json!({"token": token, "audience": "https://evil.example"}),
        )
        .await;
    assert!(
        r.err(401)["hint"]
            .as_str()
            .unwrap()
            .contains("another audience")
    );
    s.post(
        "/api/v1/agents/verify-identity",
        None,
        json!({"token": "a.b.c", "audience": "x"}),
    )
    .await
    .err(401);
    s.post(
        "/api/v1/agents/verify-identity",
        None,
        json!({"audience": "x"}),
    )
    .await
    .err(400);

    // Never an API key.
    s.get("/api/v1/agents/me", Some(&token)).await.err(401);
    s.post(
        "/api/v1/posts",
        Some(&token),
        json!({"submolt_name": "general", "title": "t", "content": "c"}),
    )
    .await
    .err(401);

    // Issuing: a full key, an audience.
    s.post(
        "/api/v1/agents/me/identity-token",
        Some(&alice.key),
        json!({}),
    )
    .await
    .err(400);
    s.post(
        "/api/v1/agents/me/identity-token",
        Some(&alice.key),
        json!({"audience": "two words"}),
    )
    .await
    .err(400);
    s.post(
        "/api/v1/agents/me/identity-token",
        None,
        json!({"audience": "x"}),
    )
    .await
    .err(401);
    let read_key = s
        .post("/api/v1/agents/me/keys", Some(&alice.key), json!({}))
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    s.post(
        "/api/v1/agents/me/identity-token",
        Some(&read_key),
        json!({"audience": "x"}),
    )
    .await
    .err(403);

    // A deleted agent's tokens stop verifying.
    s.delete("/api/v1/agents/me", Some(&alice.key)).await.ok();
    let r = s
        .post(
            "/api/v1/agents/verify-identity",
            None,
            json!({"token": token, "audience": "https://app.example"}),
        )
        .await;
    assert!(r.err(401)["hint"].as_str().unwrap().contains("deleted"));
}
