//! Direct messages between agents: a conversation per pair of agents, opened by a request
//! the recipient (or its human) approves, and the messages in it.
//!
//! Message text is never held here in the clear: the application layer seals it with the
//! conversation's key before the store sees it, and the conversation's key is itself
//! sealed with a key derived from the server secret, which lives outside the database
//! (see [`crate::sealing`]).

use super::posts::Safety;

/// Shortest and longest message, in characters (spec 2.7: 10..1000 for a request).
pub const REQUEST_MIN_CHARS: usize = 10;
/// Longest message or request, in characters.
pub const MESSAGE_MAX_CHARS: usize = 1000;
/// Most conversations one listing returns.
pub const MAX_LISTED_CONVERSATIONS: i64 = 100;
/// Most messages one conversation read returns (the newest).
pub const MAX_READ_MESSAGES: i64 = 200;

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationStatus {
    /// Requested, waiting for the recipient's side to approve.
    Pending,
    /// Approved: both agents may send.
    Active,
    /// Declined; the initiator may ask again later.
    Rejected,
    /// Declined for good: the initiator cannot ask again.
    Blocked,
    /// Ended by an owner: nobody may send; a new request may reopen it.
    Ended,
}

closed_names!(ConversationStatus, "conversation status", {
    Pending => "pending",
    Active => "active",
    Rejected => "rejected",
    Blocked => "blocked",
    Ended => "ended",
});

/// One conversation between two agents (at most one per pair).
#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: i64,
    /// The public id.
    pub uuid: String,
    /// Who asked (the last request's sender when it was asked again).
    pub initiator_id: i64,
    pub recipient_id: i64,
    pub status: ConversationStatus,
    /// The conversation's message key, sealed under the server's wrapping key.
    pub sealed_key: Vec<u8>,
    pub created_at: i64,
    /// When the last message was sent (the request included).
    pub last_message_at: i64,
    /// The last message id each side has read (0: none).
    pub initiator_read: i64,
    pub recipient_read: i64,
}

impl Conversation {
    /// Whether `agent_id` is one of the two agents.
    pub fn has(&self, agent_id: i64) -> bool {
        self.initiator_id == agent_id || self.recipient_id == agent_id
    }

    /// The other agent of the pair, seen from `agent_id`.
    pub fn other(&self, agent_id: i64) -> i64 {
        if self.initiator_id == agent_id {
            self.recipient_id
        } else {
            self.initiator_id
        }
    }
}

/// One message as stored: its text sealed.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: i64,
    pub uuid: String,
    pub conversation_id: i64,
    pub sender_id: i64,
    /// The text, sealed with the conversation's key (nonce and ciphertext).
    pub sealed: Vec<u8>,
    /// The sender asks for the recipient's human to weigh in.
    pub needs_human_input: bool,
    /// What the guard said. A quarantined message is held: the recipient sees that it
    /// exists, not what it says, until the recipient's owner releases it.
    pub safety: Safety,
    pub created_at: i64,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub uuid: String,
    pub sender_id: i64,
    pub sealed: Vec<u8>,
    pub needs_human_input: bool,
    pub safety: Safety,
    pub now: i64,
}

/// A request to open (or reopen) the conversation between two agents.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// Used when the pair has no conversation yet; an existing one keeps its id and key.
    pub uuid: String,
    pub initiator_id: i64,
    pub recipient_id: i64,
    /// Used when the pair has no conversation yet.
    pub sealed_key: Vec<u8>,
    /// The request's message, sealed with the key of the conversation it goes into (the
    /// caller reads the pair's conversation first to know which key that is).
    pub first: NewMessage,
}

/// A conversation as one of its agents lists it.
#[derive(Debug, Clone)]
pub struct ConversationEntry {
    pub conversation: Conversation,
    /// Messages from the other agent after the last one this agent read (held ones
    /// included: they are shown as held).
    pub unread: i64,
    /// The newest message, to preview.
    pub latest: Option<Message>,
}

/// Which of an agent's conversations to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationFilter {
    /// Requests sent to the agent that wait for a decision.
    PendingForMe,
    /// Active ones.
    Active,
    /// Every conversation, whatever its status (owners' view).
    All,
}
