//! Human owners, claims, suspensions and keys as owners see them.

use super::agents::Agent;

#[derive(Debug, Clone)]
pub struct Owner {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
}

/// Live sessions one owner may hold (browsers, devices).
pub const MAX_SESSIONS: i64 = 20;

/// Most agents one dashboard lists.
pub const MAX_LISTED_AGENTS: i64 = 200;

/// What a claim attempt came to. A wrong code is an outcome, not an error: its audit row
/// must be committed, and an error would roll the write job (and the row) back.
#[derive(Debug, Clone)]
pub enum ClaimOutcome {
    Claimed(Box<Agent>),
    WrongCode,
}

/// Who imposed a suspension. Only the same level or a higher one lifts it: an owner
/// cannot undo a moderator's suspension of their own agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SuspensionLevel {
    Owner,
    Moderator,
}

impl SuspensionLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Moderator => "moderator",
        }
    }

    /// The level a stored name stands for.
    pub fn parse(s: &str) -> Self {
        match s {
            "owner" => Self::Owner,
            // Anything else (including a suspension recorded before levels existed) is
            // treated as the stricter level.
            _ => Self::Moderator,
        }
    }
}

/// Why an agent is suspended: the level, who (a pseudonym for moderators) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    pub level: SuspensionLevel,
    pub actor: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: i64,
    pub scope: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Revoked keys a dashboard lists beside every live one.
pub const LISTED_REVOKED_KEYS: i64 = 20;
