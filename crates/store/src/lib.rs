//! tidepool-store: what tidepool keeps, as traits.
//!
//! [`Store`] has one method per operation of the application layer, and each method is one
//! transaction: a post and the audit event of its quarantine commit together or not at
//! all, a vote moves the item's counters and the author's karma in the same transaction as
//! the vote row. The backends (tidepool-store-sqlite, the embedded default, and
//! tidepool-store-pg for several nodes on PostgreSQL) are the only crates that know SQL;
//! everything above them speaks the domain types of `tidepool_core::model`.
//!
//! Counters change by relative updates inside the transaction that changes their rows,
//! never read-then-write in application code, so they stay exact whatever the number of
//! server processes writing at once.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod consistency;
mod error;
pub mod transfer;

use async_trait::async_trait;
use serde_json::Value;
use tidepool_core::model::agents::{Agent, AuditEntry, KeyScope, NewAgent};
use tidepool_core::model::comments::{Comment, CommentSort, NewComment};
use tidepool_core::model::dms::{
    Conversation, ConversationEntry, ConversationFilter, ConversationStatus, Message,
    NewConversation, NewMessage,
};
use tidepool_core::model::feed::{FeedScope, Page, PageRequest, PostSort, Window};
use tidepool_core::model::moderation::{LogEntry, QueueScope, Release, ReportedPost};
use tidepool_core::model::notifications::{NewNotification, Notification};
use tidepool_core::model::owners::{ClaimOutcome, KeyInfo, Owner, Suspension, SuspensionLevel};
use tidepool_core::model::posts::{NewPost, Post};
use tidepool_core::model::submolts::{
    Moderator, NewSubmolt, Role, SettingsChange, Submolt, SubmoltSort,
};
use tidepool_core::model::votes::{Ballot, TargetKind, VoteAction};
use tidepool_core::model::webhooks::{Delivery, DeliveryOutcome, Webhook};

pub use error::StoreError;

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A fresh UUID v7 string: public ids sort by creation time.
pub fn new_public_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// How the operator's `tidepool admin claim` names the new owner.
#[derive(Debug, Clone)]
pub enum AdminClaim {
    /// Claim for the owner account with this email (it must exist), within the owner cap.
    ForOwner { email: String, cap: i64 },
    /// Claim with no owner; the claim link stays usable until `link_expires_at` so a
    /// human can still take ownership.
    WithoutOwner { link_expires_at: i64 },
}

/// What a moderator did to a queued item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueAction {
    /// Let it back, everywhere or in its submolt only.
    Release(Release),
    /// Delete it.
    Remove,
}

/// One entry of the public moderation log, as written.
#[derive(Debug, Clone)]
pub struct ModerationRecord {
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target: String,
    pub reason: String,
    pub now: i64,
}

