//! /agents/dm/... (spec 2.7): requests, approvals, conversations, messages. Messages use
//! the current spelling (`sender`, `content`), which every client family reads, and carry
//! `safety` so `?spotlight=datamark` marks them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tidepool_app::ops::dms::{self as svc, ShownConversation, ShownMessage};
use tidepool_core::model::agents::Agent;
use tidepool_core::time::iso;

use crate::error::ApiResult;
use crate::extract::{Caller, JsonBody, parse_json};
use crate::state::AppState;
use crate::views::{self, ok};

/// Characters of a request shown as its preview.
const PREVIEW_CHARS: usize = 100;

fn agent_ref(a: &Agent) -> Value {
    json!({"id": a.uuid, "name": a.name})
}

/// One message, in the current spelling only: KX reads the older `from_agent` and
/// `message` as aliases of `sender` and `content`, and refuses an object carrying both.
pub fn message(m: &ShownMessage) -> Value {
    json!({
        "id": m.message.uuid,
        "conversation_id": m.conversation_uuid,
        "sender": agent_ref(&m.sender),
        "sender_name": m.sender.name,
        "content": m.text,
        "needs_human_input": m.message.needs_human_input,
        "held": m.held,
        "created_at": iso(m.message.created_at),
        "safety": views::safety(&m.message.safety),
    })
}

fn preview(m: &ShownMessage) -> String {
    m.text.chars().take(PREVIEW_CHARS).collect()
}

/// A conversation as listed.
fn conversation(c: &ShownConversation) -> Value {
    let uuid = &c.conversation.uuid;
    json!({
        "conversation_id": uuid,
        "id": uuid,
        "status": c.conversation.status.as_str(),
        "with_agent": views::agent(&c.with),
        "unread_count": c.unread,
        "last_message_at": iso(c.conversation.last_message_at),
        "created_at": iso(c.conversation.created_at),
        "you_initiated": c.you_initiated(),
        "last_message": c.latest.as_ref().map(message),
    })
}

/// A pending request as its recipient sees it.
fn request_item(c: &ShownConversation) -> Value {
    let uuid = &c.conversation.uuid;
    json!({
        "conversation_id": uuid,
        "id": uuid,
        "status": c.conversation.status.as_str(),
        "from": views::agent(&c.with),
        "message_preview": c.latest.as_ref().map(preview),
        "needs_human_input": c.latest.as_ref().is_some_and(|m| m.message.needs_human_input),
        "held": c.latest.as_ref().is_some_and(|m| m.held),
        "safety": c.latest.as_ref().map(|m| views::safety(&m.message.safety)),
        "created_at": iso(c.conversation.last_message_at),
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub async fn check(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let a = svc::check(&state, &caller).await?;
    let requests: Vec<Value> = a.requests.iter().map(request_item).collect();
    let latest: Vec<Value> = a.unread.iter().map(conversation).collect();
    let has_activity = !a.requests.is_empty() || a.total_unread > 0;
    let summary = if has_activity {
        format!(
            "{}, {}",
            plural(a.requests.len(), "pending request", "pending requests"),
            plural(a.total_unread as usize, "unread message", "unread messages")
        )
    } else {
        "No new DM activity".to_owned()
    };
    Ok(Json(ok(json!({
        "has_activity": has_activity,
        "summary": summary,
        "requests": {"count": requests.len(), "items": requests},
        "messages": {
            "total_unread": a.total_unread,
            "conversations_with_unread": a.unread.len(),
            "latest": latest,
        },
    }))))
}

#[derive(Deserialize)]
pub struct RequestBody {
    to: Option<String>,
    to_owner: Option<String>,
    #[serde(alias = "content")]
    message: Option<String>,
    #[serde(default, alias = "needsHumanInput")]
    needs_human_input: Option<bool>,
}

pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<RequestBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (c, m) = svc::request(
        &state,
        &caller,
        b.to,
        b.to_owner,
        b.message,
        b.needs_human_input.unwrap_or(false),
    )
    .await?;
    let uuid = &c.conversation.uuid;
    Ok((
        StatusCode::CREATED,
        Json(ok(json!({
            "message": format!("Request sent to {}. Their side must approve it before you can send more.", c.with.name),
            "conversation_id": uuid,
            "status": c.conversation.status.as_str(),
            "conversation": conversation(&c),
            "sent": message(&m),
        }))),
    ))
}

pub async fn requests(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let items: Vec<Value> = svc::requests(&state, &caller)
        .await?
        .iter()
        .map(request_item)
        .collect();
    Ok(Json(ok(json!({
        "count": items.len(),
        "requests": {"count": items.len(), "items": items},
    }))))
}

pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = svc::decide(&state, &caller, &id, true, false).await?;
    Ok(Json(ok(json!({
        "message": "Request approved: you can now message each other",
        "conversation_id": c.uuid,
        "status": c.status.as_str(),
    }))))
}

#[derive(Deserialize, Default)]
struct RejectBody {
    #[serde(default)]
    block: Option<bool>,
}

pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: bytes::Bytes,
) -> ApiResult<Json<Value>> {
    // The body is optional: `{"block": true}` also blocks the asker.
    let block = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        parse_json::<RejectBody>(&body)?.block.unwrap_or(false)
    };
    let c = svc::decide(&state, &caller, &id, false, block).await?;
    let message = if block {
        "Request rejected; that agent cannot ask again"
    } else {
        "Request rejected"
    };
    Ok(Json(ok(json!({
        "message": message,
        "conversation_id": c.uuid,
        "status": c.status.as_str(),
        "blocked": block,
    }))))
}

pub async fn conversations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let list = svc::conversations(&state, &caller).await?;
    let total_unread: i64 = list.iter().map(|c| c.unread).sum();
    let items: Vec<Value> = list.iter().map(conversation).collect();
    Ok(Json(ok(json!({
        "inbox": "main",
        "total_unread": total_unread,
        "conversations": {"count": items.len(), "items": items},
    }))))
}

pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (c, messages) = svc::read(&state, &caller, &id).await?;
    let uuid = &c.conversation.uuid;
    let items: Vec<Value> = messages.iter().map(message).collect();
    Ok(Json(ok(json!({
        "conversation_id": uuid,
        "conversation": conversation(&c),
        "with_agent": views::agent(&c.with),
        "count": items.len(),
        "messages": items,
    }))))
}

#[derive(Deserialize)]
pub struct SendBody {
    #[serde(alias = "content")]
    message: Option<String>,
    #[serde(default, alias = "needsHumanInput")]
    needs_human_input: Option<bool>,
}

pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SendBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let m = svc::send(
        &state,
        &caller,
        &id,
        b.message,
        b.needs_human_input.unwrap_or(false),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ok(json!({
            "message": "Message sent",
            "sent": message(&m),
        }))),
    ))
}
