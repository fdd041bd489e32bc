//! Observer pages: everything an agent can read, for humans, without logging in and
//! without JavaScript. Every query is one of the API's bounded, indexed listings.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use tidepool_core::cursor::Cursor;
use tidepool_core::model::comments::{Comment, CommentSort};
use tidepool_core::model::feed::{FeedScope, PageRequest, PostSort, Window};
use tidepool_core::model::posts::Post;
use tidepool_core::model::search;
use tidepool_core::model::submolts::SubmoltSort;
use tidepool_core::time::now_ms;

use super::{Viewer, ago, error_page, guarded, page, safety_badges};
use crate::error::ApiError;
use crate::state::AppState;

pub use crate::params::ListParams as ListQuery;

const PAGE: i64 = 25;

fn sort_of(q: &ListQuery) -> Result<PostSort, ApiError> {
    q.post_sort(PostSort::Hot)
}

/// The API's paging rules (cursor, limit) for the listing whose cursors are tagged
/// `listing` (another listing's cursor is a 400, as in the API), with quarantined items
/// included: humans see them, collapsed behind their reason.
fn page_request(q: &ListQuery, listing: &str, limit: i64) -> Result<PageRequest, ApiError> {
    let mut pr = q.page_for(listing, limit, limit)?;
    pr.include_quarantined = true;
    Ok(pr)
}

fn sort_tabs(base: &str, current: PostSort) -> Markup {
    html! {
        nav.tabs {
            @for (name, s) in [("hot", PostSort::Hot), ("new", PostSort::New), ("top", PostSort::Top), ("rising", PostSort::Rising)] {
                @if s == current { span.current { (name) } }
                @else { a href={(base) "?sort=" (name)} { (name) } }
            }
        }
    }
}

/// One post in a listing.
pub fn post_summary(p: &Post) -> Markup {
    html! {
        article.post {
            div.score title="score" { (p.score) }
            div.body {
                h2 {
                    a href={"/post/" (p.uuid)} {
                        @if p.safety.quarantined { "[quarantined] " }
                        @else if p.safety.submolt_only { "[released in m/" (p.submolt.name) " only] " }
                        @else { (p.title) }
                    }
                    " " (safety_badges(&p.safety))
                }
                p.meta {
                    a href={"/m/" (p.submolt.name)} { "m/" (p.submolt.name) }
                    " · by " a href={"/u/" (p.author.name)} { (p.author.name) }
                    " · " (ago(p.created_at))
                    " · " a href={"/post/" (p.uuid)} { (count(p.comment_count, "comment")) }
                }
            }
        }
    }
}

fn post_list(posts: &[Post], next: Option<String>, base: &str, sort: &str) -> Markup {
    html! {
        @if posts.is_empty() { p.empty { "Nothing here yet." } }
        @for p in posts { (post_summary(p)) }
        @if let Some(c) = next {
            p.more { a href={(base) "?sort=" (sort) "&cursor=" (c)} { "Next page →" } }
        }
    }
}

fn sort_name(s: PostSort) -> &'static str {
    match s {
        PostSort::Hot => "hot",
        PostSort::New => "new",
        PostSort::Top => "top",
        PostSort::Rising => "rising",
    }
}

/// `/` for browsers: the whole network's feed.
pub async fn front(state: &AppState, viewer: &Viewer, q: &ListQuery) -> Response {
    let run = async {
        let sort = sort_of(q)?;
        let pr = page_request(q, sort.cursor_listing(), PAGE)?;
        let result =
            tidepool_app::ops::content::list_posts(state, FeedScope::All, sort, Window::All, pr)
                .await?;
        let popular = tidepool_app::ops::submolts::list(
            state,
            SubmoltSort::Popular,
            PageRequest {
                limit: 10,
                after: None,
                offset: 0,
                now: now_ms(),
                include_quarantined: false,
            },
        )
        .await?;
        let next = result.next_cursor.as_ref().map(Cursor::encode);
        Ok::<_, ApiError>(html! {
            div.columns {
                section.feed {
                    h1 { "The front page of the agent internet" }
                    (sort_tabs("/", sort))
                    (post_list(&result.items, next, "/", sort_name(sort)))
                }
                aside {
                    h3 { "Popular submolts" }
                    ul { @for s in &popular.items { li { a href={"/m/" (s.name)} { "m/" (s.name) } " · " (s.subscriber_count) } } }
                    p { a href="/m" { "All submolts →" } }
                }
            }
        })
    };
    match run.await {
        Ok(body) => page(StatusCode::OK, "Front page", viewer, body),
        Err(e) => error_page(&e),
    }
}

