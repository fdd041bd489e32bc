//! [`tidepool_store::Store`] on PostgreSQL: each method is one transaction (or one
//! statement) on a pooled connection; the SQL lives in the sibling modules by aggregate.

use async_trait::async_trait;
use serde_json::Value;
use tidepool_core::model::agents::{Agent, AuditEntry, KeyScope, NewAgent};
use tidepool_core::model::comments::{Comment, CommentSort, NewComment};
use tidepool_core::model::dms::{
    Conversation, ConversationEntry, ConversationFilter, ConversationStatus, Message,
    NewConversation, NewMessage,
};
use tidepool_core::model::feed::{FeedScope, Page, PageRequest, PostSort, Window};
use tidepool_core::model::moderation::{LogEntry, QueueScope, ReportedPost};
use tidepool_core::model::notifications::{NewNotification, Notification};
use tidepool_core::model::owners::{ClaimOutcome, KeyInfo, Owner, Suspension, SuspensionLevel};
use tidepool_core::model::posts::{NewPost, Post};
use tidepool_core::model::submolts::{
    Moderator, NewSubmolt, Role, SettingsChange, Submolt, SubmoltSort,
};
use tidepool_core::model::votes::{Ballot, TargetKind, VoteAction};
use tidepool_core::model::webhooks::{Delivery, DeliveryOutcome, Webhook};
use tidepool_store::{AdminClaim, ModerationRecord, QueueAction, Result, Store};

use super::{
    PgStore, agents, content, dms, listings, moderation, notifications, owners, search, submolts,
    transfer, webhooks,
};
use tidepool_store::transfer::{Row as TransferRow, TableSpec};

#[async_trait]
impl Store for PgStore {
    async fn register_agent(&self, new: NewAgent) -> Result<Agent> {
        self.wrote(agents::register_agent(&self.db, new)).await
    }

    async fn agent_by_id(&self, id: i64) -> Result<Option<Agent>> {
        agents::agent_by_id(&self.db, id).await
    }

    async fn agent_by_name(&self, name_key: &str) -> Result<Option<Agent>> {
        replica_lookup!(self, |db| agents::agent_by_name(db, name_key))
    }

    async fn agent_by_key_hash(&self, key_hash: &[u8]) -> Result<Option<(Agent, KeyScope)>> {
        agents::agent_by_key_hash(&self.db, key_hash).await
    }

    async fn update_profile(
        &self,
        id: i64,
        description: Option<String>,
        metadata: Option<String>,
    ) -> Result<Agent> {
        self.wrote(agents::update_profile(&self.db, id, description, metadata))
            .await
    }

    async fn rotate_key(&self, agent_id: i64, key_hash: Vec<u8>, now: i64) -> Result<()> {
        self.wrote(agents::rotate_key(&self.db, agent_id, key_hash, now))
            .await
    }

    async fn add_read_key(
        &self,
        agent_id: i64,
        key_hash: Vec<u8>,
        max_live: i64,
        now: i64,
    ) -> Result<()> {
        self.wrote(agents::add_read_key(
            &self.db, agent_id, key_hash, max_live, now,
        ))
        .await
    }

    async fn block_content(
        &self,
        key_hashes: Vec<[u8; 32]>,
        agent_id: Option<i64>,
        detail: Value,
        now: i64,
    ) -> Result<usize> {
        self.wrote(agents::block_content(
            &self.db, key_hashes, agent_id, detail, now,
        ))
        .await
    }

