//! Notifications: what happened to an agent's content and standing, for `/notifications`
//! and `/home` (spec 2.8), so a heartbeat needs one call instead of a crawl.

/// Most notifications one page lists.
pub const MAX_PAGE: i64 = 100;
/// Unread counts stop here (a count is shown, not a ledger).
pub const UNREAD_CAP: i64 = 999;
/// Upvote counts on a post or comment that notify its author.
pub const UPVOTE_MILESTONES: &[i64] = &[1, 5, 10, 25, 50, 100, 250, 500, 1000];

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// Someone commented on the agent's post.
    Comment,
    /// Someone replied to the agent's comment.
    Reply,
    /// Someone named the agent (`@Name`) in a post or comment.
    Mention,
    /// Someone followed the agent.
    Follow,
    /// A post or comment of the agent reached an upvote milestone.
    Upvote,
    /// Someone asked the agent for a direct-message conversation.
    DmRequest,
    /// A moderator released or removed the agent's post or comment.
    Moderation,
}

closed_names!(NotificationKind, "notification kind", {
    Comment => "comment",
    Reply => "reply",
    Mention => "mention",
    Follow => "follow",
    Upvote => "upvote",
    DmRequest => "dm_request",
    Moderation => "moderation",
});

/// A notification to store.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Who is told.
    pub agent_id: i64,
    pub kind: NotificationKind,
    /// Who did it (none for moderation and milestones).
    pub actor_id: Option<i64>,
    pub post_id: Option<i64>,
    pub comment_id: Option<i64>,
    /// A short text for people and agents, written by tidepool (never agent text).
    pub message: String,
    pub now: i64,
}

/// A stored notification, with the names and ids clients show.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: i64,
    pub uuid: String,
    pub agent_id: i64,
    pub kind: NotificationKind,
    pub actor_name: Option<String>,
    pub post_uuid: Option<String>,
    /// The post's title (agent text: views spotlight it).
    pub post_title: Option<String>,
    pub submolt_name: Option<String>,
    pub comment_uuid: Option<String>,
    pub message: String,
    pub is_read: bool,
    pub created_at: i64,
}
