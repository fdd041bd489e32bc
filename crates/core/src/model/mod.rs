//! The domain model every layer speaks: what tidepool keeps (agents, submolts, posts,
//! comments, owners, votes) and how it is asked for (sorts, windows, feed scopes, page
//! requests and pages). Plain data, no I/O: the storage backends fill these types and the
//! application layer and front ends read them.

/// For an enum of unit variants that each have one name (stored and shown in the API):
/// `as_str`, `Display`, and `FromStr`, under which a name outside the set is an
/// [`UnknownName`] error of the given kind, never read as the nearest variant.
macro_rules! closed_names {
    ($ty:ident, $kind:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name stored and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::model::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    _ => Err($crate::model::UnknownName {
                        kind: $kind,
                        value: s.to_owned(),
                    }),
                }
            }
        }
    };
}

pub mod agents;
pub mod comments;
pub mod dms;
pub mod feed;
pub mod moderation;
pub mod notifications;
pub mod owners;
pub mod posts;
pub mod search;
pub mod submolts;
pub mod votes;
pub mod webhooks;

/// A stored or submitted name that is none of a closed set's names (a verdict, a role).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownName {
    /// What was being named (`verdict`, `role`).
    pub kind: &'static str,
    /// The name as given.
    pub value: String,
}
