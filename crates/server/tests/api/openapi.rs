//! The OpenAPI document: accepted by a real validator (openapi-spec-validator from PyPI,
//! installed when missing by scripts/install-openapi-validator.sh), well formed, and
//! describing the bodies the server really sends.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::TestServer;

/// A Python interpreter that can run `-m openapi_spec_validator`, installing the package
/// first if needed. A failed installation fails the test: the document is never left
/// unvalidated.
fn validator_python() -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/install-openapi-validator.sh"
    );
    let out = Command::new("sh")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/install-openapi-validator.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "could not install openapi-spec-validator, so the OpenAPI document cannot be validated \
         (scripts/install-openapi-validator.sh: {}):\n{stdout}{stderr}",
        out.status
    );
    let python = stdout.lines().last().unwrap_or("").trim().to_owned();
    assert!(
        !python.is_empty(),
        "install-openapi-validator.sh printed no interpreter:\n{stderr}"
    );
    python
}

/// Runs the validator on `doc`: (accepted, everything it printed).
fn validate(python: &str, doc: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc).unwrap();
    let out = Command::new(python)
        .args(["-m", "openapi_spec_validator", "--schema", "3.0"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("running openapi_spec_validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn served_document_passes_openapi_spec_validator() {
    let python = validator_python();
    let version = Command::new(&python)
        .args(["-m", "openapi_spec_validator", "--version"])
        .output()
        .expect("asking openapi_spec_validator for its version");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    eprintln!("validating with {version}");

    let s = TestServer::start().await;
    let resp = s
        .client
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let (ok, output) = validate(&python, &text);
    assert!(
        ok,
        "{version} rejected /api/v1/openapi.json:\n{output}\ndocument: {text}"
    );

    // The validator does catch the mistake this test was written for, so its approval
    // above means something.
    let mut broken: Value = serde_json::from_str(&text).unwrap();
    broken["components"]["schemas"]["Post"]["required"] = json!([]);
    let (ok, _) = validate(&python, &broken.to_string());
    assert!(!ok, "{version} accepted an empty required array");
    s.stop().await;
}

/// Every `$ref` target in `v`.
fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.insert(r.clone());
            }
            m.values().for_each(|c| refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
        _ => {}
    }
}

fn empty_required(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if m.get("required")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                out.push(at.to_owned());
            }
            for (k, c) in m {
                empty_required(c, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                empty_required(c, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Follows `$ref` (into components/schemas or components/responses).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut at = doc;
            for part in r.trim_start_matches("#/").split('/') {
                at = &at[part];
            }
            assert!(!at.is_null(), "unresolved {r}");
            resolve(doc, at)
        }
        None => v,
    }
}

/// `schema` with its `$ref`s followed and its `allOf` parts merged into one object schema.
fn flatten(doc: &Value, schema: &Value) -> Map<String, Value> {
    let schema = resolve(doc, schema);
    let mut out = schema.as_object().cloned().unwrap_or_default();
    let Some(parts) = out.remove("allOf") else {
        return out;
    };
    for part in parts.as_array().unwrap() {
        for (k, v) in flatten(doc, part) {
            match (k.as_str(), out.get_mut(&k)) {
                ("required", Some(Value::Array(mine))) => {
                    mine.extend(v.as_array().unwrap().iter().cloned())
                }
                ("properties", Some(Value::Object(mine))) => {
                    mine.extend(v.as_object().unwrap().clone())
                }
                (_, Some(_)) => {}
                (_, None) => {
                    out.insert(k, v);
                }
            }
        }
    }
    out
}

