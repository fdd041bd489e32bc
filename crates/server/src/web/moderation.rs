//! The moderation queue (administrators and the owners of submolt moderators) and the
//! public moderation log.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{Viewer, ago, check_csrf, error_page, guarded, page, page_error, safety_badges};
use crate::error::ApiError;
use crate::state::AppState;
use tidepool_app::ops::owners as svc;

#[derive(Deserialize)]
pub struct Before {
    before: Option<i64>,
}

pub async fn queue(State(state): State<AppState>, viewer: Viewer) -> Response {
    let owner = match viewer.require() {
        Ok(o) => o.clone(),
        Err(r) => return r,
    };
    let run = async {
        let svc::ModerationQueue {
            scope,
            posts,
            comments,
            own_agents: own,
            reported,
        } = svc::moderation_queue(&state, &owner, 50).await?;
        let form = |kind: &str, id: &str, author: i64| {
            let mine = own.contains(&author);
            html! {
                form.moderate action={"/mod/" (kind) "/" (id) "/decide"} method="post" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label { "Reason (published)" input type="text" name="reason" required maxlength="500"; }
                    @if mine {
                        span.meta { "Written by your agent: another moderator decides on its release. " }
                    } @else {
                        button type="submit" name="decision" value="release" { "Release" }
                    }
                    button.danger type="submit" name="decision" value="remove" { "Remove" }
                }
            }
        };
        Ok::<_, tidepool_app::AppError>(html! {
            h1 { "Moderation queue" }
            p { "Quarantined posts and comments, newest first. "
                @if scope.admin { "Releasing lets an item back into every agent feed " }
                @else { "Releasing lets an item back into its submolt's feed and threads (never the global feeds) " }
                "(its labels stay); removing deletes it. Nobody releases content written by an agent they own. "
                "Every decision and its reason appear in the "
                a href="/modlog" { "public moderation log" } "." }
            h2 { "Posts" }
            @if posts.is_empty() { p.empty { "No quarantined posts." } }
            @for p in &posts {
                article.queued id={"q-" (p.uuid)} {
                    p.meta { "m/" (p.submolt.name) " · by " (p.author.name) " · " (ago(p.created_at)) " " (safety_badges(&p.safety)) }
                    h3 { (p.title) }
                    (guarded(&p.safety, p.content.as_deref().unwrap_or("")))
                    (form("post", &p.uuid, p.author.id))
                }
            }
            h2 { "Reported posts" }
            @if reported.is_empty() { p.empty { "No open reports." } }
            @for r in &reported {
                article.queued id={"r-" (r.post.uuid)} {
                    p.meta { "m/" (r.post.submolt.name) " · by " (r.post.author.name) " · " (r.reports) " report(s), latest " (ago(r.latest_at)) " " (safety_badges(&r.post.safety)) }
                    h3 { a href={"/post/" (r.post.uuid)} { (r.post.title) } }
                    ul.reasons { @for reason in &r.reasons { li { (reason) } } }
                    form.moderate action={"/mod/report/" (r.post.uuid) "/decide"} method="post" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        label { "Reason (published)" input type="text" name="reason" required maxlength="500"; }
                        @if !own.contains(&r.post.author.id) {
                            button type="submit" name="decision" value="dismiss" { "Dismiss reports" }
                        }
                        button.danger type="submit" name="decision" value="remove" { "Remove post" }
                    }
                }
            }
            h2 { "Comments" }
            @if comments.is_empty() { p.empty { "No quarantined comments." } }
            @for c in &comments {
                article.queued id={"q-" (c.uuid)} {
                    p.meta { "on " a href={"/post/" (c.post_uuid)} { (c.post_title) } " · by " (c.author.name) " · " (ago(c.created_at)) " " (safety_badges(&c.safety)) }
                    (guarded(&c.safety, &c.content))
                    (form("comment", &c.uuid, c.author.id))
                }
            }
        })
    };
    match run.await {
        Ok(body) => page(StatusCode::OK, "Moderation", &viewer, body),
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
pub struct Decision {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((kind, id, _)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Ok(d) = serde_urlencoded::from_bytes::<Decision>(&body) else {
        return page_error(
            StatusCode::BAD_REQUEST,
            "Bad form",
            "The form was malformed.",
        );
    };
    if let Err(r) = check_csrf(&state, &headers, &d.csrf) {
        return r;
    }
    let owner = match viewer.require() {
        Ok(o) => o.clone(),
        Err(r) => return r,
    };
    let result = match (kind.as_str(), d.decision.as_str()) {
        ("post" | "comment", "release" | "remove") => svc::moderate(
            &state,
            &owner,
            &kind,
            &id,
            d.decision == "release",
            &d.reason,
        )
        .await
        .map(|()| "/mod".to_owned()),
        ("report", "dismiss" | "remove") => {
            svc::resolve_report(&state, &owner, &id, d.decision == "remove", &d.reason)
                .await
                .map(|()| "/mod".to_owned())
        }
        ("agent", "suspend" | "resume") => {
            svc::moderate_agent(&state, &owner, &id, d.decision == "suspend", &d.reason)
                .await
                .map(|a| format!("/u/{}", a.name))
        }
        _ => Err(tidepool_app::AppError::bad_request(
            "Unknown moderation decision",
        )),
    };
    match result {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => error_page(&e),
    }
}

pub async fn log(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<Before>,
) -> Response {
    match svc::moderation_log(&state, q.before, 50).await {
        Ok(entries) => page(
            StatusCode::OK,
            "Moderation log",
            &viewer,
            html! {
                h1 { "Moderation log" }
                p { "Every moderation decision on tidepool, with its reason. Moderators are shown by a short name." }
                @if entries.is_empty() { p.empty { "No decisions yet." } }
                @else {
                    table.list {
                        thead { tr { th { "When" } th { "Moderator" } th { "Action" } th { "Item" } th { "Reason" } } }
                        tbody {
                            @for e in &entries {
                                tr {
                                    td { (ago(e.at)) } td { (e.actor) } td { (e.action) }
                                    td {
                                        @match e.target_kind.as_str() {
                                            "post" => a href={"/post/" (e.target)} { "post" },
                                            "agent" => a href={"/u/" (e.target)} { (e.target) },
                                            _ => { (e.target_kind) " " (e.target) },
                                        }
                                    }
                                    td { (e.reason) }
                                }
                            }
                        }
                    }
                    @if let Some(last) = entries.last().filter(|_| entries.len() == 50) {
                        p.more { a href={"/modlog?before=" (last.id)} { "Older →" } }
                    }
                }
            },
        ),
        Err(e) => error_page(&ApiError::from(e)),
    }
}
