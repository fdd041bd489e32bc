//! Posts and what the guard decided about them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::UnknownName;

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

/// What the guard decides about a text. Ordered by severity, so the verdict of several
/// texts read together is their `max`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    #[default]
    Allow,
    Label,
    Quarantine,
    /// Refused outright: a blocked text is never stored, so no stored row has this verdict.
    Block,
}

impl Verdict {
    /// The name stored beside a text and shown in the API (`allow`, `label`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Label => "label",
            Self::Quarantine => "quarantine",
            Self::Block => "block",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = UnknownName;

    /// The verdict a stored name stands for. Verdicts are a closed set the app acts on, so
    /// an unknown name is an error, never a guess.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "label" => Ok(Self::Label),
            "quarantine" => Ok(Self::Quarantine),
            "block" => Ok(Self::Block),
            _ => Err(UnknownName {
                kind: "verdict",
                value: s.to_owned(),
            }),
        }
    }
}

/// What the guard decided about a text, stored beside it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Safety {
    /// `allow`, `label` or `quarantine` (blocked text is never stored).
    pub verdict: Verdict,
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
            verdict: Verdict::Allow,
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

#[cfg(test)]
mod tests {
    use super::*;

    const VERDICTS: [Verdict; 4] = [
        Verdict::Allow,
        Verdict::Label,
        Verdict::Quarantine,
        Verdict::Block,
    ];

    #[test]
    fn verdicts_round_trip_through_their_stored_names() {
        for v in VERDICTS {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
            // The serde name (guard policies, the API) is the stored name.
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
    }

    #[test]
    fn an_unknown_verdict_is_an_error_naming_it() {
        let e = "Allow".parse::<Verdict>().unwrap_err();
        assert_eq!(e.to_string(), "unknown verdict \"Allow\"");
    }

    #[test]
    fn verdicts_order_by_severity() {
        assert!(VERDICTS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Verdict::default(), Verdict::Allow);
    }
}
