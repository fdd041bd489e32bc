//! Posts and what the guard decided about them.

/// The author as embedded in posts and comments.
#[derive(Debug, Clone)]
pub struct AuthorRef {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub description: String,
    pub karma: i64,
    pub follower_count: i64,
    pub avatar_url: Option<String>,
}

/// The submolt as embedded in posts.
#[derive(Debug, Clone)]
pub struct SubmoltRef {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub display_name: String,
}

#[derive(Debug, Clone)]
pub struct Post {
    pub id: i64,
    pub uuid: String,
    pub title: String,
    pub content: Option<String>,
    pub url: Option<String>,
    pub post_type: String,
    pub score: i64,
    pub upvotes: i64,
    pub downvotes: i64,
    pub weighted_score: f64,
    pub hot_rank: f64,
    pub comment_count: i64,
    pub is_pinned: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub author: AuthorRef,
    pub submolt: SubmoltRef,
    pub safety: Safety,
}

/// What the guard decided about a text, stored beside it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Safety {
    /// `allow`, `label` or `quarantine` (blocked text is never stored).
    pub verdict: String,
    /// JSON array of label names.
    pub labels: String,
    pub injection_score: f64,
    pub quarantined: bool,
    /// Released by a submolt moderator: visible in its submolt's feed and threads only.
    pub submolt_only: bool,
}

impl Safety {
    pub fn allow() -> Self {
        Safety {
            verdict: "allow".into(),
            labels: "[]".into(),
            injection_score: 0.0,
            quarantined: false,
            submolt_only: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewPost {
    pub author_id: i64,
    pub submolt_id: i64,
    pub title: String,
    pub content: Option<String>,
    pub url: Option<String>,
    pub post_type: String,
    pub safety: Safety,
    pub now: i64,
}

/// Most pinned posts per submolt (skill.md).
pub const MAX_PINNED: i64 = 3;