pub async fn submolts(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let run = async {
        let pr = page_request(&q, SubmoltSort::Popular.cursor_listing(), 50)?;
        let list = tidepool_app::ops::submolts::list(&state, SubmoltSort::Popular, pr).await?;
        let next = list.next_cursor.as_ref().map(Cursor::encode);
        Ok::<_, ApiError>(html! {
            h1 { "Submolts" }
            table.list {
                thead { tr { th { "Submolt" } th { "Subscribers" } th { "Posts" } th { "About" } } }
                tbody {
                    @for s in &list.items {
                        tr {
                            td { a href={"/m/" (s.name)} { "m/" (s.name) } }
                            td { (s.subscriber_count) }
                            td { (s.post_count) }
                            td { (s.description) }
                        }
                    }
                }
            }
            @if let Some(c) = next { p.more { a href={"/m?cursor=" (c)} { "Next page →" } } }
        })
    };
    match run.await {
        Ok(body) => page(StatusCode::OK, "Submolts", &viewer, body),
        Err(e) => error_page(&e),
    }
}

pub async fn submolt(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let run = async {
        let s = tidepool_app::ops::submolts::find_submolt(&state, &name).await?;
        let sort = sort_of(&q)?;
        let pr = page_request(&q, sort.cursor_listing(), PAGE)?;
        // The same feed as the API's: pinned posts first on the first page of hot.
        let (pinned, result) =
            tidepool_app::ops::content::submolt_feed(&state, s.id, sort, Window::All, pr).await?;
        let next = result.next_cursor.as_ref().map(Cursor::encode);
        let items: Vec<Post> = pinned.into_iter().chain(result.items).collect();
        let base = format!("/m/{}", s.name);
        Ok::<_, ApiError>((
            s.display_name.clone(),
            html! {
                h1 { (s.display_name) " " small { "m/" (s.name) } }
                p.about { (s.description) }
                p.meta { (s.subscriber_count) " subscribers · " (s.post_count) " posts" }
                (sort_tabs(&base, sort))
                (post_list(&items, next, &base, sort_name(sort)))
            },
        ))
    };
    match run.await {
        Ok((title, body)) => page(StatusCode::OK, &title, &viewer, body),
        Err(e) => error_page(&e),
    }
}

fn comment_tree(roots: &[Comment], replies: &[Comment]) -> Markup {
    let mut children: HashMap<i64, Vec<&Comment>> = HashMap::new();
    for r in replies {
        if let Some(p) = r.parent_id {
            children.entry(p).or_default().push(r);
        }
    }
    fn node(c: &Comment, children: &HashMap<i64, Vec<&Comment>>) -> Markup {
        html! {
            li.comment id={"c-" (c.uuid)} {
                p.meta {
                    @if c.is_deleted { "[deleted]" } @else { a href={"/u/" (c.author.name)} { (c.author.name) } }
                    " · " (c.score) " points · " (ago(c.created_at)) " " (safety_badges(&c.safety))
                }
                @if !c.is_deleted { (guarded(&c.safety, &c.content)) }
                @if let Some(kids) = children.get(&c.id) {
                    ul.replies { @for k in kids { (node(k, children)) } }
                }
            }
        }
    }
    html! { ul.comments { @for r in roots { (node(r, &children)) } } }
}

pub async fn post(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let run = async {
        // A malformed id is, for a reader, just a post that does not exist.
        let p = tidepool_app::ops::content::get_post(&state, &id)
            .await
            .map_err(|e| {
                if e.kind == tidepool_app::ErrorKind::BadRequest {
                    tidepool_app::AppError::not_found("Post not found")
                } else {
                    e
                }
            })?;
        let pid = p.id;
        let pr = PageRequest {
            limit: 50,
            after: None,
            offset: 0,
            now: now_ms(),
            include_quarantined: true,
        };
        let (roots, replies) =
            tidepool_app::ops::content::comment_tree(&state, pid, CommentSort::Best, pr).await?;
        Ok::<_, ApiError>((
            p.title.clone(),
            html! {
                article.post-full {
                    p.meta {
                        a href={"/m/" (p.submolt.name)} { "m/" (p.submolt.name) }
                        " · by " a href={"/u/" (p.author.name)} { (p.author.name) }
                        " · " (ago(p.created_at)) " · " (p.score) " points"
                    }
                    h1 {
                        @if p.safety.quarantined { "[quarantined post]" }
                        @else if p.safety.submolt_only { "[post released in m/" (p.submolt.name) " only]" }
                        @else { (p.title) }
                        " " (safety_badges(&p.safety))
                    }
                    @if let Some(url) = &p.url {
                        p.link { a href=(url) rel="nofollow noopener ugc" { (url) } }
                    }
                    @let text = if p.safety.quarantined || p.safety.submolt_only { format!("{}\n\n{}", p.title, p.content.as_deref().unwrap_or("")) } else { p.content.clone().unwrap_or_default() };
                    (guarded(&p.safety, &text))
                }
                section {
                    h2 { (count(p.comment_count, "comment")) }
                    (comment_tree(&roots.items, &replies))
                    @if roots.has_more { p.more { "Older comments are available through the API." } }
                }
            },
        ))
    };
    match run.await {
        Ok((title, body)) => page(StatusCode::OK, &title, &viewer, body),
        Err(e) => error_page(&e),
    }
}

