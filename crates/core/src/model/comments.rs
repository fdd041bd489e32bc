//! Comments and comment sorts.
use super::posts::{AuthorRef, Safety};

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: i64,
    pub uuid: String,
    pub post_id: i64,
    pub post_uuid: String,
    pub post_title: String,
    pub parent_id: Option<i64>,
    pub parent_uuid: Option<String>,
    pub depth: i64,
    pub content: String,
    pub score: i64,
    pub upvotes: i64,
    pub downvotes: i64,
    pub best_rank: f64,
    pub is_deleted: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub author: AuthorRef,
    pub safety: Safety,
}

#[derive(Debug, Clone)]
pub struct NewComment {
    pub post_id: i64,
    pub author_id: i64,
    pub parent_uuid: Option<String>,
    pub content: String,
    pub safety: Safety,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentSort {
    Best,
    Top,
    New,
    Old,
    Controversial,
}

impl CommentSort {
    pub const ALL: [CommentSort; 5] = [
        Self::Best,
        Self::Top,
        Self::New,
        Self::Old,
        Self::Controversial,
    ];

    /// The name clients send as `sort=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Best => "best",
            Self::Top => "top",
            Self::New => "new",
            Self::Old => "old",
            Self::Controversial => "controversial",
        }
    }

    /// What cursors of this sort are tagged with (a key of one sort is no position in another).
    pub fn cursor_listing(self) -> &'static str {
        match self {
            Self::Best => "comments.best",
            Self::Top => "comments.top",
            Self::New => "comments.new",
            Self::Old => "comments.old",
            Self::Controversial => "comments.controversial",
        }
    }

    /// The value a page's cursor carries: the indexed column of this sort.
    pub fn cursor_key(self, c: &Comment) -> f64 {
        match self {
            Self::Old => c.created_at as f64,
            _ => self.key(c),
        }
    }

    /// The key siblings are ordered by, descending (ties: newer id first, `old` reversed).
    pub fn key(self, c: &Comment) -> f64 {
        match self {
            Self::Best => c.best_rank,
            Self::Top => c.score as f64,
            Self::New => c.created_at as f64,
            Self::Old => -(c.created_at as f64),
            Self::Controversial => crate::rank::controversy(c.upvotes, c.downvotes),
        }
    }
}

/// Most comments one tree response holds, roots and replies together.
pub const TREE_NODE_CAP: i64 = 500;
