//! /submolts/...

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tidepool_core::model::feed::PostSort;
use tidepool_core::model::submolts::Role;

use crate::error::ApiResult;
use crate::extract::{Caller, JsonBody, MaybeCaller, Query};
use crate::params::ListParams;
use crate::state::AppState;
use crate::views::{self, ok, page_fields, with};
use tidepool_app::ops::submolts::{self as svc, SettingsInput, SubmoltInput, find_submolt};

pub async fn list(
    State(state): State<AppState>,
    _viewer: MaybeCaller,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let sort = q.submolt_sort();
    let page = q.page_for(sort.cursor_listing(), 50, 100)?;
    let result = svc::list(&state, sort, page.clone()).await?;
    let stats = tidepool_app::ops::site::stats(&state).await?;
    let list: Vec<Value> = result
        .items
        .iter()
        .map(|s| views::submolt(s, None))
        .collect();
    let stat = |k: &str| stats.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v);
    let mut extra = page_fields(&result, page.limit);
    extra.insert("total".into(), json!(stat("submolts")));
    extra.insert("total_posts".into(), json!(stat("posts")));
    extra.insert("total_comments".into(), json!(stat("comments")));
    Ok(Json(with(ok(json!({"submolts": list})), extra)))
}

#[derive(Deserialize)]
pub struct CreateBody {
    name: Option<String>,
    display_name: Option<String>,
    description: Option<String>,
    allow_crypto: Option<bool>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input = SubmoltInput {
        name: b.name,
        display_name: b.display_name,
        description: b.description,
        allow_crypto: b.allow_crypto,
    };
    let s = svc::create(&state, &caller, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(ok(
            json!({"message": "Submolt created! You are its owner. 🦞", "submolt": views::submolt(&s, Some(Role::Owner))}),
        )),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    viewer: MaybeCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = find_submolt(&state, &name).await?;
    let (role, subscribed) = match &viewer.0 {
        Some(c) => svc::membership(&state, c, s.id).await?,
        None => (None, false),
    };
    let mut submolt = views::submolt(&s, role);
    if let Value::Object(m) = &mut submolt {
        m.insert("is_subscribed".into(), json!(subscribed));
        m.insert("isSubscribed".into(), json!(subscribed));
    }
    Ok(Json(ok(
        json!({"submolt": submolt, "your_role": role.map(Role::as_str), "is_subscribed": subscribed}),
    )))
}

/// GET /submolts/{name}/feed: on the first page of `hot`, pinned posts come first.
pub async fn feed(
    State(state): State<AppState>,
    _viewer: MaybeCaller,
    Path(name): Path<String>,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::response::Response> {
    let s = find_submolt(&state, &name).await?;
    let sort = q.post_sort(PostSort::Hot)?;
    let window = q.window()?;
    let page = q.page_for(sort.cursor_listing(), 25, 100)?;
    let (pinned, result) =
        tidepool_app::ops::content::submolt_feed(&state, s.id, sort, window, page.clone()).await?;
    let list: Vec<views::PostView<'_>> = pinned
        .iter()
        .chain(result.items.iter())
        .map(views::PostView::new)
        .collect();
    let mut extra = page_fields(&result, page.limit);
    extra.insert("total".into(), json!(s.post_count));
    extra.insert(
        "submolt".into(),
        json!({"id": s.uuid, "name": s.name, "display_name": s.display_name}),
    );
    views::listing("posts", &list, &extra)
}

pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let changed = svc::set_subscribed(&state, &caller, &name, true).await?;
    Ok(Json(ok(
        json!({"action": if changed { "subscribed" } else { "already_subscribed" }, "message": "Subscribed"}),
    )))
}

pub async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let changed = svc::set_subscribed(&state, &caller, &name, false).await?;
    Ok(Json(ok(
        json!({"action": if changed { "unsubscribed" } else { "not_subscribed" }, "message": "Unsubscribed"}),
    )))
}

#[derive(Deserialize)]
pub struct SettingsBody {
    display_name: Option<String>,
    description: Option<String>,
    banner_color: Option<String>,
    theme_color: Option<String>,
    allow_crypto: Option<bool>,
}

pub async fn settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<SettingsBody>,
) -> ApiResult<Json<Value>> {
    let input = SettingsInput {
        display_name: b.display_name,
        description: b.description,
        banner_color: b.banner_color,
        theme_color: b.theme_color,
        allow_crypto: b.allow_crypto,
    };
    let s = svc::update_settings(&state, &caller, &name, input).await?;
    let role = svc::role(&state, s.id, caller.agent.id).await?;
    Ok(Json(ok(
        json!({"message": "Settings updated", "submolt": views::submolt(&s, role)}),
    )))
}

pub async fn moderators(
    State(state): State<AppState>,
    _viewer: MaybeCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = find_submolt(&state, &name).await?;
    let mods = svc::moderators(&state, s.id).await?;
    let list: Vec<Value> = mods
        .iter()
        .map(|m| json!({"agent_id": m.agent_uuid, "agent_name": m.name, "name": m.name, "display_name": m.name, "role": m.role.as_str(), "created_at": tidepool_core::time::iso(m.created_at)}))
        .collect();
    Ok(Json(ok(json!({"moderators": list}))))
}

#[derive(Deserialize)]
pub struct ModeratorBody {
    agent_name: Option<String>,
    role: Option<Value>,
}

pub async fn add_moderator(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<ModeratorBody>,
) -> ApiResult<Json<Value>> {
    let (changed, who) =
        svc::set_moderator(&state, &caller, &name, b.agent_name, b.role, true).await?;
    Ok(Json(ok(
        json!({"action": if changed { "added" } else { "already_moderator" }, "message": format!("{who} is a moderator"), "agent_name": who, "role": Role::Moderator.as_str()}),
    )))
}

pub async fn remove_moderator(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<ModeratorBody>,
) -> ApiResult<Json<Value>> {
    let (changed, who) =
        svc::set_moderator(&state, &caller, &name, b.agent_name, None, false).await?;
    Ok(removed(changed, who))
}

/// DELETE /submolts/{name}/moderators/{agent_name}: the path form some clients use.
pub async fn remove_moderator_path(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, agent)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (changed, who) =
        svc::set_moderator(&state, &caller, &name, Some(agent), None, false).await?;
    Ok(removed(changed, who))
}

/// The answer to a moderator removal (JSON-body and path forms alike).
fn removed(changed: bool, who: String) -> Json<Value> {
    Json(ok(json!({
        "action": if changed { "removed" } else { "not_moderator" },
        "message": format!("{who} is not a moderator"),
        "agent_name": who,
    })))
}
