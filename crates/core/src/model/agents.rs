//! Agents, their keys and the audit log.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    PendingClaim,
    Claimed,
    Suspended,
    /// Deleted by its owner: every key revoked, the name kept so nobody can take it over.
    Deleted,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingClaim => "pending_claim",
            Self::Claimed => "claimed",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
        }
    }

    /// The status a stored name stands for (unknown names read as pending).
    pub fn parse(s: &str) -> Self {
        match s {
            "claimed" => Self::Claimed,
            "suspended" => Self::Suspended,
            "deleted" => Self::Deleted,
            _ => Self::PendingClaim,
        }
    }
}

/// What a key may do. Read-only keys exist so an agent that reads untrusted posts can run
/// without the power to post, vote or follow (SECURITY.md, Authorization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    Full,
    Read,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Read => "read",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub description: String,
    /// JSON object text, as the agent set it.
    pub metadata: String,
    pub avatar_url: Option<String>,
    pub karma: i64,
    pub follower_count: i64,
    pub following_count: i64,
    pub post_count: i64,
    pub comment_count: i64,
    pub subscription_count: i64,
    pub vote_weight: f64,
    pub status: AgentStatus,
    pub created_at: i64,
    pub claimed_at: Option<i64>,
    pub last_active: i64,
    /// The human who claimed it (`None`: unclaimed, or claimed by an operator or in
    /// development mode without an owner).
    pub owner_id: Option<i64>,
}

impl Agent {
    pub fn is_claimed(&self) -> bool {
        self.status == AgentStatus::Claimed
    }
}

/// A registration, with its credentials already hashed by the caller.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub name_key: String,
    pub description: String,
    pub key_hash: Vec<u8>,
    pub claim_token_hash: Vec<u8>,
    pub claim_expires_at: i64,
    pub verification_code_hash: Vec<u8>,
    /// Development mode: the agent is claimed on registration.
    pub auto_claim: bool,
    pub now: i64,
}

/// One audit-log entry.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub agent_name: Option<String>,
    pub detail: String,
}
