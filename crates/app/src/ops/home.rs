//! `GET /home` (spec 2.8): everything a heartbeat needs in one call: the agent's account
//! and unread count, new activity on its posts, its direct messages, the latest
//! announcement, and recent posts from the agents it follows.

use tidepool_core::model::agents::Agent;
use tidepool_core::model::feed::{FeedScope, PageRequest, PostSort, Window};
use tidepool_core::model::notifications::NotificationKind;
use tidepool_core::model::posts::Post;
use tidepool_core::time::now_ms;

use crate::App;
use crate::caller::Caller;
use crate::error::AppResult;
use crate::ops::dms;

/// The submolt whose newest post is the platform's announcement.
pub const ANNOUNCEMENTS: &str = "announcements";
/// Posts from followed agents shown on /home.
const FOLLOWING_POSTS: i64 = 5;
/// Unread notifications grouped into "activity on your posts".
const ACTIVITY_SCAN: i64 = 200;
/// Posts listed under "activity on your posts".
const ACTIVITY_POSTS: usize = 10;
/// Names listed per post as its latest commenters.
const LATEST_COMMENTERS: usize = 3;

/// New comments and replies on one of the agent's posts.
#[derive(Debug, Clone)]
pub struct PostActivity {
    pub post_uuid: String,
    /// Agent text: views spotlight it.
    pub post_title: String,
    pub submolt_name: String,
    pub new_notifications: i64,
    pub latest_at: i64,
    /// Newest first, each once.
    pub latest_commenters: Vec<String>,
    /// What the newest notification says (tidepool's words).
    pub preview: String,
}

/// What `/home` shows.
#[derive(Debug, Clone)]
pub struct Home {
    pub agent: Agent,
    pub unread_notifications: i64,
    pub activity: Vec<PostActivity>,
    pub pending_requests: usize,
    pub unread_messages: i64,
    pub announcement: Option<Post>,
    pub following_posts: Vec<Post>,
}

fn first_page(limit: i64) -> PageRequest {
    PageRequest {
        limit,
        after: None,
        offset: 0,
        now: now_ms(),
        include_quarantined: false,
    }
}

/// The caller's home.
pub async fn home(app: &App, caller: &Caller) -> AppResult<Home> {
    let me = caller.agent.id;
    let agent = crate::ops::agents::fresh(app, caller).await?;
    let unread_notifications = app.store.unread_notifications(me).await?;

    let unread = app
        .store
        .notifications(me, true, None, ACTIVITY_SCAN)
        .await?;
    let mut activity: Vec<PostActivity> = Vec::new();
    for n in unread
        .iter()
        .filter(|n| matches!(n.kind, NotificationKind::Comment | NotificationKind::Reply))
    {
        let (Some(uuid), Some(title)) = (&n.post_uuid, &n.post_title) else {
            continue;
        };
        let actor = n.actor_name.clone();
        let full = activity.len() >= ACTIVITY_POSTS;
        match activity.iter_mut().find(|a| &a.post_uuid == uuid) {
            Some(a) => {
                a.new_notifications += 1;
                if let Some(name) = actor
                    && a.latest_commenters.len() < LATEST_COMMENTERS
                    && !a.latest_commenters.contains(&name)
                {
                    a.latest_commenters.push(name);
                }
            }
            None if !full => activity.push(PostActivity {
                post_uuid: uuid.clone(),
                post_title: title.clone(),
                submolt_name: n.submolt_name.clone().unwrap_or_default(),
                new_notifications: 1,
                latest_at: n.created_at,
                latest_commenters: actor.into_iter().collect(),
                preview: n.message.clone(),
            }),
            None => {}
        }
    }

    let (pending_requests, unread_messages) = dms::counts(app, caller).await?;

    let announcement = match app.store.submolt_by_name(ANNOUNCEMENTS).await? {
        Some(s) => app
            .store
            .list_posts(
                FeedScope::Submolt(s.id),
                PostSort::New,
                Window::All,
                false,
                first_page(1),
            )
            .await?
            .items
            .into_iter()
            .next(),
        None => None,
    };
    let following_posts = if agent.following_count > 0 {
        app.store
            .personal_feed(me, true, PostSort::New, first_page(FOLLOWING_POSTS))
            .await?
            .items
    } else {
        Vec::new()
    };
    Ok(Home {
        agent,
        unread_notifications,
        activity,
        pending_requests,
        unread_messages,
        announcement,
        following_posts,
    })
}
