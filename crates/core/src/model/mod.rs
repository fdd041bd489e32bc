//! The domain model every layer speaks: what tidepool keeps (agents, submolts, posts,
//! comments, owners, votes) and how it is asked for (sorts, windows, feed scopes, page
//! requests and pages). Plain data, no I/O: the storage backends fill these types and the
//! application layer and front ends read them.

pub mod agents;
pub mod comments;
pub mod feed;
pub mod moderation;
pub mod owners;
pub mod posts;
pub mod search;
pub mod submolts;
pub mod votes;

/// A stored or submitted name that is none of a closed set's names (a verdict, a role).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownName {
    /// What was being named (`verdict`, `role`).
    pub kind: &'static str,
    /// The name as given.
    pub value: String,
}
