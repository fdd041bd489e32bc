//! Votes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Post = 0,
    Comment = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteAction {
    Upvoted,
    Downvoted,
    Removed,
    Changed,
}

impl VoteAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upvoted => "upvoted",
            Self::Downvoted => "downvoted",
            Self::Removed => "removed",
            Self::Changed => "changed",
        }
    }
}

/// A vote about to be cast.
#[derive(Debug, Clone, Copy)]
pub struct Ballot {
    pub voter_id: i64,
    /// The voter's weight in rankings (1.0 until trust scoring sets it).
    pub weight: f64,
    pub kind: TargetKind,
    pub target_id: i64,
    pub author_id: i64,
    /// +1 or -1.
    pub value: i64,
    pub now: i64,
}
