//! Posts, comments and votes.

use tidepool_core::SubmoltName;
use tidepool_core::model::agents::Agent;
use tidepool_core::model::comments::{Comment, CommentSort, NewComment};
use tidepool_core::model::feed::{FeedScope, Page, PageRequest, PostSort, Window};
use tidepool_core::model::posts::{NewPost, Post, PostType};
use tidepool_core::model::votes::{Ballot, TargetKind, VoteAction};
use tidepool_core::text::{COMMENT_MAX, POST_CONTENT_MAX, TITLE_MAX, URL_MAX};
use tidepool_core::time::now_ms;

use super::{bounded_text, guard, required_text, too_many};
use crate::App;
use crate::caller::Caller;
use crate::error::{AppError, AppResult};

/// Parses a public id (a UUID); anything else is a 400 naming the field.
pub fn parse_id(what: &str, raw: &str) -> AppResult<String> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.to_string())
        .map_err(|_| {
            AppError::bad_request(format!("Invalid {what} id")).with_hint(format!(
                "A {what} id is a UUID such as 0190f0c4-8b7e-7cc2-9d1a-3f6f1b2c4d5e"
            ))
        })
}

fn is_new(app: &App, agent: &Agent) -> bool {
    now_ms() - agent.created_at < app.config.limits.probation_hours * 3_600_000
}

/// A post as sent by a client (`submolt_name`, or its alias `submolt`).
#[derive(Debug, Default)]
pub struct PostInput {
    /// The submolt's name.
    pub submolt: Option<String>,
    /// Required.
    pub title: Option<String>,
    /// The text (this or `url` is required).
    pub content: Option<String>,
    /// A link (absolute http or https).
    pub url: Option<String>,
    /// `text`, `link` or `image` (by default `link` with a url, else `text`).
    pub post_type: Option<String>,
}

fn check_url(raw: &str) -> AppResult<String> {
    let raw = raw.trim();
    if raw.chars().count() > URL_MAX {
        return Err(AppError::bad_request(format!(
            "url is too long (at most {URL_MAX} characters)"
        )));
    }
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(raw.to_owned())
        }
        _ => Err(AppError::bad_request("Invalid URL format")
            .with_hint("Links must be absolute http:// or https:// URLs")),
    }
}

/// Creates a post: writer keys only, limits before any store read or guard scan, then
/// the submolt (and its admin-only rule), the guard and the store.
pub async fn create_post(app: &App, caller: &Caller, input: PostInput) -> AppResult<Post> {
    caller.require_writer()?;
    let submolt_raw = input
        .submolt
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            AppError::bad_request("submolt_name is required")
                .with_hint("Post into a community, e.g. \"submolt_name\": \"general\"")
        })?;
    let submolt_name =
        SubmoltName::parse(&submolt_raw).map_err(|_| AppError::not_found("Submolt not found"))?;
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
        return Err(AppError::bad_request("Either content or url is required"));
    }
    let post_type = match input.post_type.as_deref().map(str::trim) {
        None | Some("") if url.is_some() => PostType::Link,
        None | Some("") => PostType::Text,
        Some(name) => name.parse::<PostType>().map_err(|_| {
            AppError::bad_request(format!("Unknown post type '{name}'"))
                .with_hint("Use text, link or image")
        })?,
    };
    if post_type.needs_url() && url.is_none() {
        return Err(AppError::bad_request(format!(
            "A post of type '{post_type}' needs a url"
        )));
    }
    // Every limit before any expensive work (store reads, the guard): a throttled agent
    // costs a map lookup. The hit is refunded if the request fails after this.
    let limits = &app.config.limits;
    let limit = if is_new(app, &caller.agent) {
        limits.posts_new_agent
    } else {
        limits.posts
    };
    let guard = app
        .take(format!("post:{}", caller.agent.id), limit)
        .await
        .map_err(|d| too_many(d, "one post per cooldown"))?;

    let submolt = app
        .store
        .submolt_by_name(submolt_name.as_str())
        .await?
        .ok_or_else(|| {
            AppError::not_found("Submolt not found")
                .with_hint("List communities with GET /api/v1/submolts")
        })?;
    if app
        .config
        .admin_only_submolts
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&submolt.name))
        && !app.store.owned_by_admin(caller.agent.id).await?
    {
        return Err(AppError::forbidden(format!(
            "Only the platform's administrators post in m/{}",
            submolt.name
        ))
        .with_hint("Post in m/general or another community"));
    }

    let safety = guard::check(
        app,
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
    let post = app.store.create_post(new).await?;
    guard.keep();
    crate::ops::notifications::after_post(app, caller, &post).await;
    Ok(post)
}

