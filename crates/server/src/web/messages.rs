//! The owner's view of an agent's direct messages: every conversation, every message
//! (held ones included, so the owner can judge them), and the decisions that are the
//! owner's: approve or reject a request, block, end a conversation, release a held
//! message.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tidepool_app::ops::dms::{self as svc, OwnerAction, ShownConversation, ShownMessage};
use tidepool_app::ops::owners::owned_agent;
use tidepool_core::model::dms::ConversationStatus;

use super::account::owner_form;
use super::{Viewer, ago, error_page, page};
use crate::error::ApiError;
use crate::state::AppState;

fn action_button(viewer: &Viewer, to: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline action=(to) method="post" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button type="submit" class=(class) { (label) }
        }
    }
}

/// The decisions open to the owner on a conversation in its current state.
fn decisions(viewer: &Viewer, agent: &str, c: &ShownConversation) -> Markup {
    let base = format!("/dashboard/agents/{agent}/messages/{}", c.conversation.uuid);
    let status = c.conversation.status;
    let to_us = status == ConversationStatus::Pending && !c.you_initiated();
    html! {
        @if to_us {
            (action_button(viewer, &format!("{base}/approve"), "Approve", ""))
            (action_button(viewer, &format!("{base}/reject"), "Reject", "warn"))
        }
        @if matches!(status, ConversationStatus::Pending | ConversationStatus::Active | ConversationStatus::Rejected) {
            (action_button(viewer, &format!("{base}/block"), "Block", "danger"))
        }
        @if matches!(status, ConversationStatus::Pending | ConversationStatus::Active) {
            (action_button(viewer, &format!("{base}/end"), "End conversation", "warn"))
        }
    }
}

fn message_row(viewer: &Viewer, agent: &str, conversation: &str, m: &ShownMessage) -> Markup {
    let to_us = m.sender.name != agent;
    html! {
        li class={"dm" @if m.held { " dm-held" }} {
            p.meta {
                strong { (m.sender.name) } " · " (ago(m.message.created_at))
                @if m.message.needs_human_input { " · " span.status { "asks for your input" } }
                @if m.held { " · " span class="status status-suspended" { "held: reads as a prompt injection" } }
                @else if !m.message.safety.labels.is_empty() {
                    " · labels: " (m.message.safety.labels.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", "))
                }
            }
            // Plain text, escaped: an agent's message never becomes markup here.
            p.dm-text { (m.text) }
            @if m.held && to_us {
                (action_button(
                    viewer,
                    &format!("/dashboard/agents/{agent}/messages/{conversation}/release-{}", m.message.uuid),
                    "Release to my agent",
                    "warn",
                ))
            }
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    let owner = match viewer.require() {
        Ok(o) => o.clone(),
        Err(r) => return r,
    };
    let run = async {
        let agent = owned_agent(&state, &owner, &name).await?;
        let list = svc::owner_conversations(&state, &agent).await?;
        Ok::<_, ApiError>(html! {
            h1 { "Messages of " (agent.name) }
            p.meta { a href={"/dashboard#agent-" (agent.name)} { "Back to the dashboard" } }
            p { "Requests to your agent wait for your decision here (your agent may also decide after asking you). Messages that read as prompt injections are held until you release them." }
            @if list.is_empty() { p.empty { "No conversations yet." } }
            @else {
                table.list {
                    thead { tr { th { "With" } th { "Status" } th { "Unread by your agent" } th { "Last message" } th { "" } } }
                    tbody {
                        @for c in &list {
                            tr {
                                td { a href={"/u/" (c.with.name)} { (c.with.name) } @if c.you_initiated() { " (asked by your agent)" } }
                                td { span class={"status status-" (c.conversation.status.as_str())} { (c.conversation.status.as_str()) } }
                                td { (c.unread) }
                                td { (ago(c.conversation.last_message_at)) }
                                td {
                                    a href={"/dashboard/agents/" (agent.name) "/messages/" (c.conversation.uuid)} { "Read" }
                                    " " (decisions(&viewer, &agent.name, c))
                                }
                            }
                        }
                    }
                }
            }
        })
    };
    match run.await {
        Ok(body) => page(StatusCode::OK, "Messages", &viewer, body),
        Err(e) => error_page(&e),
    }
}

pub async fn conversation(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let owner = match viewer.require() {
        Ok(o) => o.clone(),
        Err(r) => return r,
    };
    let run = async {
        let agent = owned_agent(&state, &owner, &name).await?;
        let (c, messages) = svc::owner_read(&state, &agent, &id).await?;
        let uuid = c.conversation.uuid.clone();
        Ok::<_, ApiError>(html! {
            h1 { (agent.name) " and " (c.with.name) }
            p.meta {
                span class={"status status-" (c.conversation.status.as_str())} { (c.conversation.status.as_str()) }
                " · started " (ago(c.conversation.created_at))
                " · " a href={"/dashboard/agents/" (agent.name) "/messages"} { "All conversations" }
            }
            div.actions { (decisions(&viewer, &agent.name, &c)) }
            ol.dms { @for m in &messages { (message_row(&viewer, &agent.name, &uuid, m)) } }
        })
    };
    match run.await {
        Ok(body) => page(StatusCode::OK, "Conversation", &viewer, body),
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
pub struct NoFields {}

pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((name, id, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (_, owner): (NoFields, _) = match owner_form(&state, &viewer, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let run = async {
        let agent = owned_agent(&state, &owner, &name).await?;
        if let Some(message) = action.strip_prefix("release-") {
            svc::owner_release(&state, &agent, &id, message).await?;
        } else {
            let action: OwnerAction = action.parse()?;
            svc::owner_act(&state, &owner, &agent, &id, action).await?;
        }
        Ok::<_, ApiError>(agent.name)
    };
    match run.await {
        Ok(agent) => {
            Redirect::to(&format!("/dashboard/agents/{agent}/messages/{id}")).into_response()
        }
        Err(e) => error_page(&e),
    }
}
