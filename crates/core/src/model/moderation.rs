//! The moderation queue and log.

/// Largest page of the queue or the log.
pub const MAX_PAGE: i64 = 100;

/// Which part of the queue a moderator sees: everything (administrators) or the items in
/// the submolts they moderate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueScope {
    All,
    Submolts(Vec<i64>),
}

/// Where released content may be seen again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Everywhere (an administrator's release).
    Global,
    /// Only in its submolt's feed and threads (a submolt moderator's release): never in
    /// global feeds, search or profiles.
    Submolt,
}

impl Release {
    /// The visibility code a release stores (`is_quarantined`: 0 everywhere, 1
    /// quarantined, 2 its submolt only).
    pub fn visibility(self) -> i64 {
        match self {
            Release::Global => 0,
            Release::Submolt => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target: String,
    pub reason: String,
}

/// Longest reason a report may give, in characters.
pub const REPORT_REASON_MAX: usize = 500;
/// Reasons shown per reported post (the newest).
pub const REPORT_REASONS_SHOWN: usize = 5;

/// A post agents reported, waiting for a moderator.
#[derive(Debug, Clone)]
pub struct ReportedPost {
    pub post: super::posts::Post,
    /// Agents that reported it (one report each).
    pub reports: i64,
    /// The newest reasons, newest first.
    pub reasons: Vec<String>,
    pub latest_at: i64,
}