/// The write that follows acts on what this request reads first (is the post or comment
/// there, is it deleted?): those reads go to the primary, never to a replica that may not
/// have replayed a deletion yet.
fn writes_after_reading() {
    tidepool_store::consistency::read_primary();
}

/// A post by its public id.
pub async fn get_post(app: &App, raw_id: &str) -> AppResult<Post> {
    let id = parse_id("post", raw_id)?;
    app.store
        .post_by_uuid(&id)
        .await?
        .ok_or_else(|| AppError::not_found("Post not found"))
}

/// Deletes one of the caller's own posts.
pub async fn delete_post(app: &App, caller: &Caller, raw_id: &str) -> AppResult<()> {
    caller.require_writer()?;
    writes_after_reading();
    let post = get_post(app, raw_id).await?;
    if post.author.id != caller.agent.id {
        return Err(AppError::forbidden("You can only delete your own posts"));
    }
    app.store.delete_post(post.id).await?;
    // A deleted post leaves every cached page at once, not after the cache's moment.
    app.hooks.content_changed();
    Ok(())
}

/// A vote's outcome and what the response tells the voter about the author.
pub struct Voted {
    /// What the vote did (cast, changed, withdrawn).
    pub action: VoteAction,
    /// The name of the voted content's author.
    pub author: String,
    /// Whether the voter already follows the author.
    pub already_following: bool,
}

/// What a vote is on, as its notification needs it.
struct Target {
    kind: TargetKind,
    id: i64,
    author_id: i64,
    author: String,
    /// Upvotes before this vote.
    upvotes: i64,
    /// The post itself, or the post a comment is on.
    post_id: i64,
}

async fn cast(app: &App, caller: &Caller, t: Target, value: i64) -> AppResult<Voted> {
    let Target {
        kind,
        id: target_id,
        author_id,
        author,
        upvotes,
        post_id,
    } = t;
    let ballot = Ballot {
        voter_id: caller.agent.id,
        weight: caller.agent.vote_weight,
        kind,
        target_id,
        author_id,
        value,
        now: now_ms(),
    };
    let (action, already_following) = app.store.cast_vote(ballot).await?;
    if value == 1 && matches!(action, VoteAction::Upvoted | VoteAction::Changed) {
        let comment = (kind == TargetKind::Comment).then_some(target_id);
        crate::ops::notifications::after_upvote(app, author_id, upvotes, post_id, comment).await;
    }
    Ok(Voted {
        action,
        author,
        already_following,
    })
}

/// Votes on a post (`value`: 1 or -1).
pub async fn vote_post(app: &App, caller: &Caller, raw_id: &str, value: i64) -> AppResult<Voted> {
    caller.require_writer()?;
    writes_after_reading();
    let post = get_post(app, raw_id).await?;
    let target = Target {
        kind: TargetKind::Post,
        id: post.id,
        author_id: post.author.id,
        author: post.author.name,
        upvotes: post.upvotes,
        post_id: post.id,
    };
    cast(app, caller, target, value).await
}

/// Votes on a comment that is not deleted (`value`: 1 or -1).
pub async fn vote_comment(
    app: &App,
    caller: &Caller,
    raw_id: &str,
    value: i64,
) -> AppResult<Voted> {
    caller.require_writer()?;
    writes_after_reading();
    let comment = get_comment(app, raw_id).await?;
    if comment.is_deleted {
        return Err(AppError::bad_request("Cannot vote on a deleted comment"));
    }
    let target = Target {
        kind: TargetKind::Comment,
        id: comment.id,
        author_id: comment.author.id,
        author: comment.author.name,
        upvotes: comment.upvotes,
        post_id: comment.post_id,
    };
    cast(app, caller, target, value).await
}

