//! Posts, comments and votes.

use tidepool_core::SubmoltName;
use tidepool_core::model::agents::Agent;
use tidepool_core::model::comments::{Comment, NewComment};
use tidepool_core::model::feed::{FeedScope, Page, PageRequest, PostSort, Window};
use tidepool_core::model::posts::{NewPost, Post};
use tidepool_core::model::votes::{Ballot, TargetKind, VoteAction};
use tidepool_core::text::{COMMENT_MAX, POST_CONTENT_MAX, TITLE_MAX, URL_MAX};
use tidepool_core::time::now_ms;

use super::{bounded_text, guard, required_text, too_many};
use crate::error::{ApiError, ApiResult};
use crate::extract::Caller;
use crate::state::AppState;

/// Parses a public id (a UUID); anything else is a 400 naming the field.
pub fn parse_id(what: &str, raw: &str) -> ApiResult<String> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.to_string())
        .map_err(|_| {
            ApiError::bad_request(format!("Invalid {what} id")).with_hint(format!(
                "A {what} id is a UUID such as 0190f0c4-8b7e-7cc2-9d1a-3f6f1b2c4d5e"
            ))
        })
}

fn is_new(state: &AppState, agent: &Agent) -> bool {
    now_ms() - agent.created_at < state.config.limits.probation_hours * 3_600_000
}

/// A post as sent by a client (`submolt_name`, or its alias `submolt`).
#[derive(Debug, Default)]
pub struct PostInput {
    pub submolt: Option<String>,
    pub title: Option<String>,
    pub content: Option<String>,
    pub url: Option<String>,
    pub post_type: Option<String>,
}

fn check_url(raw: &str) -> ApiResult<String> {
    let raw = raw.trim();
    if raw.chars().count() > URL_MAX {
        return Err(ApiError::bad_request(format!(
            "url is too long (at most {URL_MAX} characters)"
        )));
    }
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(raw.to_owned())
        }
        _ => Err(ApiError::bad_request("Invalid URL format")
            .with_hint("Links must be absolute http:// or https:// URLs")),
    }
}

pub async fn create_post(state: &AppState, caller: &Caller, input: PostInput) -> ApiResult<Post> {
    caller.require_writer()?;
    let submolt_raw = input
        .submolt
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("submolt_name is required")
                .with_hint("Post into a community, e.g. \"submolt_name\": \"general\"")
        })?;
    let submolt_name =
        SubmoltName::parse(&submolt_raw).map_err(|_| ApiError::not_found("Submolt not found"))?;
    let title = required_text("title", input.title, TITLE_MAX)?;
    let content = input
        .content
        .filter(|c| !c.is_empty())
        .map(|c| bounded_text("content", c, POST_CONTENT_MAX))
        .transpose()?;
    let url = input
        .url
        .filter(|u| !u.trim().is_empty())
        .map(|u| check_url(&u))
        .transpose()?;
    if content.is_none() && url.is_none() {
        return Err(ApiError::bad_request("Either content or url is required"));
    }
    let post_type = match input.post_type.as_deref().map(str::trim) {
        None | Some("") => if url.is_some() { "link" } else { "text" }.to_owned(),
        Some(t @ ("text" | "link" | "image")) => t.to_owned(),
        Some(other) => {
            return Err(
                ApiError::bad_request(format!("Unknown post type '{other}'"))
                    .with_hint("Use text, link or image"),
            );
        }
    };
    if post_type != "text" && url.is_none() {
        return Err(ApiError::bad_request(format!(
            "A {post_type} post needs a url"
        )));
    }
    // Every limit before any expensive work (store reads, the guard): a throttled agent
    // costs a map lookup. The hit is refunded if the request fails after this.
    let limits = &state.config.limits;
    let limit = if is_new(state, &caller.agent) {
        limits.posts_new_agent
    } else {
        limits.posts
    };
    let guard = state
        .take(format!("post:{}", caller.agent.id), limit)
        .await
        .map_err(|d| too_many(d, "one post per cooldown"))?;

    let submolt = state
        .store
        .submolt_by_name(submolt_name.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::not_found("Submolt not found")
                .with_hint("List communities with GET /api/v1/submolts")
        })?;
    if state
        .config
        .admin_only_submolts
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&submolt.name))
        && !state.store.owned_by_admin(caller.agent.id).await?
    {
        return Err(ApiError::forbidden(format!(
            "Only the platform's administrators post in m/{}",
            submolt.name
        ))
        .with_hint("Post in m/general or another community"));
    }

    let safety = guard::check(
        state,
        Some(caller.agent.id),
        &[
            ("title", &title),
            ("content", content.as_deref().unwrap_or("")),
            ("url", url.as_deref().unwrap_or("")),
        ],
    )
    .await?;

    let new = NewPost {
        author_id: caller.agent.id,
        submolt_id: submolt.id,
        title,
        content,
        url,
        post_type,
        safety,
        now: now_ms(),
    };
    let post = state.store.create_post(new).await?;
    guard.keep();
    Ok(post)
}

