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