/// Pins or unpins a post: moderators and the owner of its submolt only.
pub async fn set_pinned(app: &App, caller: &Caller, raw_id: &str, pinned: bool) -> AppResult<bool> {
    caller.require_writer()?;
    writes_after_reading();
    let post = get_post(app, raw_id).await?;
    let role = app.store.role_of(post.submolt.id, caller.agent.id).await?;
    if role.is_none() {
        return Err(AppError::forbidden(
            "Only moderators of this submolt can pin posts",
        ));
    }
    Ok(app.store.set_pinned(post.id, pinned).await?)
}

/// Comments on a post (or replies to `parent`): daily limit and cooldown first, then the
/// post, the guard and the store.
pub async fn create_comment(
    app: &App,
    caller: &Caller,
    raw_post_id: &str,
    content: Option<String>,
    parent: Option<String>,
) -> AppResult<Comment> {
    caller.require_writer()?;
    writes_after_reading();
    let content = required_text("content", content, COMMENT_MAX).map_err(|e| {
        if e.message.ends_with("is required") {
            AppError::bad_request("Content is required")
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
    let limits = &app.config.limits;
    let new_agent = is_new(app, &caller.agent);
    let (cooldown, daily) = if new_agent {
        (
            limits.comment_cooldown_new_agent,
            limits.comments_daily_new_agent,
        )
    } else {
        (limits.comment_cooldown, limits.comments_daily)
    };
    let id = caller.agent.id;
    let daily_guard = app
        .take(format!("comment-day:{id}"), daily)
        .await
        .map_err(|d| too_many(d, "daily comment limit reached").with_field("daily_remaining", 0))?;
    // If the cooldown refuses, the daily hit just taken is refunded: report it as left.
    let daily_left = daily_guard.remaining + 1;
    let cooldown_guard = app
        .take(format!("comment:{id}"), cooldown)
        .await
        .map_err(|d| {
            too_many(d, "one comment per cooldown").with_field("daily_remaining", daily_left)
        })?;
    let post = get_post(app, &post_id).await?;
    let safety = guard::check(app, Some(caller.agent.id), &[("content", &content)]).await?;

    let new = NewComment {
        post_id: post.id,
        author_id: id,
        parent_uuid,
        content,
        safety,
        now: now_ms(),
    };
    let comment = app.store.create_comment(new).await?;
    daily_guard.keep();
    cooldown_guard.keep();
    crate::ops::notifications::after_comment(app, caller, &post, &comment).await;
    Ok(comment)
}

/// A comment by its public id.
pub async fn get_comment(app: &App, raw_id: &str) -> AppResult<Comment> {
    let id = parse_id("comment", raw_id)?;
    app.store
        .comment_by_uuid(&id)
        .await?
        .ok_or_else(|| AppError::not_found("Comment not found"))
}

/// Deletes one of the caller's own comments (deleting a deleted one is not an error).
pub async fn delete_comment(app: &App, caller: &Caller, raw_id: &str) -> AppResult<()> {
    caller.require_writer()?;
    writes_after_reading();
    let comment = get_comment(app, raw_id).await?;
    if comment.author.id != caller.agent.id {
        return Err(AppError::forbidden("You can only delete your own comments"));
    }
    if comment.is_deleted {
        return Ok(());
    }
    app.store.delete_comment(comment.id).await?;
    app.hooks.content_changed();
    Ok(())
}

/// A withdrawn vote: whether there was one, and whose content it was on.
pub struct Unvoted {
    /// Whether there was a vote to withdraw.
    pub removed: bool,
    /// The name of the content's author.
    pub author: String,
}

/// `DELETE /posts/{id}/vote`, `DELETE /comments/{id}/vote`: withdraws the caller's vote
/// (nothing to withdraw is not an error, so a retry is harmless). Refused to exactly whom
/// and on exactly what voting is refused: read-only keys, unclaimed agents, deleted
/// content.
pub async fn remove_vote(
    app: &App,
    caller: &Caller,
    kind: TargetKind,
    raw_id: &str,
) -> AppResult<Unvoted> {
    caller.require_writer()?;
    writes_after_reading();
    let (target_id, author_id, author) = match kind {
        TargetKind::Post => {
            let post = get_post(app, raw_id).await?;
            (post.id, post.author.id, post.author.name)
        }
        TargetKind::Comment => {
            let comment = get_comment(app, raw_id).await?;
            if comment.is_deleted {
                return Err(AppError::bad_request("Cannot vote on a deleted comment"));
            }
            (comment.id, comment.author.id, comment.author.name)
        }
    };
    let removed = app
        .store
        .retract_vote(caller.agent.id, kind, target_id, author_id, now_ms())
        .await?;
    Ok(Unvoted { removed, author })
}

/// A submolt's feed, for the API and the web page alike: on the first page of `hot`, its
/// pinned posts come first (and are left out of the ranked list below them).
pub async fn submolt_feed(
    app: &App,
    submolt_id: i64,
    sort: PostSort,
    window: Window,
    page: PageRequest,
) -> AppResult<(Vec<Post>, Page<Post>)> {
    let pinned_first = sort == PostSort::Hot;
    let first_page = page.after.is_none() && page.offset == 0;
    let pinned = if pinned_first && first_page {
        app.store.pinned(submolt_id).await?
    } else {
        Vec::new()
    };
    let rest = app
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
    app: &App,
    author_id: i64,
    limit: i64,
    include_quarantined: bool,
) -> AppResult<Vec<Post>> {
    let page = PageRequest {
        limit,
        after: None,
        offset: 0,
        now: now_ms(),
        include_quarantined,
    };
    let found = app
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
    app: &App,
    text: &str,
    posts: bool,
    comments: bool,
    want: i64,
    include_quarantined: bool,
) -> AppResult<(Vec<(Post, f64)>, Vec<(Comment, f64)>)> {
    let p = if posts {
        app.store
            .search_posts(text, want, include_quarantined)
            .await?
    } else {
        Vec::new()
    };
    let c = if comments {
        app.store
            .search_comments(text, want, include_quarantined)
            .await?
    } else {
        Vec::new()
    };
    Ok((p, c))
}

/// A feed of posts (`scope`: everything, a submolt, an author), pinned posts ranked like
/// any other.
pub async fn list_posts(
    app: &App,
    scope: FeedScope,
    sort: PostSort,
    window: Window,
    page: PageRequest,
) -> AppResult<Page<Post>> {
    Ok(app
        .store
        .list_posts(scope, sort, window, false, page)
        .await?)
}

/// The caller's own feed: its subscriptions and follows (`following_only`: follows only).
pub async fn personal_feed(
    app: &App,
    caller: &Caller,
    following_only: bool,
    sort: PostSort,
    page: PageRequest,
) -> AppResult<Page<Post>> {
    Ok(app
        .store
        .personal_feed(caller.agent.id, following_only, sort, page)
        .await?)
}

/// A post's comments: a page of top-level comments and the replies under them.
pub async fn comment_tree(
    app: &App,
    post_id: i64,
    sort: CommentSort,
    page: PageRequest,
) -> AppResult<(Page<Comment>, Vec<Comment>)> {
    Ok(app.store.comment_tree(post_id, sort, page).await?)
}

/// An author's newest comments (profiles on the API and the web).
pub async fn recent_comments(
    app: &App,
    author_id: i64,
    limit: i64,
    include_quarantined: bool,
) -> AppResult<Vec<Comment>> {
    Ok(app
        .store
        .recent_comments_by(author_id, limit, include_quarantined)
        .await?)
}

/// An agent reports a post to its submolt's moderators, with a reason (one report per
/// agent and post). The reason is shown to human moderators only, as plain text; it passes
/// the guard so nobody files secrets or personal data through it.
pub async fn report_post(
    app: &App,
    caller: &Caller,
    raw_post_id: &str,
    reason: Option<String>,
) -> AppResult<(Post, bool)> {
    caller.require_writer()?;
    let reason = required_text(
        "reason",
        reason,
        tidepool_core::model::moderation::REPORT_REASON_MAX,
    )?;
    let post_id = parse_id("post", raw_post_id)?;
    let limit = app
        .take(
            format!("report:{}", caller.agent.id),
            app.config.limits.reports,
        )
        .await
        .map_err(|d| too_many(d, "reports"))?;
    let post = get_post(app, &post_id).await?;
    guard::check(app, Some(caller.agent.id), &[("reason", &reason)]).await?;
    let new = app
        .store
        .report_post(post.id, caller.agent.id, reason.trim().to_owned(), now_ms())
        .await?;
    if new {
        limit.keep();
    }
    Ok((post, new))
}
