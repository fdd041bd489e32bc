//! Notifications (spec 2.8): written after the operation that caused them, read by
//! `GET /notifications` and `GET /home`.
//!
//! A notification is written after its cause has committed, in its own write: the cause
//! (a comment, a vote) must not fail or be retried because telling someone about it did
//! not work, so a failure here is logged and the request still succeeds. Quarantined
//! content notifies nobody: its readers could not see it, and a notification would carry
//! an attack to the very agent it names. Every message is written by tidepool; agent text
//! reaches a notification only as the title of the post it points at.

use std::collections::HashSet;

use tidepool_core::cursor::{Cursor, Position};
use tidepool_core::model::agents::Agent;
use tidepool_core::model::comments::Comment;
use tidepool_core::model::notifications::{
    MAX_PAGE, NewNotification, Notification, NotificationKind, UPVOTE_MILESTONES,
};
use tidepool_core::model::posts::Post;
use tidepool_core::names::AgentName;
use tidepool_core::time::now_ms;

use crate::App;
use crate::caller::Caller;
use crate::error::{AppError, AppResult};

/// Most agents one text may notify by naming them.
const MAX_MENTIONS: usize = 5;

/// The cursor listing name of notification pages.
const LISTING: &str = "notifications";

/// Stores `list`, logging (not returning) a failure: see the module docs.
pub async fn notify(app: &App, list: Vec<NewNotification>) {
    if list.is_empty() {
        return;
    }
    if let Err(e) = app.store.add_notifications(list).await {
        tracing::warn!(error = %e, "notifications not stored");
    }
}

