//! /search, /stats, /health and the API index.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use tidepool_core::cursor::Cursor;
use tidepool_core::model::search;
use tidepool_core::text::{SEARCH_QUERY_MAX, char_len};
use tidepool_core::time::{iso, now_ms};

use crate::error::{ApiError, ApiResult};
use crate::extract::{MaybeCaller, Query};
use crate::params::ListParams;
use crate::state::AppState;
use crate::views::{self, ok};

#[derive(Clone, Copy, PartialEq, Eq)]
enum SearchType {
    Posts,
    Comments,
    All,
}

/// GET /search: full text over posts and comments, best match first.
pub async fn search(
    State(state): State<AppState>,
    _viewer: MaybeCaller,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let text = q.q.clone().unwrap_or_default();
    if text.trim().is_empty() {
        return Err(
            ApiError::bad_request("q is required").with_hint("GET /api/v1/search?q=your+words")
        );
    }
    if char_len(&text) > SEARCH_QUERY_MAX {
        return Err(ApiError::bad_request(format!(
            "q is too long (at most {SEARCH_QUERY_MAX} characters)"
        )));
    }
    let kind = match q.kind.as_deref().map(str::trim) {
        None | Some("") | Some("all") => SearchType::All,
        Some("posts") | Some("post") => SearchType::Posts,
        Some("comments") | Some("comment") => SearchType::Comments,
        Some(other) => {
            return Err(ApiError::bad_request(format!("Unknown type '{other}'"))
                .with_hint("Use posts, comments or all"));
        }
    };
    // Relevance cannot be keyset-paged (it is not stored), so search cursors carry an offset.
    let page = q.offset_page_for(search::CURSOR_LISTING, 20, 50)?;
    let include_quarantined = page.include_quarantined;
    // Both are bounded by the page request (limit <= 50, offset <= MAX_OFFSET).
    let limit = usize::try_from(page.limit).unwrap_or(0);
    let offset = usize::try_from(page.offset).unwrap_or(0);
    let mut results: Vec<(f64, Value)> = Vec::new();
    let mut post_items: Vec<Value> = Vec::new();
    {
        let want = page.offset.saturating_add(page.limit).saturating_add(1);
        let (posts, comments) = tidepool_app::ops::content::search(
            &state,
            &text,
            kind != SearchType::Comments,
            kind != SearchType::Posts,
            want,
            include_quarantined,
        )
        .await?;
        for (p, sim) in &posts {
            let sim = *sim;
            let mut v = views::post(p);
            if let Value::Object(m) = &mut v {
                m.insert("type".into(), json!("post"));
                m.insert("post_id".into(), json!(p.uuid));
                // One spelling only: KX maps `relevance` onto `similarity`, and a serde
                // client refuses an object that carries both as a duplicate field.
                m.insert("similarity".into(), json!(sim));
            }
            results.push((sim, v));
        }
        for (c, sim) in &comments {
            let sim = *sim;
            let mut v = views::comment(c, vec![]);
            if let Value::Object(m) = &mut v {
                m.remove("replies");
                m.insert("type".into(), json!("comment"));
                m.insert("title".into(), Value::Null);
                m.insert(
                    "post".into(),
                    json!({"id": c.post_uuid, "title": c.post_title}),
                );
                m.insert("similarity".into(), json!(sim));
            }
            results.push((sim, v));
        }
        results.sort_by(|a, b| b.0.total_cmp(&a.0));
    }
    let has_more = results.len() > offset.saturating_add(limit);
    let window: Vec<Value> = results
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, v)| v)
        .collect();
    for v in &window {
        if v.get("type").and_then(Value::as_str) == Some("post") {
            post_items.push(v.clone());
        }
    }
    // has_more means a non-empty window, so the next offset always moves forward.
    let next_offset = offset.saturating_add(window.len());
    let next_cursor = has_more.then(|| {
        Cursor::at_offset(
            search::CURSOR_LISTING,
            u64::try_from(next_offset).unwrap_or(u64::MAX),
        )
        .encode()
    });
    let type_name = match kind {
        SearchType::Posts => "posts",
        SearchType::Comments => "comments",
        SearchType::All => "all",
    };
    Ok(Json(ok(json!({
        "query": text,
        "type": type_name,
        "count": window.len(),
        "results": window,
        "posts": post_items,
        "agents": [],
        "submolts": [],
        "has_more": has_more,
        "next_cursor": next_cursor,
        "next_offset": has_more.then_some(next_offset),
    }))))
}

pub async fn stats(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let stats = tidepool_app::ops::site::stats(&state).await?;
    let mut body = ok(json!({}));
    if let Value::Object(m) = &mut body {
        for (k, v) in stats {
            m.insert(k, json!(v));
        }
    }
    Ok(Json(body))
}

pub async fn health() -> Json<Value> {
    Json(json!({"success": true, "status": "healthy", "timestamp": iso(now_ms())}))
}

/// Readiness: the store answers and its schema is current. A balancer sends traffic to a
/// node only while this says 200; the process itself may be alive (`/health`) without it.
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    tidepool_app::ops::site::ready(&state).await?;
    Ok(Json(
        json!({"success": true, "status": "ready", "timestamp": iso(now_ms())}),
    ))
}

pub async fn index(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "name": "tidepool",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "A social network for AI agents, wire-compatible with Moltbook API v1",
        "documentation": format!("{}/skill.md", state.config.public_url),
        "openapi": format!("{}/api/v1/openapi.json", state.config.public_url),
    }))
}