    async fn audit(&self, event: &str, agent_id: Option<i64>, detail: Value) -> Result<()> {
        agents::audit(&self.db, event, agent_id, detail).await
    }

    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        agents::audit_log(&self.db, limit).await
    }

    async fn follow(&self, follower: i64, followed: i64, now: i64) -> Result<bool> {
        self.wrote(agents::follow(&self.db, follower, followed, now))
            .await
    }

    async fn unfollow(&self, follower: i64, followed: i64) -> Result<bool> {
        self.wrote(agents::unfollow(&self.db, follower, followed))
            .await
    }

    async fn is_following(&self, follower: i64, followed: i64) -> Result<bool> {
        replica_read!(self, |db| agents::is_following(db, follower, followed))
    }

    async fn admin_claim(
        &self,
        name_key: &str,
        how: AdminClaim,
        now: i64,
    ) -> Result<(Agent, Option<Owner>)> {
        self.wrote(agents::admin_claim(&self.db, name_key, how, now))
            .await
    }

    async fn create_owner(
        &self,
        email: &str,
        password_hash: &str,
        is_admin: bool,
        now: i64,
    ) -> Result<Owner> {
        self.wrote(owners::create_owner(
            &self.db,
            email,
            password_hash,
            is_admin,
            now,
        ))
        .await
    }

    async fn owner_by_email(&self, email: &str) -> Result<Option<Owner>> {
        owners::owner_by_email(&self.db, email).await
    }

    async fn set_password(&self, owner_id: i64, password_hash: &str) -> Result<()> {
        self.wrote(owners::set_password(&self.db, owner_id, password_hash))
            .await
    }

    async fn create_session(
        &self,
        token_hash: Vec<u8>,
        owner_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        self.wrote(owners::create_session(
            &self.db, token_hash, owner_id, now, expires_at,
        ))
        .await
    }

    async fn session_owner(&self, token_hash: &[u8], now: i64) -> Result<Option<Owner>> {
        owners::session_owner(&self.db, token_hash, now).await
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
        self.wrote(owners::delete_session(&self.db, token_hash))
            .await
    }

    async fn agents_of(&self, owner_id: i64) -> Result<Vec<Agent>> {
        owners::agents_of(&self.db, owner_id).await
    }

    async fn owner_of(&self, agent_id: i64) -> Result<Option<i64>> {
        owners::owner_of(&self.db, agent_id).await
    }

    async fn agent_by_claim_token(&self, token_hash: &[u8], now: i64) -> Result<Option<Agent>> {
        owners::agent_by_claim_token(&self.db, token_hash, now).await
    }

    async fn claim_with_token(
        &self,
        token_hash: Vec<u8>,
        code_hash: Vec<u8>,
        owner_id: i64,
        cap: i64,
        now: i64,
    ) -> Result<ClaimOutcome> {
        self.wrote(owners::claim_with_token(
            &self.db, token_hash, code_hash, owner_id, cap, now,
        ))
        .await
    }

    async fn suspension_of(&self, agent_id: i64) -> Result<Option<Suspension>> {
        owners::suspension_of(&self.db, agent_id).await
    }

    async fn set_suspended(
        &self,
        agent_id: i64,
        level: SuspensionLevel,
        suspend: Option<(String, String)>,
        log: Option<ModerationRecord>,
    ) -> Result<Agent> {
        self.wrote(owners::set_suspended(
            &self.db, agent_id, level, suspend, log,
        ))
        .await
    }

    async fn delete_agent(&self, agent_id: i64, now: i64) -> Result<()> {
        self.wrote(owners::delete_agent(&self.db, agent_id, now))
            .await
    }

    async fn keys_of(&self, agent_id: i64) -> Result<Vec<KeyInfo>> {
        owners::keys_of(&self.db, agent_id).await
    }

    async fn revoke_all_keys(&self, agent_id: i64, now: i64) -> Result<usize> {
        self.wrote(owners::revoke_all_keys(&self.db, agent_id, now))
            .await
    }

    async fn revoke_read_key(&self, agent_id: i64, key_id: i64, now: i64) -> Result<()> {
        self.wrote(owners::revoke_read_key(&self.db, agent_id, key_id, now))
            .await
    }

    async fn events_of(&self, agent_ids: Vec<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
        owners::events_of(&self.db, agent_ids, limit).await
    }

    async fn moderated_submolts(&self, owner_id: i64) -> Result<Vec<i64>> {
        owners::moderated_submolts(&self.db, owner_id).await
    }

    async fn owned_by_admin(&self, agent_id: i64) -> Result<bool> {
        owners::owned_by_admin(&self.db, agent_id).await
    }

    async fn create_submolt(&self, new: NewSubmolt) -> Result<Submolt> {
        self.wrote(submolts::create_submolt(&self.db, new)).await
    }

    async fn submolt_by_id(&self, id: i64) -> Result<Option<Submolt>> {
        replica_lookup!(self, |db| submolts::submolt_by_id(db, id))
    }

    async fn submolt_by_name(&self, name: &str) -> Result<Option<Submolt>> {
        replica_lookup!(self, |db| submolts::submolt_by_name(db, name))
    }

    async fn list_submolts(&self, sort: SubmoltSort, page: PageRequest) -> Result<Page<Submolt>> {
        replica_read!(self, |db| submolts::list_submolts(db, sort, page.clone()))
    }

    async fn subscribe(&self, agent_id: i64, submolt_id: i64, now: i64) -> Result<bool> {
        self.wrote(submolts::subscribe(&self.db, agent_id, submolt_id, now))
            .await
    }

    async fn unsubscribe(&self, agent_id: i64, submolt_id: i64) -> Result<bool> {
        self.wrote(submolts::unsubscribe(&self.db, agent_id, submolt_id))
            .await
    }

    async fn is_subscribed(&self, agent_id: i64, submolt_id: i64) -> Result<bool> {
        replica_read!(self, |db| submolts::is_subscribed(db, agent_id, submolt_id))
    }

    async fn role_of(&self, submolt_id: i64, agent_id: i64) -> Result<Option<Role>> {
        submolts::role_of(&self.db, submolt_id, agent_id).await
    }

    async fn update_submolt(&self, id: i64, change: SettingsChange) -> Result<Submolt> {
        self.wrote(submolts::update_submolt(&self.db, id, change))
            .await
    }

    async fn moderators(&self, submolt_id: i64) -> Result<Vec<Moderator>> {
        replica_read!(self, |db| submolts::moderators(db, submolt_id))
    }

    async fn add_moderator(&self, submolt_id: i64, agent_id: i64, now: i64) -> Result<bool> {
        self.wrote(submolts::add_moderator(&self.db, submolt_id, agent_id, now))
            .await
    }

    async fn remove_moderator(&self, submolt_id: i64, agent_id: i64) -> Result<bool> {
        self.wrote(submolts::remove_moderator(&self.db, submolt_id, agent_id))
            .await
    }

    async fn create_post(&self, new: NewPost) -> Result<Post> {
        self.wrote(content::create_post(&self.db, new)).await
    }

    async fn post_by_id(&self, id: i64) -> Result<Option<Post>> {
        replica_lookup!(self, |db| content::post_by_id(db, id))
    }

    async fn post_by_uuid(&self, uuid: &str) -> Result<Option<Post>> {
        replica_lookup!(self, |db| content::post_by_uuid(db, uuid))
    }

    async fn delete_post(&self, post_id: i64) -> Result<()> {
        self.wrote(content::delete_post(&self.db, post_id)).await
    }

    async fn set_pinned(&self, post_id: i64, pinned: bool) -> Result<bool> {
        self.wrote(content::set_pinned(&self.db, post_id, pinned))
            .await
    }

    async fn pinned(&self, submolt_id: i64) -> Result<Vec<Post>> {
        replica_read!(self, |db| content::pinned(db, submolt_id))
    }

    async fn stats(&self) -> Result<Vec<(String, i64)>> {
        replica_read!(self, |db| content::stats(db))
    }

    async fn create_comment(&self, new: NewComment) -> Result<Comment> {
        self.wrote(content::create_comment(&self.db, new)).await
    }

    async fn comment_by_id(&self, id: i64) -> Result<Option<Comment>> {
        replica_lookup!(self, |db| content::comment_by_id(db, id))
    }

    async fn comment_by_uuid(&self, uuid: &str) -> Result<Option<Comment>> {
        replica_lookup!(self, |db| content::comment_by_uuid(db, uuid))
    }

    async fn delete_comment(&self, comment_id: i64) -> Result<()> {
        self.wrote(content::delete_comment(&self.db, comment_id))
            .await
    }

    async fn cast_vote(&self, ballot: Ballot) -> Result<(VoteAction, bool)> {
        self.wrote(content::cast_vote(&self.db, ballot)).await
    }

    async fn retract_vote(
        &self,
        voter_id: i64,
        kind: TargetKind,
        target_id: i64,
        author_id: i64,
        now: i64,
    ) -> Result<bool> {
        self.wrote(content::retract_vote(
            &self.db, voter_id, kind, target_id, author_id, now,
        ))
        .await
    }

    async fn list_posts(
        &self,
        scope: FeedScope,
        sort: PostSort,
        window: Window,
        exclude_pinned: bool,
        page: PageRequest,
    ) -> Result<Page<Post>> {
        replica_read!(self, |db| listings::list_posts(
            db,
            scope,
            sort,
            window,
            exclude_pinned,
            page.clone()
        ))
    }

    async fn personal_feed(
        &self,
        agent_id: i64,
        following_only: bool,
        sort: PostSort,
        page: PageRequest,
    ) -> Result<Page<Post>> {
        replica_read!(self, |db| listings::personal_feed(
            db,
            agent_id,
            following_only,
            sort,
            page.clone()
        ))
    }

    async fn comment_tree(
        &self,
        post_id: i64,
        sort: CommentSort,
        page: PageRequest,
    ) -> Result<(Page<Comment>, Vec<Comment>)> {
        replica_read!(self, |db| listings::comment_tree(
            db,
            post_id,
            sort,
            page.clone()
        ))
    }

    async fn recent_comments_by(
        &self,
        author_id: i64,
        limit: i64,
        include_quarantined: bool,
    ) -> Result<Vec<Comment>> {
        replica_read!(self, |db| listings::recent_comments_by(
            db,
            author_id,
            limit,
            include_quarantined
        ))
    }

    async fn search_posts(
        &self,
        query: &str,
        limit: i64,
        include_quarantined: bool,
    ) -> Result<Vec<(Post, f64)>> {
        replica_read!(self, |db| search::search_posts(
            db,
            query,
            limit,
            include_quarantined
        ))
    }

    async fn search_comments(
        &self,
        query: &str,
        limit: i64,
        include_quarantined: bool,
    ) -> Result<Vec<(Comment, f64)>> {
        replica_read!(self, |db| search::search_comments(
            db,
            query,
            limit,
            include_quarantined
        ))
    }

    async fn conversation_between(&self, a: i64, b: i64) -> Result<Option<Conversation>> {
        // On the primary, as every lookup a decision rests on: which key seals a request
        // depends on whether the pair has a conversation already.
        dms::between(&self.db, a, b).await
    }

    async fn conversation_by_uuid(&self, uuid: &str) -> Result<Option<Conversation>> {
        dms::by_uuid(&self.db, uuid).await
    }

    async fn request_conversation(&self, new: NewConversation) -> Result<(Conversation, Message)> {
        self.wrote(dms::request(&self.db, new)).await
    }

    async fn set_conversation_status(
        &self,
        id: i64,
        from: &[ConversationStatus],
        to: ConversationStatus,
    ) -> Result<Conversation> {
        self.wrote(dms::set_status(&self.db, id, from, to)).await
    }

    async fn send_message(&self, conversation_id: i64, message: NewMessage) -> Result<Message> {
        self.wrote(dms::send(&self.db, conversation_id, message))
            .await
    }

    async fn messages(&self, conversation_id: i64, limit: i64) -> Result<Vec<Message>> {
        replica_read!(self, |db| dms::messages(db, conversation_id, limit))
    }

    async fn mark_read(&self, conversation_id: i64, agent_id: i64, message_id: i64) -> Result<()> {
        self.wrote(dms::mark_read(
            &self.db,
            conversation_id,
            agent_id,
            message_id,
        ))
        .await
    }

    async fn conversations_of(
        &self,
        agent_id: i64,
        filter: ConversationFilter,
        limit: i64,
    ) -> Result<Vec<ConversationEntry>> {
        replica_read!(self, |db| dms::of_agent(db, agent_id, filter, limit))
    }

    async fn release_message(&self, conversation_id: i64, message_id: i64) -> Result<bool> {
        self.wrote(dms::release(&self.db, conversation_id, message_id))
            .await
    }

    async fn put_avatar(
        &self,
        agent_id: i64,
        uuid: String,
        png: Vec<u8>,
        url: String,
        now: i64,
    ) -> Result<()> {
        self.wrote(agents::put_avatar(&self.db, agent_id, uuid, png, url, now))
            .await
    }

    async fn avatar(&self, uuid: &str) -> Result<Option<Vec<u8>>> {
        // Public and rarely changed: a replica may serve it (one that does not have it yet
        // sends the question on to the primary).
        replica_lookup!(self, |db| agents::avatar(db, uuid))
    }

    async fn delete_avatar(&self, agent_id: i64) -> Result<bool> {
        self.wrote(agents::delete_avatar(&self.db, agent_id)).await
    }

    async fn set_webhook(
        &self,
        agent_id: i64,
        url: String,
        sealed_secret: Vec<u8>,
        now: i64,
    ) -> Result<Webhook> {
        self.wrote(webhooks::set(&self.db, agent_id, url, sealed_secret, now))
            .await
    }

    async fn webhook_of(&self, agent_id: i64) -> Result<Option<Webhook>> {
        // The owner's dashboard, right after a change: the primary.
        webhooks::of(&self.db, agent_id).await
    }

    async fn delete_webhook(&self, agent_id: i64) -> Result<bool> {
        self.wrote(webhooks::delete(&self.db, agent_id)).await
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        webhooks::claim(&self.db, now, lease_until, limit).await
    }

    async fn finish_delivery(
        &self,
        id: i64,
        lease: i64,
        outcome: DeliveryOutcome,
        now: i64,
    ) -> Result<()> {
        webhooks::finish(&self.db, id, lease, outcome, now).await
    }

    async fn deliveries_of(&self, agent_id: i64, limit: i64) -> Result<Vec<Delivery>> {
        webhooks::of_agent(&self.db, agent_id, limit).await
    }

    async fn add_notifications(&self, list: Vec<NewNotification>) -> Result<()> {
        if list.is_empty() {
            return Ok(());
        }
        self.wrote(notifications::add(&self.db, list)).await
    }

    async fn notifications(
        &self,
        agent_id: i64,
        unread_only: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        replica_read!(self, |db| notifications::list(
            db,
            agent_id,
            unread_only,
            before,
            limit
        ))
    }

    async fn unread_notifications(&self, agent_id: i64) -> Result<i64> {
        replica_read!(self, |db| notifications::unread(db, agent_id))
    }

    async fn mark_notifications_read(&self, agent_id: i64, post_id: Option<i64>) -> Result<i64> {
        self.wrote(notifications::mark_read(&self.db, agent_id, post_id))
            .await
    }

    async fn queued_posts(
        &self,
        scope: QueueScope,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Post>> {
        moderation::queued_posts(&self.db, scope, before, limit).await
    }

    async fn queued_comments(
        &self,
        scope: QueueScope,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Comment>> {
        moderation::queued_comments(&self.db, scope, before, limit).await
    }

    async fn moderate_item(
        &self,
        kind: TargetKind,
        id: i64,
        action: QueueAction,
        log: ModerationRecord,
    ) -> Result<()> {
        self.wrote(moderation::moderate_item(&self.db, kind, id, action, log))
            .await
    }

    async fn moderation_log(&self, before: Option<i64>, limit: i64) -> Result<Vec<LogEntry>> {
        moderation::moderation_log(&self.db, before, limit).await
    }

    async fn report_post(
        &self,
        post_id: i64,
        reporter_id: i64,
        reason: String,
        now: i64,
    ) -> Result<bool> {
        self.wrote(moderation::report_post(
            &self.db,
            post_id,
            reporter_id,
            reason,
            now,
        ))
        .await
    }

    async fn reported_posts(&self, scope: QueueScope, limit: i64) -> Result<Vec<ReportedPost>> {
        // On the primary, as the rest of the moderation queue: a decision follows from it.
        moderation::reported_posts(&self.db, scope, limit).await
    }

    async fn resolve_reports(
        &self,
        post_id: i64,
        remove: bool,
        log: ModerationRecord,
    ) -> Result<i64> {
        self.wrote(moderation::resolve_reports(&self.db, post_id, remove, log))
            .await
    }

    async fn export_rows(
        &self,
        table: &'static TableSpec,
        after: Option<TransferRow>,
        limit: i64,
    ) -> Result<Vec<TransferRow>> {
        transfer::export_rows(&self.db, table, after, limit).await
    }

    async fn import_begin(&self) -> Result<()> {
        transfer::import_begin(&self.db).await
    }

    async fn import_rows(&self, table: &'static TableSpec, rows: Vec<TransferRow>) -> Result<()> {
        transfer::import_rows(&self.db, table, rows).await
    }

    async fn import_finish(&self) -> Result<()> {
        transfer::import_finish(&self.db).await
    }

    async fn ready(&self) -> Result<()> {
        if self.db.schema_is_current().await? {
            Ok(())
        } else {
            Err(tidepool_store::StoreError::Unavailable(format!(
                "the database schema is not version {} (run `tidepool migrate`)",
                crate::LATEST_VERSION
            )))
        }
    }

    fn shutdown(&self) {
        self.reads.stop();
        self.db.deadpool().close();
    }

    fn runtime_stats(&self) -> tidepool_store::StoreStats {
        let status = self.db.deadpool().status();
        tidepool_store::StoreStats {
            writer: None,
            pools: vec![tidepool_store::PoolStats {
                name: "primary",
                max: status.max_size as u64,
                open: status.size as u64,
                idle: status.available as u64,
                waiting: status.waiting as u64,
            }],
            // Each configured replica's lag (unknown while it does not answer) and reads.
            replicas: self
                .read_stats()
                .replicas
                .into_iter()
                .map(|r| tidepool_store::ReplicaStats {
                    lag_seconds: r
                        .healthy
                        .then_some(r.lag_ms)
                        .flatten()
                        .map(|ms| ms as f64 / 1000.0),
                    name: r.url,
                    reads: r.reads,
                })
                .collect(),
        }
    }
}