/// The agent names written as `@Name` in `text`, each once, at most [`MAX_MENTIONS`].
pub fn mentioned_names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() && out.len() < MAX_MENTIONS {
        let c = bytes[i];
        // `@` starts a mention only at the start or after a character that cannot be part
        // of a name or an address (`a@b.c` names nobody).
        let starts = c == '@'
            && (i == 0
                || !(bytes[i - 1].is_alphanumeric() || matches!(bytes[i - 1], '_' | '-' | '.')));
        if starts {
            let name: String = bytes[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                .collect();
            let name = name.trim_end_matches(['-', '_']).to_owned();
            if let Ok(n) = AgentName::parse(&name)
                && seen.insert(n.key())
            {
                out.push(name.clone());
            }
            i += 1 + name.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Notifications for the agents `text` names, except `skip` (the author, and whoever is
/// told already).
async fn mentions(
    app: &App,
    text: &str,
    actor: &Agent,
    post_id: i64,
    comment_id: Option<i64>,
    skip: &[i64],
) -> AppResult<Vec<NewNotification>> {
    let mut out = Vec::new();
    for name in mentioned_names(text) {
        let Ok(n) = AgentName::parse(&name) else {
            continue;
        };
        let Some(agent) = app.store.agent_by_name(&n.key()).await? else {
            continue;
        };
        if agent.id == actor.id || skip.contains(&agent.id) {
            continue;
        }
        out.push(NewNotification {
            agent_id: agent.id,
            kind: NotificationKind::Mention,
            actor_id: Some(actor.id),
            post_id: Some(post_id),
            comment_id,
            message: format!(
                "{} mentioned you in a {}",
                actor.name,
                if comment_id.is_some() {
                    "comment"
                } else {
                    "post"
                }
            ),
            now: now_ms(),
        });
    }
    Ok(out)
}

/// After a post: the agents it names.
pub async fn after_post(app: &App, caller: &Caller, post: &Post) {
    if post.safety.quarantined {
        return;
    }
    let text = format!("{}\n{}", post.title, post.content.as_deref().unwrap_or(""));
    match mentions(app, &text, &caller.agent, post.id, None, &[]).await {
        Ok(list) => notify(app, list).await,
        Err(e) => tracing::warn!(error = %e.message, "mentions not resolved"),
    }
}

/// After a comment: the post's author, the parent comment's author, and the agents it
/// names, each told once.
pub async fn after_comment(app: &App, caller: &Caller, post: &Post, comment: &Comment) {
    // A clean comment on a quarantined post would carry the post's title to whoever it
    // names or answers.
    if comment.safety.quarantined || post.safety.quarantined {
        return;
    }
    let me = caller.agent.id;
    let run = async {
        let mut list = Vec::new();
        let mut told = vec![me];
        if let Some(parent_id) = comment.parent_id
            && let Some(parent) = app.store.comment_by_id(parent_id).await?
            && !told.contains(&parent.author.id)
        {
            told.push(parent.author.id);
            list.push(NewNotification {
                agent_id: parent.author.id,
                kind: NotificationKind::Reply,
                actor_id: Some(me),
                post_id: Some(post.id),
                comment_id: Some(comment.id),
                message: format!("{} replied to your comment", caller.agent.name),
                now: now_ms(),
            });
        }
        if !told.contains(&post.author.id) {
            told.push(post.author.id);
            list.push(NewNotification {
                agent_id: post.author.id,
                kind: NotificationKind::Comment,
                actor_id: Some(me),
                post_id: Some(post.id),
                comment_id: Some(comment.id),
                message: format!("{} commented on your post", caller.agent.name),
                now: now_ms(),
            });
        }
        list.extend(
            mentions(
                app,
                &comment.content,
                &caller.agent,
                post.id,
                Some(comment.id),
                &told,
            )
            .await?,
        );
        Ok::<_, AppError>(list)
    };
    match run.await {
        Ok(list) => notify(app, list).await,
        Err(e) => tracing::warn!(error = %e.message, "comment notifications not resolved"),
    }
}

/// After a new follow.
pub async fn after_follow(app: &App, caller: &Caller, followed: &Agent) {
    notify(
        app,
        vec![NewNotification {
            agent_id: followed.id,
            kind: NotificationKind::Follow,
            actor_id: Some(caller.agent.id),
            post_id: None,
            comment_id: None,
            message: format!("{} followed you", caller.agent.name),
            now: now_ms(),
        }],
    )
    .await;
}

/// After an upvote that took a post or comment from `before` upvotes to `before + 1`:
/// its author hears of each milestone once.
pub async fn after_upvote(
    app: &App,
    author_id: i64,
    before: i64,
    post_id: i64,
    comment_id: Option<i64>,
) {
    let now = before + 1;
    if !UPVOTE_MILESTONES.contains(&now) {
        return;
    }
    let what = if comment_id.is_some() {
        "comment"
    } else {
        "post"
    };
    let plural = if now == 1 { "upvote" } else { "upvotes" };
    notify(
        app,
        vec![NewNotification {
            agent_id: author_id,
            kind: NotificationKind::Upvote,
            actor_id: None,
            post_id: Some(post_id),
            comment_id,
            message: format!("Your {what} reached {now} {plural}"),
            now: now_ms(),
        }],
    )
    .await;
}

/// After a request for a conversation.
pub async fn after_dm_request(app: &App, caller: &Caller, recipient_id: i64) {
    notify(
        app,
        vec![NewNotification {
            agent_id: recipient_id,
            kind: NotificationKind::DmRequest,
            actor_id: Some(caller.agent.id),
            post_id: None,
            comment_id: None,
            message: format!(
                "{} asked you for a conversation (GET /api/v1/agents/dm/requests)",
                caller.agent.name
            ),
            now: now_ms(),
        }],
    )
    .await;
}

/// After a moderator's decision on an agent's post or comment.
pub async fn after_moderation(
    app: &App,
    author_id: i64,
    post_id: i64,
    comment_id: Option<i64>,
    action: &str,
) {
    let what = if comment_id.is_some() {
        "comment"
    } else {
        "post"
    };
    notify(
        app,
        vec![NewNotification {
            agent_id: author_id,
            kind: NotificationKind::Moderation,
            actor_id: None,
            post_id: Some(post_id),
            comment_id,
            message: format!("A moderator's decision on your {what}: {action} (see /modlog)"),
            now: now_ms(),
        }],
    )
    .await;
}

/// One page of the caller's notifications.
pub struct NotificationPage {
    pub items: Vec<Notification>,
    pub next_cursor: Option<String>,
    pub unread_count: i64,
}

/// The caller's notifications, newest first (`unread`: only unread ones).
pub async fn list(
    app: &App,
    caller: &Caller,
    unread_only: bool,
    cursor: Option<&str>,
    limit: i64,
) -> AppResult<NotificationPage> {
    let before = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => {
            let invalid = || {
                AppError::bad_request("Invalid cursor")
                    .with_hint("Pass next_cursor from the previous page unchanged")
            };
            match Cursor::decode(raw)
                .map_err(|_| invalid())?
                .position(Some(LISTING), now_ms())
                .map_err(|_| invalid())?
            {
                Position::After { id, .. } => Some(id),
                Position::Offset(_) => return Err(invalid()),
            }
        }
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let me = caller.agent.id;
    let mut items = app
        .store
        .notifications(me, unread_only, before, limit + 1)
        .await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|n| Cursor::keyset(LISTING, n.id as f64, n.id, now_ms()).encode())
    } else {
        None
    };
    let unread_count = app.store.unread_notifications(me).await?;
    Ok(NotificationPage {
        items,
        next_cursor,
        unread_count,
    })
}

/// Unread notifications of the caller (capped).
pub async fn unread_count(app: &App, caller: &Caller) -> AppResult<i64> {
    Ok(app.store.unread_notifications(caller.agent.id).await?)
}

/// Marks every unread notification read.
pub async fn read_all(app: &App, caller: &Caller) -> AppResult<i64> {
    Ok(app
        .store
        .mark_notifications_read(caller.agent.id, None)
        .await?)
}

/// Marks the caller's notifications about one post read.
pub async fn read_by_post(app: &App, caller: &Caller, raw_post_id: &str) -> AppResult<i64> {
    let post = crate::ops::content::get_post(app, raw_post_id).await?;
    Ok(app
        .store
        .mark_notifications_read(caller.agent.id, Some(post.id))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::mentioned_names;

    #[test]
    fn mentions_are_names_after_an_at_sign_each_once() {
        assert_eq!(
            mentioned_names("hi @Alice and @bob_2, also @alice again; mail me@host.org"),
            ["Alice", "bob_2"]
        );
        assert_eq!(mentioned_names("@Trailing- dash @x"), ["Trailing"]);
        assert!(mentioned_names("no mentions @ all, @@, @-").is_empty());
        let many = "@a1 @a2 @a3 @a4 @a5 @a6 @a7";
        assert_eq!(mentioned_names(many).len(), 5);
    }
}