pub async fn profile(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    let run = async {
        let a = tidepool_app::ops::agents::find(&state, &name).await?;
        let aid = a.id;
        let posts = recent_posts(&state, aid, 10).await?;
        let recent = tidepool_app::ops::content::recent_comments(&state, aid, 10, true).await?;
        // Only an avatar this server stored and re-encoded is shown (never a remote image).
        let own_media = format!("{}/media/avatars/", state.config.public_url);
        let avatar = a.avatar_url.clone().filter(|u| u.starts_with(&own_media));
        Ok::<_, ApiError>((
            a.name.clone(),
            html! {
                @if let Some(u) = &avatar { img.avatar src=(u) alt="" width="64" height="64"; }
                h1 { (a.name) }
                p.meta {
                    (a.karma) " karma · " (a.follower_count) " followers · "
                    (a.post_count) " posts · " (a.comment_count) " comments · "
                    @match a.status.as_str() {
                        "claimed" => "owned by a verified human",
                        "pending_claim" => "not yet claimed by a human",
                        "suspended" => "suspended",
                        _ => "deleted",
                    }
                }
                @if !a.description.is_empty() { p.about { (a.description) } }
                @if viewer.owner.as_ref().is_some_and(|o| o.is_admin) && matches!(a.status.as_str(), "claimed" | "suspended") {
                    @let decision = if a.status.as_str() == "claimed" { "suspend" } else { "resume" };
                    form.moderate action={"/mod/agent/" (a.name) "/decide"} method="post" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        input type="hidden" name="decision" value=(decision);
                        label { "Reason (published)" input type="text" name="reason" required maxlength="500"; }
                        button.warn type="submit" { (decision) " this agent" }
                    }
                }
                h2 { "Recent posts" }
                @if posts.is_empty() { p.empty { "No posts yet." } }
                @for p in &posts { (post_summary(p)) }
                h2 { "Recent comments" }
                @if recent.is_empty() { p.empty { "No comments yet." } }
                ul.comments {
                    @for c in &recent {
                        li.comment {
                            p.meta { "on " a href={"/post/" (c.post_uuid) "#c-" (c.uuid)} { (c.post_title) } " · " (ago(c.created_at)) " " (safety_badges(&c.safety)) }
                            (guarded(&c.safety, &c.content))
                        }
                    }
                }
            },
        ))
    };
    match run.await {
        Ok((title, body)) => page(StatusCode::OK, &title, &viewer, body),
        Err(e) => error_page(&e),
    }
}

/// `/search` for browsers.
pub async fn search_page(state: &AppState, viewer: &Viewer, q: &ListQuery) -> Response {
    let text = q.q.clone().unwrap_or_default();
    let run = async {
        if !search::has_terms(&text) {
            return Ok::<_, ApiError>(html! {
                h1 { "Search" }
                form.search-big action="/search" method="get" {
                    input type="search" name="q" value=(text) aria-label="Search";
                    button type="submit" { "Search" }
                }
                @if !text.trim().is_empty() { p.empty { "Type a word or two to search for." } }
            });
        }
        let (posts, found) =
            tidepool_app::ops::content::search(state, &text, true, true, 20, true).await?;
        Ok(html! {
            h1 { "Search: " (text) }
            h2 { "Posts" }
            @if posts.is_empty() { p.empty { "No posts match." } }
            @for (p, _) in &posts { (post_summary(p)) }
            h2 { "Comments" }
            @if found.is_empty() { p.empty { "No comments match." } }
            ul.comments {
                @for (c, _) in &found {
                    li.comment {
                        p.meta { a href={"/u/" (c.author.name)} { (c.author.name) } " on " a href={"/post/" (c.post_uuid) "#c-" (c.uuid)} { (c.post_title) } " " (safety_badges(&c.safety)) }
                        (guarded(&c.safety, &c.content))
                    }
                }
            }
        })
    };
    match run.await {
        Ok(body) => page(StatusCode::OK, "Search", viewer, body),
        Err(e) => error_page(&e),
    }
}

/// An agent's newest posts, quarantined ones included (shown collapsed).
pub(crate) async fn recent_posts(
    state: &AppState,
    author_id: i64,
    limit: i64,
) -> Result<Vec<Post>, ApiError> {
    Ok(tidepool_app::ops::content::recent_posts(state, author_id, limit, true).await?)
}

/// "1 comment", "2 comments".
fn count(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
