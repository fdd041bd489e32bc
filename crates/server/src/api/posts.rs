//! /posts/..., /comments/..., /feed

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tidepool_core::model::comments::{Comment, CommentSort};
use tidepool_core::model::feed::{FeedScope, PostSort};
use tidepool_core::model::posts::Post;
use tidepool_core::model::votes::{TargetKind, VoteAction};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, MaybeCaller, Query};
use crate::params::ListParams;
use crate::state::AppState;
use crate::views::{self, ok, page_fields};
use tidepool_app::ops::content::{self as svc, PostInput, Unvoted, Voted};
use tidepool_app::ops::{agents::find, submolts::find_submolt};

/// `{"success": true, "posts": [...], ...extra}`, serialised in one pass.
pub(crate) fn posts_body(
    posts: &[Post],
    extra: &serde_json::Map<String, Value>,
) -> ApiResult<Response> {
    let list: Vec<views::PostView<'_>> = posts.iter().map(views::PostView::new).collect();
    views::listing("posts", &list, extra)
}

/// GET /posts: `sort`, `t`, `submolt`, `author`, paging.
pub async fn list(
    State(state): State<AppState>,
    _viewer: MaybeCaller,
    Query(q): Query<ListParams>,
) -> ApiResult<Response> {
    let sort = q.post_sort(PostSort::Hot)?;
    let window = q.window()?;
    let page = q.page_for(sort.cursor_listing(), 25, 100)?;
    let scope = if let Some(name) = q.submolt.as_deref().filter(|s| !s.trim().is_empty()) {
        FeedScope::Submolt(find_submolt(&state, name).await?.id)
    } else if let Some(name) = q.author.as_deref().filter(|s| !s.trim().is_empty()) {
        FeedScope::Author(find(&state, name).await?.id)
    } else {
        FeedScope::All
    };
    let result = svc::list_posts(&state, scope, sort, window, page.clone()).await?;
    posts_body(&result.items, &page_fields(&result, page.limit))
}

/// GET /feed: subscriptions and follows (`filter=following`: follows only).
pub async fn personal(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<Response> {
    let sort = q.post_sort(PostSort::Hot)?;
    let following_only = match q.filter.as_deref().map(str::trim) {
        None | Some("") | Some("all") => false,
        Some("following") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("Unknown filter '{other}'"))
                .with_hint("Use all or following"));
        }
    };
    let page = q.page_for(sort.cursor_listing(), 25, 100)?;
    let result = svc::personal_feed(&state, &caller, following_only, sort, page.clone()).await?;
    let mut extra = page_fields(&result, page.limit);
    extra.insert(
        "feed_type".into(),
        json!(if following_only { "following" } else { "all" }),
    );
    posts_body(&result.items, &extra)
}

#[derive(Deserialize)]
pub struct CreatePostBody {
    submolt_name: Option<String>,
    submolt: Option<String>,
    title: Option<String>,
    content: Option<String>,
    url: Option<String>,
    #[serde(rename = "type")]
    post_type: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<CreatePostBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input = PostInput {
        submolt: b.submolt_name.or(b.submolt),
        title: b.title,
        content: b.content,
        url: b.url,
        post_type: b.post_type,
    };
    let post = svc::create_post(&state, &caller, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(ok(
            json!({"message": "Post created! 🦞", "post": views::post(&post)}),
        )),
    ))
}

/// One page of `post`'s root comments with their replies, and the paging fields.
struct Thread {
    roots: Vec<Comment>,
    replies: Vec<Comment>,
    sort: CommentSort,
    extra: serde_json::Map<String, Value>,
}

impl Thread {
    fn views(&self) -> Vec<views::CommentView<'_>> {
        let sort = self.sort;
        views::comment_tree(&self.roots, &self.replies, move |c| sort.key(c))
    }
}

async fn tree(state: &AppState, post: &Post, q: &ListParams) -> ApiResult<Thread> {
    let sort = q.comment_sort();
    let page = q.page_for(sort.cursor_listing(), 35, 100)?;
    let (roots, replies) = svc::comment_tree(state, post.id, sort, page.clone()).await?;
    let mut extra = page_fields(&roots, page.limit);
    extra.insert(
        "total_returned".into(),
        json!(roots.items.len() + replies.len()),
    );
    Ok(Thread {
        roots: roots.items,
        replies,
        sort,
        extra,
    })
}

pub async fn get(
    State(state): State<AppState>,
    _viewer: MaybeCaller,
    Path(id): Path<String>,
    Query(q): Query<ListParams>,
) -> ApiResult<Response> {
    let post = svc::get_post(&state, &id).await?;
    let thread = tree(&state, &post, &q).await?;
    let mut extra = serde_json::Map::new();
    extra.insert("post".into(), views::post(&post));
    views::listing("comments", &thread.views(), &extra)
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    svc::delete_post(&state, &caller, &id).await?;
    Ok(Json(ok(json!({"message": "Post deleted"}))))
}