/// Checks `value` against `schema`: required properties present, no property the schema
/// does not describe (except in free-form objects), types, enums, nullability.
fn conform(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let s = flatten(doc, schema);
    if value.is_null() {
        if s.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("{at}: null, but the document does not allow null"));
        }
        return;
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    let fits = match ty {
        "" => true,
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => {
            errors.push(format!("{at}: unknown type {other}"));
            return;
        }
    };
    if !fits {
        errors.push(format!("{at}: {value} is not of type {ty}"));
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if s.get("format").and_then(Value::as_str) == Some("date-time") {
        let t = value.as_str().unwrap_or("");
        if !(t.len() >= 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z')) {
            errors.push(format!("{at}: {t:?} is not an RFC 3339 UTC time"));
        }
    }
    if let Some(items) = s.get("items") {
        for (i, v) in value.as_array().unwrap().iter().enumerate() {
            conform(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
    let Some(obj) = value.as_object() else {
        return;
    };
    for name in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = name.as_str().unwrap();
        if !obj.contains_key(name) {
            errors.push(format!("{at}: required property {name} is missing"));
        }
    }
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in obj {
        match props.get(k) {
            Some(p) => conform(doc, p, v, &format!("{at}.{k}"), errors),
            None => errors.push(format!("{at}: property {k} is not in the document")),
        }
    }
}

/// Calls the API and checks the answer against what the document says of that status.
async fn checked(
    s: &TestServer,
    doc: &Value,
    method: Method,
    template: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Value {
    let reply = s
        .call(method.clone(), &format!("/api/v1{path}"), key, body)
        .await;
    let status = reply.status.as_u16().to_string();
    let op = &doc["paths"][template][method.as_str().to_lowercase()];
    assert!(op.is_object(), "{method} {template} is not in the document");
    let mut response = &op["responses"][status.as_str()];
    // As in OpenAPI, `default` covers the failures not listed one by one.
    if response.is_null() && !reply.status.is_success() {
        response = &op["responses"]["default"];
    }
    assert!(
        !response.is_null(),
        "{method} {path} answered {status}, a status the document does not list: {}",
        reply.body
    );
    let schema = &resolve(doc, response)["content"]["application/json"]["schema"];
    let mut errors = Vec::new();
    conform(doc, schema, &reply.body, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{method} {path} ({status}) differs from the document:\n{}\nbody: {}",
        errors.join("\n"),
        reply.body
    );
    reply.body
}

#[tokio::test]
async fn document_is_well_formed_and_describes_every_reply() {
    let s = TestServer::start().await;
    let doc = s.get("/api/v1/openapi.json", None).await.body;
    let mut empty = Vec::new();
    empty_required(&doc, "#", &mut empty);
    assert!(empty.is_empty(), "empty required arrays at {empty:?}");
    let mut targets = BTreeSet::new();
    refs(&doc, &mut targets);
    for r in &targets {
        resolve(&doc, &json!({ "$ref": r }));
    }
    for name in ["Post", "Comment", "Agent", "Submolt", "Safety", "Error"] {
        assert!(
            targets.contains(&format!("#/components/schemas/{name}")),
            "no response uses {name}"
        );
    }
    for r in tidepool_server::routes::api_routes() {
        let d = &r.doc;
        let op = &doc["paths"][d.path][d.method.to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        let success: Vec<&String> = responses.keys().filter(|k| k.starts_with('2')).collect();
        assert_eq!(success.len(), 1, "{} {}: {success:?}", d.method, d.path);
        if d.reply.raw {
            continue;
        }
        assert!(
            !d.reply.fields.is_empty(),
            "{} {} does not describe its response (Route::returns in routes.rs)",
            d.method,
            d.path
        );
        let schema = flatten(
            &doc,
            &responses[success[0]]["content"]["application/json"]["schema"],
        );
        assert!(
            schema["required"]
                .as_array()
                .unwrap()
                .contains(&json!("success")),
            "{} {}",
            d.method,
            d.path
        );
        for (status, e) in responses.iter().filter(|(k, _)| !k.starts_with('2')) {
            let schema = &resolve(&doc, e)["content"]["application/json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/Error",
                "{} {} {status}",
                d.method, d.path
            );
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn real_responses_match_the_document() {
    let s = TestServer::start().await;
    let doc = s.get("/api/v1/openapi.json", None).await.body;
    let (get, post) = (Method::GET, Method::POST);

    let reg = checked(
        &s,
        &doc,
        post.clone(),
        "/agents/register",
        "/agents/register",
        None,
        Some(json!({"name": "Schemer", "description": "checks shapes"})),
    )
    .await;
    let key = reg["agent"]["api_key"].as_str().unwrap().to_owned();
    let key = Some(key.as_str());
    checked(&s, &doc, get.clone(), "/agents/me", "/agents/me", key, None).await;
    checked(
        &s,
        &doc,
        get.clone(),
        "/agents/status",
        "/agents/status",
        key,
        None,
    )
    .await;
    checked(
        &s,
        &doc,
        Method::PATCH,
        "/agents/me",
        "/agents/me",
        key,
        Some(json!({"metadata": {"likes": "tides"}})),
    )
    .await;

    checked(
        &s,
        &doc,
        post.clone(),
        "/submolts",
        "/submolts",
        key,
        Some(json!({"name": "shapes", "display_name": "Shapes", "description": "About shapes"})),
    )
    .await;
    let p = checked(
        &s,
        &doc,
        post.clone(),
        "/posts",
        "/posts",
        key,
        Some(
            json!({"submolt_name": "shapes", "title": "Barnacles", "content": "barnacles hold on"}),
        ),
    )
    .await;
    let id = p["post"]["id"].as_str().unwrap().to_owned();
    let c = checked(
        &s,
        &doc,
        post.clone(),
        "/posts/{id}/comments",
        &format!("/posts/{id}/comments"),
        key,
        Some(json!({"content": "barnacles are patient"})),
    )
    .await;
    let cid = c["comment"]["id"].as_str().unwrap().to_owned();
    checked(
        &s,
        &doc,
        post.clone(),
        "/posts/{id}/comments",
        &format!("/posts/{id}/comments"),
        key,
        Some(json!({"content": "so are limpets", "parent_id": cid})),
    )
    .await;
    let voter = s.register("Voter").await;
    checked(
        &s,
        &doc,
        post.clone(),
        "/posts/{id}/upvote",
        &format!("/posts/{id}/upvote"),
        Some(&voter.key),
        None,
    )
    .await;
    checked(
        &s,
        &doc,
        post.clone(),
        "/posts/{id}/upvote",
        &format!("/posts/{id}/upvote"),
        key,
        None,
    )
    .await;

    let thread = checked(
        &s,
        &doc,
        get.clone(),
        "/posts/{id}",
        &format!("/posts/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        thread["comments"][0]["replies"].as_array().unwrap().len(),
        1
    );
    let tree = checked(
        &s,
        &doc,
        get.clone(),
        "/posts/{id}/comments",
        &format!("/posts/{id}/comments?sort=new"),
        None,
        None,
    )
    .await;
    assert_eq!(
        tree["comments"][0]["replies"][0]["content"],
        "so are limpets"
    );
    checked(
        &s,
        &doc,
        get.clone(),
        "/comments/{id}",
        &format!("/comments/{cid}"),
        None,
        None,
    )
    .await;
    checked(
        &s,
        &doc,
        get.clone(),
        "/posts",
        "/posts?sort=new",
        None,
        None,
    )
    .await;
    let marked = checked(
        &s,
        &doc,
        get.clone(),
        "/posts",
        "/posts?spotlight=datamark",
        None,
        None,
    )
    .await;
    assert!(marked["spotlight"].is_object());
    checked(&s, &doc, get.clone(), "/feed", "/feed", key, None).await;

    let sub = checked(
        &s,
        &doc,
        get.clone(),
        "/submolts/{name}",
        "/submolts/shapes",
        key,
        None,
    )
    .await;
    assert_eq!(sub["your_role"], "owner");
    checked(&s, &doc, get.clone(), "/submolts", "/submolts", None, None).await;
    checked(
        &s,
        &doc,
        get.clone(),
        "/submolts/{name}/feed",
        "/submolts/shapes/feed",
        None,
        None,
    )
    .await;
    checked(
        &s,
        &doc,
        get.clone(),
        "/submolts/{name}/moderators",
        "/submolts/shapes/moderators",
        None,
        None,
    )
    .await;

    let found = checked(
        &s,
        &doc,
        get.clone(),
        "/search",
        "/search?q=barnacles",
        None,
        None,
    )
    .await;
    let kinds: BTreeSet<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["comment", "post"]), "{found}");
    let profile = checked(
        &s,
        &doc,
        get.clone(),
        "/agents/profile",
        "/agents/profile?name=Schemer",
        None,
        None,
    )
    .await;
    assert_eq!(profile["recent_comments"].as_array().unwrap().len(), 2);
    checked(&s, &doc, get.clone(), "/stats", "/stats", None, None).await;
    checked(&s, &doc, get.clone(), "/health", "/health", None, None).await;

    // Failures, in the error envelope the document promises.
    checked(
        &s,
        &doc,
        get.clone(),
        "/posts/{id}",
        "/posts/00000000-0000-7000-8000-000000000000",
        None,
        None,
    )
    .await;
    checked(
        &s,
        &doc,
        get.clone(),
        "/agents/me",
        "/agents/me",
        None,
        None,
    )
    .await;
    checked(
        &s,
        &doc,
        post.clone(),
        "/posts",
        "/posts",
        key,
        Some(json!({"title": 5})),
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_and_guard_refusals_match_the_error_schema() {
    let s = TestServer::start_with(|c| c.auto_claim = true).await;
    let doc = s.get("/api/v1/openapi.json", None).await.body;
    let a = s.register("Refused").await;
    let post = |title: &str, content: String| {
        Some(json!({"submolt_name": "general", "title": title, "content": content}))
    };
    let token = "ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5";
    let blocked = checked(
        &s,
        &doc,
        Method::POST,
        "/posts",
        "/posts",
        Some(&a.key),
        post("setup", format!("config: {token}")),
    )
    .await;
    assert_eq!(blocked["statusCode"], 422);
    assert!(blocked["findings"].is_array(), "{blocked}");
    s.create_post(&a, "general", "one", "first").await;
    let limited = checked(
        &s,
        &doc,
        Method::POST,
        "/posts",
        "/posts",
        Some(&a.key),
        post("two", "second".into()),
    )
    .await;
    assert_eq!(limited["statusCode"], 429);
    s.stop().await;
}

#[test]
fn the_shape_check_reports_what_differs() {
    let doc = json!({"components": {"schemas": {
        "Thing": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string"},
            "parent": {"type": "object", "nullable": true, "allOf": [{"$ref": "#/components/schemas/Thing"}]},
        }},
    }}});
    let schema = json!({"allOf": [{"$ref": "#/components/schemas/Thing"}, {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}]});
    let mut errors = Vec::new();
    conform(
        &doc,
        &schema,
        &json!({"id": "a", "n": 1, "parent": null}),
        "$",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    conform(
        &doc,
        &schema,
        &json!({"n": 1.5, "parent": {"id": 3}, "extra": true}),
        "$",
        &mut errors,
    );
    errors.sort();
    assert_eq!(
        errors,
        [
            "$.n: 1.5 is not of type integer",
            "$.parent.id: 3 is not of type string",
            "$: property extra is not in the document",
            "$: required property id is missing",
        ]
    );
}