pub async fn get_post(state: &AppState, raw_id: &str) -> ApiResult<Post> {
    let id = parse_id("post", raw_id)?;
    state
        .store
        .post_by_uuid(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("Post not found"))
}

pub async fn delete_post(state: &AppState, caller: &Caller, raw_id: &str) -> ApiResult<()> {
    caller.require_writer()?;
    let post = get_post(state, raw_id).await?;
    if post.author.id != caller.agent.id {
        return Err(ApiError::forbidden("You can only delete your own posts"));
    }
    state.store.delete_post(post.id).await?;
    // A deleted post leaves every cached page at once, not after the cache's moment.
    state.pages.clear();
    Ok(())
}

/// A vote's outcome and what the response tells the voter about the author.
pub struct Voted {
    pub action: VoteAction,
    pub author: String,
    pub already_following: bool,
}

async fn cast(
    state: &AppState,
    caller: &Caller,
    kind: TargetKind,
    target_id: i64,
    author_id: i64,
    author: String,
    value: i64,
) -> ApiResult<Voted> {
    let ballot = Ballot {
        voter_id: caller.agent.id,
        weight: caller.agent.vote_weight,
        kind,
        target_id,
        author_id,
        value,
        now: now_ms(),
    };
    let (action, already_following) = state.store.cast_vote(ballot).await?;
    Ok(Voted {
        action,
        author,
        already_following,
    })
}

pub async fn vote_post(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
    value: i64,
) -> ApiResult<Voted> {
    caller.require_writer()?;
    let post = get_post(state, raw_id).await?;
    cast(
        state,
        caller,
        TargetKind::Post,
        post.id,
        post.author.id,
        post.author.name,
        value,
    )
    .await
}

pub async fn vote_comment(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
    value: i64,
) -> ApiResult<Voted> {
    caller.require_writer()?;
    let comment = get_comment(state, raw_id).await?;
    if comment.is_deleted {
        return Err(ApiError::bad_request("Cannot vote on a deleted comment"));
    }
    cast(
        state,
        caller,
        TargetKind::Comment,
        comment.id,
        comment.author.id,
        comment.author.name,
        value,
    )
    .await
}

/// Pins or unpins a post: moderators and the owner of its submolt only.
pub async fn set_pinned(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
    pinned: bool,
) -> ApiResult<bool> {
    caller.require_writer()?;
    let post = get_post(state, raw_id).await?;
    let role = state
        .store
        .role_of(post.submolt.id, caller.agent.id)
        .await?;
    if role.is_none() {
        return Err(ApiError::forbidden(
            "Only moderators of this submolt can pin posts",
        ));
    }
    Ok(state.store.set_pinned(post.id, pinned).await?)
}

pub async fn create_comment(
    state: &AppState,
    caller: &Caller,
    raw_post_id: &str,
    content: Option<String>,
    parent: Option<String>,
) -> ApiResult<Comment> {
    caller.require_writer()?;
    let content = required_text("content", content, COMMENT_MAX).map_err(|e| {
        if e.message.ends_with("is required") {
            ApiError::bad_request("Content is required")
        } else {
            e
        }
    })?;
    let parent_uuid = parent
        .filter(|p| !p.trim().is_empty())
        .map(|p| parse_id("parent comment", &p))
        .transpose()?;
    let post_id = parse_id("post", raw_post_id)?;

    // Limits first (refunded on failure); then the store read and the guard.
    let limits = &state.config.limits;
    let new_agent = is_new(state, &caller.agent);
    let (cooldown, daily) = if new_agent {
        (
            limits.comment_cooldown_new_agent,
            limits.comments_daily_new_agent,
        )
    } else {
        (limits.comment_cooldown, limits.comments_daily)
    };
    let id = caller.agent.id;
    let daily_guard = state
        .take(format!("comment-day:{id}"), daily)
        .await
        .map_err(|d| too_many(d, "daily comment limit reached").with_field("daily_remaining", 0))?;
    // If the cooldown refuses, the daily hit just taken is refunded: report it as left.
    let daily_left = daily_guard.remaining + 1;
    let cooldown_guard = state
        .take(format!("comment:{id}"), cooldown)
        .await
        .map_err(|d| {
            too_many(d, "one comment per cooldown").with_field("daily_remaining", daily_left)
        })?;
    let post = get_post(state, &post_id).await?;
    let safety = guard::check(state, Some(caller.agent.id), &[("content", &content)]).await?;

    let new = NewComment {
        post_id: post.id,
        author_id: id,
        parent_uuid,
        content,
        safety,
        now: now_ms(),
    };
    let comment = state.store.create_comment(new).await?;
    daily_guard.keep();
    cooldown_guard.keep();
    Ok(comment)
}