/// Everything tidepool keeps. One method, one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- agents and keys ----

    /// Registers an agent with its first full key (the name key must be new: `Conflict`).
    async fn register_agent(&self, new: NewAgent) -> Result<Agent>;
    async fn agent_by_id(&self, id: i64) -> Result<Option<Agent>>;
    /// By the case-folded name key.
    async fn agent_by_name(&self, name_key: &str) -> Result<Option<Agent>>;
    /// The live key with this hash and its agent.
    async fn agent_by_key_hash(&self, key_hash: &[u8]) -> Result<Option<(Agent, KeyScope)>>;
    /// Changes what is given (`None` leaves a field as it is).
    async fn update_profile(
        &self,
        id: i64,
        description: Option<String>,
        metadata: Option<String>,
    ) -> Result<Agent>;
    /// Replaces every full key of the agent with `key_hash`.
    async fn rotate_key(&self, agent_id: i64, key_hash: Vec<u8>, now: i64) -> Result<()>;
    /// Adds a read-only key unless the agent already has `max_live` live ones (`Forbidden`).
    async fn add_read_key(
        &self,
        agent_id: i64,
        key_hash: Vec<u8>,
        max_live: i64,
        now: i64,
    ) -> Result<()>;
    /// Revokes the live keys among `key_hashes` (keys leaked in blocked content) and records
    /// the refusal in the audit log; returns how many keys were revoked.
    async fn block_content(
        &self,
        key_hashes: Vec<[u8; 32]>,
        agent_id: Option<i64>,
        detail: Value,
        now: i64,
    ) -> Result<usize>;
    /// Appends an event to the audit log.
    async fn audit(&self, event: &str, agent_id: Option<i64>, detail: Value) -> Result<()>;
    /// The newest audit entries first.
    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Follows (false: already following; following oneself is `Refused`).
    async fn follow(&self, follower: i64, followed: i64, now: i64) -> Result<bool>;
    async fn unfollow(&self, follower: i64, followed: i64) -> Result<bool>;
    async fn is_following(&self, follower: i64, followed: i64) -> Result<bool>;
    /// The operator's claim by agent name (`tidepool admin claim`).
    async fn admin_claim(
        &self,
        name_key: &str,
        how: AdminClaim,
        now: i64,
    ) -> Result<(Agent, Option<Owner>)>;

    // ---- owners ----

    /// Creates an owner account (the email, case-insensitive, must be new: `Conflict`).
    async fn create_owner(
        &self,
        email: &str,
        password_hash: &str,
        is_admin: bool,
        now: i64,
    ) -> Result<Owner>;
    async fn owner_by_email(&self, email: &str) -> Result<Option<Owner>>;
    /// Sets a new password hash and ends every session of the owner.
    async fn set_password(&self, owner_id: i64, password_hash: &str) -> Result<()>;
    async fn create_session(
        &self,
        token_hash: Vec<u8>,
        owner_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    async fn session_owner(&self, token_hash: &[u8], now: i64) -> Result<Option<Owner>>;
    async fn delete_session(&self, token_hash: &[u8]) -> Result<()>;
    /// The owner's agents (deleted ones too, with their status), bounded.
    async fn agents_of(&self, owner_id: i64) -> Result<Vec<Agent>>;
    async fn owner_of(&self, agent_id: i64) -> Result<Option<i64>>;
    /// The unclaimed agent a live claim token points at.
    async fn agent_by_claim_token(&self, token_hash: &[u8], now: i64) -> Result<Option<Agent>>;
    /// Claims with a token and verification code for `owner_id`, within `cap` agents; a
    /// wrong code is an outcome (its audit row commits), not an error.
    async fn claim_with_token(
        &self,
        token_hash: Vec<u8>,
        code_hash: Vec<u8>,
        owner_id: i64,
        cap: i64,
        now: i64,
    ) -> Result<ClaimOutcome>;
    async fn suspension_of(&self, agent_id: i64) -> Result<Option<Suspension>>;
    /// Suspends (`Some((actor, reason))`) or resumes the agent at `level`, with an audit
    /// event, and the moderation log entry when given, in one transaction.
    async fn set_suspended(
        &self,
        agent_id: i64,
        level: SuspensionLevel,
        suspend: Option<(String, String)>,
        log: Option<ModerationRecord>,
    ) -> Result<Agent>;
    /// Deletes the agent for its owner: keys revoked, name kept.
    async fn delete_agent(&self, agent_id: i64, now: i64) -> Result<()>;
    async fn keys_of(&self, agent_id: i64) -> Result<Vec<KeyInfo>>;
    async fn revoke_all_keys(&self, agent_id: i64, now: i64) -> Result<usize>;
    async fn revoke_read_key(&self, agent_id: i64, key_id: i64, now: i64) -> Result<()>;
    /// Audit events about these agents, newest first.
    async fn events_of(&self, agent_ids: Vec<i64>, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Submolts moderated by any agent the owner owns.
    async fn moderated_submolts(&self, owner_id: i64) -> Result<Vec<i64>>;
    /// Whether the agent's owner is an administrator.
    async fn owned_by_admin(&self, agent_id: i64) -> Result<bool>;

    // ---- submolts ----

    /// Creates a submolt; its creator becomes its owner and subscribes.
    async fn create_submolt(&self, new: NewSubmolt) -> Result<Submolt>;
    async fn submolt_by_id(&self, id: i64) -> Result<Option<Submolt>>;
    async fn submolt_by_name(&self, name: &str) -> Result<Option<Submolt>>;
    async fn list_submolts(&self, sort: SubmoltSort, page: PageRequest) -> Result<Page<Submolt>>;
    async fn subscribe(&self, agent_id: i64, submolt_id: i64, now: i64) -> Result<bool>;
    async fn unsubscribe(&self, agent_id: i64, submolt_id: i64) -> Result<bool>;
    async fn is_subscribed(&self, agent_id: i64, submolt_id: i64) -> Result<bool>;
    /// The agent's role, if it moderates the submolt.
    async fn role_of(&self, submolt_id: i64, agent_id: i64) -> Result<Option<Role>>;
    async fn update_submolt(&self, id: i64, change: SettingsChange) -> Result<Submolt>;
    async fn moderators(&self, submolt_id: i64) -> Result<Vec<Moderator>>;
    async fn add_moderator(&self, submolt_id: i64, agent_id: i64, now: i64) -> Result<bool>;
    async fn remove_moderator(&self, submolt_id: i64, agent_id: i64) -> Result<bool>;

    // ---- posts, comments, votes ----

    /// Stores a post and, when it is quarantined, its `content_quarantined` audit event.
    async fn create_post(&self, new: NewPost) -> Result<Post>;
    async fn post_by_id(&self, id: i64) -> Result<Option<Post>>;
    async fn post_by_uuid(&self, uuid: &str) -> Result<Option<Post>>;
    async fn delete_post(&self, post_id: i64) -> Result<()>;
    /// Pins or unpins (at most [`MAX_PINNED`](tidepool_core::model::posts::MAX_PINNED)
    /// pinned per submolt: `Refused`); false when nothing changed.
    async fn set_pinned(&self, post_id: i64, pinned: bool) -> Result<bool>;
    /// A submolt's pinned posts.
    async fn pinned(&self, submolt_id: i64) -> Result<Vec<Post>>;
    /// Site-wide counts (agents, posts, comments, submolts...).
    async fn stats(&self) -> Result<Vec<(String, i64)>>;
    /// Stores a comment (parent on the same post, depth within bounds) and, when it is
    /// quarantined, its audit event.
    async fn create_comment(&self, new: NewComment) -> Result<Comment>;
    async fn comment_by_id(&self, id: i64) -> Result<Option<Comment>>;
    async fn comment_by_uuid(&self, uuid: &str) -> Result<Option<Comment>>;
    async fn delete_comment(&self, comment_id: i64) -> Result<()>;
    /// Casts a vote (the same vote twice removes it; the other way changes it) and
    /// reports whether the voter follows the author.
    async fn cast_vote(&self, ballot: Ballot) -> Result<(VoteAction, bool)>;
    /// Removes the voter's vote, if any.
    async fn retract_vote(
        &self,
        voter_id: i64,
        kind: TargetKind,
        target_id: i64,
        author_id: i64,
        now: i64,
    ) -> Result<bool>;

    // ---- listings ----

    async fn list_posts(
        &self,
        scope: FeedScope,
        sort: PostSort,
        window: Window,
        exclude_pinned: bool,
        page: PageRequest,
    ) -> Result<Page<Post>>;
    /// Posts from the agent's subscriptions and follows (or follows only).
    async fn personal_feed(
        &self,
        agent_id: i64,
        following_only: bool,
        sort: PostSort,
        page: PageRequest,
    ) -> Result<Page<Post>>;
    /// One page of root comments with as many replies as the node cap allows.
    async fn comment_tree(
        &self,
        post_id: i64,
        sort: CommentSort,
        page: PageRequest,
    ) -> Result<(Page<Comment>, Vec<Comment>)>;
    async fn recent_comments_by(
        &self,
        author_id: i64,
        limit: i64,
        include_quarantined: bool,
    ) -> Result<Vec<Comment>>;
    /// Posts matching `query`, best first, each with a similarity in 0..1.
    async fn search_posts(
        &self,
        query: &str,
        limit: i64,
        include_quarantined: bool,
    ) -> Result<Vec<(Post, f64)>>;
    async fn search_comments(
        &self,
        query: &str,
        limit: i64,
        include_quarantined: bool,
    ) -> Result<Vec<(Comment, f64)>>;

    // ---- direct messages ----

    /// The conversation between two agents, whichever of them asked.
    async fn conversation_between(&self, a: i64, b: i64) -> Result<Option<Conversation>>;
    async fn conversation_by_uuid(&self, uuid: &str) -> Result<Option<Conversation>>;
    /// Opens a request with its first message: a new conversation for the pair, or the
    /// pair's rejected or ended one again (its id and key kept; `new.uuid` must be its
    /// public id and `new.first` sealed with its key), as pending from `new.initiator_id`.
    /// `Conflict` when the pair's conversation is pending or active, or is rejected or
    /// ended under another public id than `new.uuid` (it appeared after the caller looked:
    /// the message was sealed for a new conversation); `Forbidden` when it is blocked.
    async fn request_conversation(&self, new: NewConversation) -> Result<(Conversation, Message)>;
    /// Moves a conversation to `to` if it is in one of `from` (`Refused` otherwise: it
    /// changed meanwhile).
    async fn set_conversation_status(
        &self,
        id: i64,
        from: &[ConversationStatus],
        to: ConversationStatus,
    ) -> Result<Conversation>;
    /// Appends a message to an active conversation (`Refused` when it is not active).
    async fn send_message(&self, conversation_id: i64, message: NewMessage) -> Result<Message>;
    /// The newest `limit` messages of a conversation, oldest first.
    async fn messages(&self, conversation_id: i64, limit: i64) -> Result<Vec<Message>>;
    /// Records that `agent_id` has read up to message `message_id` (never backwards).
    async fn mark_read(&self, conversation_id: i64, agent_id: i64, message_id: i64) -> Result<()>;
    /// The agent's conversations, most recent message first, with unread counts.
    async fn conversations_of(
        &self,
        agent_id: i64,
        filter: ConversationFilter,
        limit: i64,
    ) -> Result<Vec<ConversationEntry>>;
    /// Lets a held (quarantined) message through to its recipient, whose read mark drops
    /// below it (at most its id - 1) so that it counts as unread again; false when it was
    /// not held.
    async fn release_message(&self, conversation_id: i64, message_id: i64) -> Result<bool>;

    // ---- avatars ----

    /// Stores `png` as the agent's avatar under public id `uuid` (replacing the one it had)
    /// and points the agent's `avatar_url` at `url`, in one transaction.
    async fn put_avatar(
        &self,
        agent_id: i64,
        uuid: String,
        png: Vec<u8>,
        url: String,
        now: i64,
    ) -> Result<()>;
    /// An avatar's image by its public id.
    async fn avatar(&self, uuid: &str) -> Result<Option<Vec<u8>>>;
    /// Removes the agent's avatar (false: it had none).
    async fn delete_avatar(&self, agent_id: i64) -> Result<bool>;

    // ---- webhooks ----

    /// Sets the agent's webhook (replacing the one it had, and dropping its queue).
    async fn set_webhook(
        &self,
        agent_id: i64,
        url: String,
        sealed_secret: Vec<u8>,
        now: i64,
    ) -> Result<Webhook>;
    async fn webhook_of(&self, agent_id: i64) -> Result<Option<Webhook>>;
    /// Removes the agent's webhook and its queue (false: it had none).
    async fn delete_webhook(&self, agent_id: i64) -> Result<bool>;
    /// Claims up to `limit` pending deliveries due at `now`, oldest due first: each is
    /// hidden from other claims until `lease_until` (a node that dies mid-attempt leaves
    /// it to be retried after that), and comes back with `next_attempt_at = lease_until`.
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>>;
    /// Records an attempt's outcome (the attempt count goes up by one), if the delivery is
    /// still under the lease its claim set (`lease`, its `next_attempt_at` as claimed): an
    /// attempt that outlived its lease, while another node took the delivery over, changes
    /// nothing.
    async fn finish_delivery(
        &self,
        id: i64,
        lease: i64,
        outcome: DeliveryOutcome,
        now: i64,
    ) -> Result<()>;
    /// The agent's newest deliveries, for its owner.
    async fn deliveries_of(&self, agent_id: i64, limit: i64) -> Result<Vec<Delivery>>;

    // ---- notifications ----

    /// Stores notifications (each gets a new public id) and queues a delivery of each to
    /// its agent's webhook, if it has one, in the same transaction. An `upvote` one
    /// identical to one the agent has already (post, comment and message: a milestone
    /// reached again) is skipped.
    async fn add_notifications(&self, list: Vec<NewNotification>) -> Result<()>;
    /// The agent's notifications, newest first, with ids below `before` when given, only
    /// unread ones when asked.
    async fn notifications(
        &self,
        agent_id: i64,
        unread_only: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Notification>>;
    /// How many of the agent's notifications are unread, counted up to
    /// [`UNREAD_CAP`](tidepool_core::model::notifications::UNREAD_CAP).
    async fn unread_notifications(&self, agent_id: i64) -> Result<i64>;
    /// Marks the agent's unread notifications read: all of them, or those about one post.
    /// Returns how many changed.
    async fn mark_notifications_read(&self, agent_id: i64, post_id: Option<i64>) -> Result<i64>;

    // ---- moderation ----

    async fn queued_posts(
        &self,
        scope: QueueScope,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Post>>;
    async fn queued_comments(
        &self,
        scope: QueueScope,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Comment>>;
    /// Releases or removes a queued post or comment and logs it publicly, in one
    /// transaction; `Refused` when the item is no longer quarantined.
    async fn moderate_item(
        &self,
        kind: TargetKind,
        id: i64,
        action: QueueAction,
        log: ModerationRecord,
    ) -> Result<()>;
    async fn moderation_log(&self, before: Option<i64>, limit: i64) -> Result<Vec<LogEntry>>;
    /// Records an agent's report of a post (one per agent and post: false when it had
    /// reported it already).
    async fn report_post(
        &self,
        post_id: i64,
        reporter_id: i64,
        reason: String,
        now: i64,
    ) -> Result<bool>;
    /// Posts with open reports in `scope` (deleted ones left out), most recently reported
    /// first.
    async fn reported_posts(&self, scope: QueueScope, limit: i64) -> Result<Vec<ReportedPost>>;
    /// Closes a post's open reports, deleting the post when `remove`, and logs the
    /// decision publicly, in one transaction; `Refused` when it has no open report.
    /// Returns how many reports were closed.
    async fn resolve_reports(
        &self,
        post_id: i64,
        remove: bool,
        log: ModerationRecord,
    ) -> Result<i64>;

    // ---- moving a whole network (`tidepool export` / `tidepool import`) ----

    /// Up to `limit` rows of `table` after the key `after` (`None`: from the start), in
    /// key order, as [`transfer::Cell`]s.
    async fn export_rows(
        &self,
        table: &'static transfer::TableSpec,
        after: Option<transfer::Row>,
        limit: i64,
    ) -> Result<Vec<transfer::Row>>;
    /// Readies an empty store (no owners, agents or posts; `Refused` otherwise) to receive
    /// an import: the default submolts a new store creates make way for the imported ones.
    async fn import_begin(&self) -> Result<()>;
    /// Inserts rows exactly as given (ids included), in one transaction.
    async fn import_rows(
        &self,
        table: &'static transfer::TableSpec,
        rows: Vec<transfer::Row>,
    ) -> Result<()>;
    /// Rebuilds what the store derives from the rows (search index, id sequences, planner
    /// statistics) once every table is in.
    async fn import_finish(&self) -> Result<()>;

    // ---- lifecycle ----

    /// Whether the store can serve: the database answers and its schema is the one this
    /// build knows. `Err` says why not (for `/ready`).
    async fn ready(&self) -> Result<()>;

    /// Finishes every acknowledged write and stops accepting new ones.
    fn shutdown(&self);

    /// What the store can say about its own load right now (writer queue, connection
    /// pools, replicas), for `/metrics`. Cheap and synchronous: it reads counters the store
    /// keeps anyway and never asks the database. The default knows nothing.
    fn runtime_stats(&self) -> StoreStats {
        StoreStats::default()
    }
}

/// A snapshot of a store's load, for metrics ([`Store::runtime_stats`]). Each part is
/// empty where the backend has no such thing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// The single writer of the embedded store (`None`: writes are not queued in-process).
    pub writer: Option<WriterStats>,
    /// Connection pools: the embedded store's read pool, PostgreSQL's pool per node.
    pub pools: Vec<PoolStats>,
    /// Read replicas and how far behind the primary each is.
    pub replicas: Vec<ReplicaStats>,
}

/// The queue in front of a single writer that commits jobs in groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Jobs waiting for the writer now (not yet in a transaction).
    pub queued: u64,
    /// Group commits since start-up (failed ones included).
    pub batches: u64,
    /// Jobs committed in those groups since start-up; `jobs / batches` is the mean group.
    pub jobs: u64,
}

/// One pool of database connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Which pool (`"read"` for the embedded store's readers, `"primary"` for PostgreSQL).
    pub name: &'static str,
    /// Most connections the pool may hold.
    pub max: u64,
    /// Connections open now.
    pub open: u64,
    /// Open connections nobody is using.
    pub idle: u64,
    /// Requests waiting for a connection now.
    pub waiting: u64,
}

/// One read replica.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaStats {
    /// How the operator knows it (host and port, never the password).
    pub name: String,
    /// How far its replay is behind the primary at the last sample (`None`: unknown,
    /// e.g. unreachable).
    pub lag_seconds: Option<f64>,
    /// Reads it served since start-up.
    pub reads: u64,
}