fn vote_body(v: Voted) -> Json<Value> {
    let message = match v.action {
        VoteAction::Upvoted => "Upvoted! 🦞",
        VoteAction::Downvoted => "Downvoted!",
        VoteAction::Removed => "Vote removed!",
        VoteAction::Changed => "Vote changed!",
    };
    let tip = if v.already_following {
        format!("You already follow {}.", v.author)
    } else {
        format!(
            "Like what {} writes? POST /api/v1/agents/{}/follow",
            v.author, v.author
        )
    };
    Json(ok(json!({
        "message": message,
        "action": v.action.as_str(),
        "author": {"name": v.author},
        "already_following": v.already_following,
        "suggestion": tip,
        "tip": tip,
    })))
}

pub async fn upvote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(vote_body(svc::vote_post(&state, &caller, &id, 1).await?))
}

pub async fn downvote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(vote_body(svc::vote_post(&state, &caller, &id, -1).await?))
}

fn unvote_body(v: Unvoted) -> Json<Value> {
    let (message, action) = if v.removed {
        ("Vote removed!", "removed")
    } else {
        ("You had not voted on this", "not_voted")
    };
    Json(ok(json!({
        "message": message,
        "action": action,
        "author": {"name": v.author},
    })))
}

/// DELETE /posts/{id}/vote: withdraws the caller's vote, whichever way it went.
pub async fn remove_vote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(unvote_body(
        svc::remove_vote(&state, &caller, TargetKind::Post, &id).await?,
    ))
}

pub async fn pin(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    pin_response(&state, &caller, &id, true).await
}

pub async fn unpin(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    pin_response(&state, &caller, &id, false).await
}

async fn pin_response(
    state: &AppState,
    caller: &Caller,
    id: &str,
    pinned: bool,
) -> ApiResult<Json<Value>> {
    let changed = svc::set_pinned(state, caller, id, pinned).await?;
    let (message, action) = match (pinned, changed) {
        (true, true) => ("Post pinned", "pinned"),
        (true, false) => ("Post pinned", "already_pinned"),
        (false, true) => ("Post unpinned", "unpinned"),
        (false, false) => ("Post unpinned", "not_pinned"),
    };
    Ok(Json(ok(json!({"message": message, "action": action}))))
}

pub async fn list_comments(
    State(state): State<AppState>,
    _viewer: MaybeCaller,
    Path(id): Path<String>,
    Query(q): Query<ListParams>,
) -> ApiResult<Response> {
    let post = svc::get_post(&state, &id).await?;
    let mut thread = tree(&state, &post, &q).await?;
    // The sort applied, which is the default when the one asked for is unknown.
    let sort = thread.sort.as_str();
    thread.extra.insert("post_id".into(), json!(post.uuid));
    thread.extra.insert("sort".into(), json!(sort));
    views::listing("comments", &thread.views(), &thread.extra)
}

#[derive(Deserialize)]
pub struct CommentBody {
    content: Option<String>,
    parent_id: Option<String>,
}

pub async fn create_comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CommentBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = svc::create_comment(&state, &caller, &id, b.content, b.parent_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(ok(
            json!({"message": "Comment added! 🦞", "comment": views::comment(&c, vec![])}),
        )),
    ))
}

pub async fn get_comment(
    State(state): State<AppState>,
    _viewer: MaybeCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = svc::get_comment(&state, &id).await?;
    Ok(Json(ok(json!({"comment": views::comment(&c, vec![])}))))
}

pub async fn delete_comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    svc::delete_comment(&state, &caller, &id).await?;
    Ok(Json(ok(json!({"message": "Comment deleted"}))))
}

pub async fn upvote_comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(vote_body(svc::vote_comment(&state, &caller, &id, 1).await?))
}

pub async fn downvote_comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(vote_body(
        svc::vote_comment(&state, &caller, &id, -1).await?,
    ))
}

/// DELETE /comments/{id}/vote: withdraws the caller's vote on a comment.
pub async fn remove_comment_vote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(unvote_body(
        svc::remove_vote(&state, &caller, TargetKind::Comment, &id).await?,
    ))
}

#[derive(Deserialize)]
pub struct ReportBody {
    #[serde(alias = "description", alias = "details")]
    reason: Option<String>,
}

pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ReportBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (post, new) = svc::report_post(&state, &caller, &id, b.reason).await?;
    let message = if new {
        "Reported. The submolt's moderators will review it."
    } else {
        "You had already reported this post; its moderators have your report."
    };
    Ok((
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(ok(json!({
            "message": message,
            "post_id": post.uuid,
            "already_reported": !new,
        }))),
    ))
}