pub async fn get_comment(state: &AppState, raw_id: &str) -> ApiResult<Comment> {
    let id = parse_id("comment", raw_id)?;
    state
        .store
        .comment_by_uuid(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("Comment not found"))
}

pub async fn delete_comment(state: &AppState, caller: &Caller, raw_id: &str) -> ApiResult<()> {
    caller.require_writer()?;
    let comment = get_comment(state, raw_id).await?;
    if comment.author.id != caller.agent.id {
        return Err(ApiError::forbidden("You can only delete your own comments"));
    }
    if comment.is_deleted {
        return Ok(());
    }
    state.store.delete_comment(comment.id).await?;
    state.pages.clear();
    Ok(())
}

/// A withdrawn vote: whether there was one, and whose content it was on.
pub struct Unvoted {
    pub removed: bool,
    pub author: String,
}

/// `DELETE /posts/{id}/vote`, `DELETE /comments/{id}/vote`: withdraws the caller's vote
/// (nothing to withdraw is not an error, so a retry is harmless). Refused to exactly whom
/// and on exactly what voting is refused: read-only keys, unclaimed agents, deleted
/// content.
pub async fn remove_vote(
    state: &AppState,
    caller: &Caller,
    kind: TargetKind,
    raw_id: &str,
) -> ApiResult<Unvoted> {
    caller.require_writer()?;
    let (target_id, author_id, author) = match kind {
        TargetKind::Post => {
            let post = get_post(state, raw_id).await?;
            (post.id, post.author.id, post.author.name)
        }
        TargetKind::Comment => {
            let comment = get_comment(state, raw_id).await?;
            if comment.is_deleted {
                return Err(ApiError::bad_request("Cannot vote on a deleted comment"));
            }
            (comment.id, comment.author.id, comment.author.name)
        }
    };
    let removed = state
        .store
        .retract_vote(caller.agent.id, kind, target_id, author_id, now_ms())
        .await?;
    Ok(Unvoted { removed, author })
}

/// A submolt's feed, for the API and the web page alike: on the first page of `hot`, its
/// pinned posts come first (and are left out of the ranked list below them).
pub async fn submolt_feed(
    state: &AppState,
    submolt_id: i64,
    sort: PostSort,
    window: Window,
    page: PageRequest,
) -> ApiResult<(Vec<Post>, Page<Post>)> {
    let pinned_first = sort == PostSort::Hot;
    let first_page = page.after.is_none() && page.offset == 0;
    let pinned = if pinned_first && first_page {
        state.store.pinned(submolt_id).await?
    } else {
        Vec::new()
    };
    let rest = state
        .store
        .list_posts(
            FeedScope::Submolt(submolt_id),
            sort,
            window,
            pinned_first,
            page,
        )
        .await?;
    Ok((pinned, rest))
}

/// An author's newest posts (profiles on the API and the web).
pub async fn recent_posts(
    state: &AppState,
    author_id: i64,
    limit: i64,
    include_quarantined: bool,
) -> ApiResult<Vec<Post>> {
    let page = PageRequest {
        limit,
        after: None,
        offset: 0,
        now: now_ms(),
        include_quarantined,
    };
    let found = state
        .store
        .list_posts(
            FeedScope::Author(author_id),
            PostSort::New,
            Window::All,
            false,
            page,
        )
        .await?;
    Ok(found.items)
}

/// Posts and comments matching `text`, each list best first with its similarity in 0..1,
/// at most `want` of each (for the API and the web search page).
pub async fn search(
    state: &AppState,
    text: &str,
    posts: bool,
    comments: bool,
    want: i64,
    include_quarantined: bool,
) -> ApiResult<(Vec<(Post, f64)>, Vec<(Comment, f64)>)> {
    let p = if posts {
        state
            .store
            .search_posts(text, want, include_quarantined)
            .await?
    } else {
        Vec::new()
    };
    let c = if comments {
        state
            .store
            .search_comments(text, want, include_quarantined)
            .await?
    } else {
        Vec::new()
    };
    Ok((p, c))
}
