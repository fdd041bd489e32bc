//! [`tidepool_store::Store`] on SQLite: reads run on a pooled read-only connection right on
//! the calling thread (an indexed page costs well under a millisecond, less than handing
//! it to another thread; docs/PERFORMANCE.md), searches on the blocking pool (their cost
//! depends on the data), and every write is one job of the writer thread, committed with
//! its group.

use async_trait::async_trait;
use serde_json::{Value, json};
use tidepool_core::model::agents::{Agent, AuditEntry, KeyScope, NewAgent};
use tidepool_core::model::comments::{Comment, CommentSort, NewComment};
use tidepool_core::model::dms::{
    Conversation, ConversationEntry, ConversationFilter, ConversationStatus, Message,
    NewConversation, NewMessage,
};
use tidepool_core::model::feed::{FeedScope, Page, PageRequest, PostSort, Window};
use tidepool_core::model::moderation::{LogEntry, QueueScope};
use tidepool_core::model::notifications::{NewNotification, Notification};
use tidepool_core::model::owners::{ClaimOutcome, KeyInfo, Owner, Suspension, SuspensionLevel};
use tidepool_core::model::posts::{NewPost, Post, Safety};
use tidepool_core::model::submolts::{
    Moderator, NewSubmolt, Role, SettingsChange, Submolt, SubmoltSort,
};
use tidepool_core::model::votes::{Ballot, TargetKind, VoteAction};
use tidepool_core::model::webhooks::{Delivery, DeliveryOutcome, Webhook};
use tidepool_store::transfer::{Row as TransferRow, TableSpec};
use tidepool_store::{AdminClaim, ModerationRecord, QueueAction, Result, Store, StoreError};

use crate::schema::audit;
use crate::{
    DbError, SqliteStore, agents, comments, dms, feed, moderation, notifications, owners, posts,
    search, submolts, transfer, votes, webhooks,
};

impl SqliteStore {
    fn get<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> crate::Result<T>) -> Result<T> {
        Ok(self.read(f)?)
    }

    async fn put<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> crate::Result<T> + Send + 'static,
    {
        Ok(self.write(f).await?)
    }

    async fn get_heavy<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> crate::Result<T> + Send + 'static,
    {
        let store = self.clone();
        Ok(tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(StoreError::internal)??)
    }
}

/// Records a quarantine in the audit log, inside the job that stored the text.
fn audit_quarantine(
    c: &rusqlite::Connection,
    safety: &Safety,
    agent_id: i64,
    what: &str,
    id: &str,
) -> crate::Result<()> {
    if safety.quarantined {
        let labels = Value::from(&safety.labels);
        audit(
            c,
            "content_quarantined",
            Some(agent_id),
            &json!({what: id, "labels": labels, "injection_score": safety.injection_score}),
        )?;
    }
    Ok(())
}

fn log(c: &rusqlite::Connection, r: &ModerationRecord) -> crate::Result<()> {
    moderation::log(
        c,
        &r.actor,
        &r.action,
        &r.target_kind,
        &r.target,
        &r.reason,
        r.now,
    )
}

#[async_trait]
impl Store for SqliteStore {
    async fn register_agent(&self, new: NewAgent) -> Result<Agent> {
        self.put(move |c| agents::register(c, new)).await
    }

    async fn agent_by_id(&self, id: i64) -> Result<Option<Agent>> {
        self.get(|c| agents::by_id(c, id))
    }

    async fn agent_by_name(&self, name_key: &str) -> Result<Option<Agent>> {
        self.get(|c| agents::by_name(c, name_key))
    }

    async fn agent_by_key_hash(&self, key_hash: &[u8]) -> Result<Option<(Agent, KeyScope)>> {
        self.get(|c| agents::by_key_hash(c, key_hash))
    }

    async fn update_profile(
        &self,
        id: i64,
        description: Option<String>,
        metadata: Option<String>,
    ) -> Result<Agent> {
        self.put(move |c| {
            agents::update_profile(c, id, description.as_deref(), metadata.as_deref())
        })
        .await
    }

    async fn rotate_key(&self, agent_id: i64, key_hash: Vec<u8>, now: i64) -> Result<()> {
        self.put(move |c| agents::rotate_key(c, agent_id, &key_hash, now))
            .await
    }

    async fn add_read_key(
        &self,
        agent_id: i64,
        key_hash: Vec<u8>,
        max_live: i64,
        now: i64,
    ) -> Result<()> {
        self.put(move |c| {
            // Counted in the same job as the insert: the single writer makes the cap exact
            // even under concurrent mints.
            if owners::live_read_keys(c, agent_id)? >= max_live {
                return Err(DbError::Forbidden(format!(
                    "This agent already has {max_live} live read-only keys, the most allowed; revoke one first"
                )));
            }
            agents::add_key(c, agent_id, &key_hash, KeyScope::Read, now)
        })
        .await
    }

    async fn block_content(
        &self,
        key_hashes: Vec<[u8; 32]>,
        agent_id: Option<i64>,
        detail: Value,
        now: i64,
    ) -> Result<usize> {
        self.put(move |c| {
            let mut revoked = 0;
            for hash in &key_hashes {
                if agents::revoke_key(c, hash, "leaked in content", now)?.is_some() {
                    revoked += 1;
                }
            }
            audit(c, "content_blocked", agent_id, &detail)?;
            Ok(revoked)
        })
        .await
    }

    async fn audit(&self, event: &str, agent_id: Option<i64>, detail: Value) -> Result<()> {
        let event = event.to_owned();
        self.put(move |c| audit(c, &event, agent_id, &detail)).await
    }

    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        self.get(|c| agents::audit_log(c, limit))
    }

    async fn follow(&self, follower: i64, followed: i64, now: i64) -> Result<bool> {
        self.put(move |c| agents::follow(c, follower, followed, now))
            .await
    }

    async fn unfollow(&self, follower: i64, followed: i64) -> Result<bool> {
        self.put(move |c| agents::unfollow(c, follower, followed))
            .await
    }

    async fn is_following(&self, follower: i64, followed: i64) -> Result<bool> {
        self.get(|c| agents::is_following(c, follower, followed))
    }

    async fn admin_claim(
        &self,
        name_key: &str,
        how: AdminClaim,
        now: i64,
    ) -> Result<(Agent, Option<Owner>)> {
        let key = name_key.to_owned();
        self.put(move |c| match how {
            AdminClaim::ForOwner { email, cap } => {
                let o = owners::by_email(c, &email)?.ok_or_else(|| {
                    DbError::Refused(format!(
                        "no owner account {email} (create it with `tidepool admin create-owner`)"
                    ))
                })?;
                let agent = agents::claim_for_owner(c, &key, o.id, cap, now)?;
                Ok((agent, Some(o)))
            }
            AdminClaim::WithoutOwner { link_expires_at } => Ok((
                agents::claim_without_owner(c, &key, link_expires_at, now)?,
                None,
            )),
        })
        .await
    }

    async fn create_owner(
        &self,
        email: &str,
        password_hash: &str,
        is_admin: bool,
        now: i64,
    ) -> Result<Owner> {
        let (email, hash) = (email.to_owned(), password_hash.to_owned());
        self.put(move |c| owners::create(c, &email, &hash, is_admin, now))
            .await
    }

    async fn owner_by_email(&self, email: &str) -> Result<Option<Owner>> {
        self.get(|c| owners::by_email(c, email))
    }

    async fn set_password(&self, owner_id: i64, password_hash: &str) -> Result<()> {
        let hash = password_hash.to_owned();
        self.put(move |c| owners::set_password(c, owner_id, &hash))
            .await
    }

    async fn create_session(
        &self,
        token_hash: Vec<u8>,
        owner_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        self.put(move |c| owners::create_session(c, &token_hash, owner_id, now, expires_at))
            .await
    }

    async fn session_owner(&self, token_hash: &[u8], now: i64) -> Result<Option<Owner>> {
        self.get(|c| owners::session_owner(c, token_hash, now))
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
        let hash = token_hash.to_vec();
        self.put(move |c| owners::delete_session(c, &hash)).await
    }

    async fn agents_of(&self, owner_id: i64) -> Result<Vec<Agent>> {
        self.get(|c| owners::agents_of(c, owner_id))
    }

    async fn owner_of(&self, agent_id: i64) -> Result<Option<i64>> {
        self.get(|c| owners::owner_of(c, agent_id))
    }

    async fn agent_by_claim_token(&self, token_hash: &[u8], now: i64) -> Result<Option<Agent>> {
        self.get(|c| owners::agent_by_claim_token(c, token_hash, now))
    }

    async fn claim_with_token(
        &self,
        token_hash: Vec<u8>,
        code_hash: Vec<u8>,
        owner_id: i64,
        cap: i64,
        now: i64,
    ) -> Result<ClaimOutcome> {
        self.put(move |c| owners::claim_with_token(c, &token_hash, &code_hash, owner_id, cap, now))
            .await
    }

    async fn suspension_of(&self, agent_id: i64) -> Result<Option<Suspension>> {
        self.get(|c| owners::suspension_of(c, agent_id))
    }

    async fn set_suspended(
        &self,
        agent_id: i64,
        level: SuspensionLevel,
        suspend: Option<(String, String)>,
        record: Option<ModerationRecord>,
    ) -> Result<Agent> {
        self.put(move |c| {
            let agent = owners::set_suspended(
                c,
                agent_id,
                level,
                suspend.as_ref().map(|(a, r)| (a.as_str(), r.as_str())),
            )?;
            if let Some(r) = &record {
                log(c, r)?;
            }
            Ok(agent)
        })
        .await
    }

    async fn delete_agent(&self, agent_id: i64, now: i64) -> Result<()> {
        self.put(move |c| owners::delete_agent(c, agent_id, now))
            .await
    }

    async fn keys_of(&self, agent_id: i64) -> Result<Vec<KeyInfo>> {
        self.get(|c| owners::keys_of(c, agent_id))
    }

    async fn revoke_all_keys(&self, agent_id: i64, now: i64) -> Result<usize> {
        self.put(move |c| owners::revoke_all_keys(c, agent_id, now))
            .await
    }

    async fn revoke_read_key(&self, agent_id: i64, key_id: i64, now: i64) -> Result<()> {
        self.put(move |c| owners::revoke_read_key(c, agent_id, key_id, now))
            .await
    }

    async fn events_of(&self, agent_ids: Vec<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
        self.get(|c| owners::events_of(c, &agent_ids, limit))
    }

    async fn moderated_submolts(&self, owner_id: i64) -> Result<Vec<i64>> {
        self.get(|c| owners::moderated_submolts(c, owner_id))
    }

    async fn owned_by_admin(&self, agent_id: i64) -> Result<bool> {
        self.get(|c| owners::owned_by_admin(c, agent_id))
    }

    async fn create_submolt(&self, new: NewSubmolt) -> Result<Submolt> {
        self.put(move |c| submolts::create(c, new)).await
    }

    async fn submolt_by_id(&self, id: i64) -> Result<Option<Submolt>> {
        self.get(|c| submolts::by_id(c, id))
    }

    async fn submolt_by_name(&self, name: &str) -> Result<Option<Submolt>> {
        self.get(|c| submolts::by_name(c, name))
    }

    async fn list_submolts(&self, sort: SubmoltSort, page: PageRequest) -> Result<Page<Submolt>> {
        self.get(|c| submolts::list(c, sort, &page))
    }

    async fn subscribe(&self, agent_id: i64, submolt_id: i64, now: i64) -> Result<bool> {
        self.put(move |c| submolts::subscribe(c, agent_id, submolt_id, now))
            .await
    }

    async fn unsubscribe(&self, agent_id: i64, submolt_id: i64) -> Result<bool> {
        self.put(move |c| submolts::unsubscribe(c, agent_id, submolt_id))
            .await
    }

    async fn is_subscribed(&self, agent_id: i64, submolt_id: i64) -> Result<bool> {
        self.get(|c| submolts::is_subscribed(c, agent_id, submolt_id))
    }

    async fn role_of(&self, submolt_id: i64, agent_id: i64) -> Result<Option<Role>> {
        self.get(|c| submolts::role_of(c, submolt_id, agent_id))
    }

    async fn update_submolt(&self, id: i64, change: SettingsChange) -> Result<Submolt> {
        self.put(move |c| submolts::update_settings(c, id, &change))
            .await
    }

    async fn moderators(&self, submolt_id: i64) -> Result<Vec<Moderator>> {
        self.get(|c| submolts::moderators(c, submolt_id))
    }

    async fn add_moderator(&self, submolt_id: i64, agent_id: i64, now: i64) -> Result<bool> {
        self.put(move |c| submolts::add_moderator(c, submolt_id, agent_id, now))
            .await
    }

    async fn remove_moderator(&self, submolt_id: i64, agent_id: i64) -> Result<bool> {
        self.put(move |c| submolts::remove_moderator(c, submolt_id, agent_id))
            .await
    }

    async fn create_post(&self, new: NewPost) -> Result<Post> {
        self.put(move |c| {
            let author = new.author_id;
            let post = posts::create(c, new)?;
            audit_quarantine(c, &post.safety, author, "post", &post.uuid)?;
            Ok(post)
        })
        .await
    }

    async fn post_by_id(&self, id: i64) -> Result<Option<Post>> {
        self.get(|c| posts::by_id(c, id))
    }

    async fn post_by_uuid(&self, uuid: &str) -> Result<Option<Post>> {
        self.get(|c| posts::by_uuid(c, uuid))
    }

    async fn delete_post(&self, post_id: i64) -> Result<()> {
        self.put(move |c| {
            let post = posts::by_id(c, post_id)?.ok_or(DbError::NotFound("Post"))?;
            posts::delete(c, &post)
        })
        .await
    }

    async fn set_pinned(&self, post_id: i64, pinned: bool) -> Result<bool> {
        self.put(move |c| {
            let post = posts::by_id(c, post_id)?.ok_or(DbError::NotFound("Post"))?;
            posts::set_pinned(c, &post, pinned)
        })
        .await
    }

    async fn pinned(&self, submolt_id: i64) -> Result<Vec<Post>> {
        self.get(|c| posts::pinned(c, submolt_id))
    }

    async fn stats(&self) -> Result<Vec<(String, i64)>> {
        self.get(posts::stats)
    }

    async fn create_comment(&self, new: NewComment) -> Result<Comment> {
        self.put(move |c| {
            let author = new.author_id;
            let comment = comments::create(c, new)?;
            audit_quarantine(c, &comment.safety, author, "comment", &comment.uuid)?;
            Ok(comment)
        })
        .await
    }

    async fn comment_by_id(&self, id: i64) -> Result<Option<Comment>> {
        self.get(|c| comments::by_id(c, id))
    }

    async fn comment_by_uuid(&self, uuid: &str) -> Result<Option<Comment>> {
        self.get(|c| comments::by_uuid(c, uuid))
    }

    async fn delete_comment(&self, comment_id: i64) -> Result<()> {
        self.put(move |c| {
            let comment = comments::by_id(c, comment_id)?.ok_or(DbError::NotFound("Comment"))?;
            comments::delete(c, &comment)
        })
        .await
    }

    async fn cast_vote(&self, ballot: Ballot) -> Result<(VoteAction, bool)> {
        self.put(move |c| {
            Ok((
                votes::cast(c, ballot)?,
                agents::is_following(c, ballot.voter_id, ballot.author_id)?,
            ))
        })
        .await
    }

    async fn retract_vote(
        &self,
        voter_id: i64,
        kind: TargetKind,
        target_id: i64,
        author_id: i64,
        now: i64,
    ) -> Result<bool> {
        self.put(move |c| votes::retract(c, voter_id, kind, target_id, author_id, now))
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
        self.get(|c| feed::list_posts(c, scope, sort, window, exclude_pinned, &page))
    }

    async fn personal_feed(
        &self,
        agent_id: i64,
        following_only: bool,
        sort: PostSort,
        page: PageRequest,
    ) -> Result<Page<Post>> {
        self.get(|c| feed::personal_feed(c, agent_id, following_only, sort, &page))
    }

    async fn comment_tree(
        &self,
        post_id: i64,
        sort: CommentSort,
        page: PageRequest,
    ) -> Result<(Page<Comment>, Vec<Comment>)> {
        self.get(|c| comments::tree(c, post_id, sort, &page))
    }

    async fn recent_comments_by(
        &self,
        author_id: i64,
        limit: i64,
        include_quarantined: bool,
    ) -> Result<Vec<Comment>> {
        self.get(|c| comments::recent_by_author(c, author_id, limit, include_quarantined))
    }

    async fn search_posts(
        &self,
        query: &str,
        limit: i64,
        include_quarantined: bool,
    ) -> Result<Vec<(Post, f64)>> {
        let Some(fts) = search::fts_query(query) else {
            return Ok(Vec::new());
        };
        let hits = self
            .get_heavy(move |c| search::posts(c, &fts, limit, 0, include_quarantined))
            .await?;
        Ok(hits
            .into_iter()
            .map(|(p, bm25)| (p, search::similarity(bm25)))
            .collect())
    }

    async fn search_comments(
        &self,
        query: &str,
        limit: i64,
        include_quarantined: bool,
    ) -> Result<Vec<(Comment, f64)>> {
        let Some(fts) = search::fts_query(query) else {
            return Ok(Vec::new());
        };
        let hits = self
            .get_heavy(move |c| search::comments(c, &fts, limit, 0, include_quarantined))
            .await?;
        Ok(hits
            .into_iter()
            .map(|(m, bm25)| (m, search::similarity(bm25)))
            .collect())
    }

    async fn conversation_between(&self, a: i64, b: i64) -> Result<Option<Conversation>> {
        self.get(|c| dms::between(c, a, b))
    }

    async fn conversation_by_uuid(&self, uuid: &str) -> Result<Option<Conversation>> {
        self.get(|c| dms::by_uuid(c, uuid))
    }

    async fn request_conversation(&self, new: NewConversation) -> Result<(Conversation, Message)> {
        self.put(move |c| dms::request(c, new)).await
    }

    async fn set_conversation_status(
        &self,
        id: i64,
        from: &[ConversationStatus],
        to: ConversationStatus,
    ) -> Result<Conversation> {
        let from = from.to_vec();
        self.put(move |c| dms::set_status(c, id, &from, to)).await
    }

    async fn send_message(&self, conversation_id: i64, message: NewMessage) -> Result<Message> {
        self.put(move |c| dms::send(c, conversation_id, message))
            .await
    }

    async fn messages(&self, conversation_id: i64, limit: i64) -> Result<Vec<Message>> {
        self.get(|c| dms::messages(c, conversation_id, limit))
    }

    async fn mark_read(&self, conversation_id: i64, agent_id: i64, message_id: i64) -> Result<()> {
        self.put(move |c| dms::mark_read(c, conversation_id, agent_id, message_id))
            .await
    }

    async fn conversations_of(
        &self,
        agent_id: i64,
        filter: ConversationFilter,
        limit: i64,
    ) -> Result<Vec<ConversationEntry>> {
        self.get(|c| dms::of_agent(c, agent_id, filter, limit))
    }

    async fn release_message(&self, conversation_id: i64, message_id: i64) -> Result<bool> {
        self.put(move |c| dms::release(c, conversation_id, message_id))
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
        self.put(move |c| agents::put_avatar(c, agent_id, &uuid, &png, &url, now))
            .await
    }

    async fn avatar(&self, uuid: &str) -> Result<Option<Vec<u8>>> {
        self.get(|c| agents::avatar(c, uuid))
    }

    async fn delete_avatar(&self, agent_id: i64) -> Result<bool> {
        self.put(move |c| agents::delete_avatar(c, agent_id)).await
    }

    async fn set_webhook(
        &self,
        agent_id: i64,
        url: String,
        sealed_secret: Vec<u8>,
        now: i64,
    ) -> Result<Webhook> {
        self.put(move |c| webhooks::set(c, agent_id, &url, &sealed_secret, now))
            .await
    }

    async fn webhook_of(&self, agent_id: i64) -> Result<Option<Webhook>> {
        self.get(|c| webhooks::of(c, agent_id))
    }

    async fn delete_webhook(&self, agent_id: i64) -> Result<bool> {
        self.put(move |c| webhooks::delete(c, agent_id)).await
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        self.put(move |c| webhooks::claim(c, now, lease_until, limit))
            .await
    }

    async fn finish_delivery(
        &self,
        id: i64,
        lease: i64,
        outcome: DeliveryOutcome,
        now: i64,
    ) -> Result<()> {
        self.put(move |c| webhooks::finish(c, id, lease, &outcome, now))
            .await
    }

    async fn deliveries_of(&self, agent_id: i64, limit: i64) -> Result<Vec<Delivery>> {
        self.get(|c| webhooks::of_agent(c, agent_id, limit))
    }

    async fn add_notifications(&self, list: Vec<NewNotification>) -> Result<()> {
        if list.is_empty() {
            return Ok(());
        }
        self.put(move |c| notifications::add(c, list)).await
    }

    async fn notifications(
        &self,
        agent_id: i64,
        unread_only: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        self.get(|c| notifications::list(c, agent_id, unread_only, before, limit))
    }

    async fn unread_notifications(&self, agent_id: i64) -> Result<i64> {
        self.get(|c| notifications::unread(c, agent_id))
    }

    async fn mark_notifications_read(&self, agent_id: i64, post_id: Option<i64>) -> Result<i64> {
        self.put(move |c| notifications::mark_read(c, agent_id, post_id))
            .await
    }

    async fn report_post(
        &self,
        post_id: i64,
        reporter_id: i64,
        reason: String,
        now: i64,
    ) -> Result<bool> {
        self.put(move |c| moderation::report(c, post_id, reporter_id, &reason, now))
            .await
    }

    async fn reported_posts(
        &self,
        scope: QueueScope,
        limit: i64,
    ) -> Result<Vec<tidepool_core::model::moderation::ReportedPost>> {
        self.get(|c| moderation::reported(c, &scope, limit))
    }

    async fn resolve_reports(
        &self,
        post_id: i64,
        remove: bool,
        log_entry: ModerationRecord,
    ) -> Result<i64> {
        self.put(move |c| {
            let closed = moderation::resolve(c, post_id, remove)?;
            log(c, &log_entry)?;
            Ok(closed)
        })
        .await
    }

    async fn queued_posts(
        &self,
        scope: QueueScope,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Post>> {
        self.get(|c| moderation::queued_posts(c, &scope, before, limit))
    }

    async fn queued_comments(
        &self,
        scope: QueueScope,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Comment>> {
        self.get(|c| moderation::queued_comments(c, &scope, before, limit))
    }

    async fn moderate_item(
        &self,
        kind: TargetKind,
        id: i64,
        action: QueueAction,
        record: ModerationRecord,
    ) -> Result<()> {
        self.put(move |c| {
            let changed = match (kind, action) {
                (TargetKind::Post, QueueAction::Release(to)) => {
                    moderation::release_post(c, id, to)?
                }
                (TargetKind::Comment, QueueAction::Release(to)) => {
                    moderation::release_comment(c, id, to)?
                }
                // Only what is still held back: a release that won the race stands.
                (TargetKind::Post, QueueAction::Remove) => {
                    let post = posts::by_id(c, id)?.ok_or(DbError::NotFound("Post"))?;
                    let held = post.safety.quarantined || post.safety.submolt_only;
                    if held {
                        posts::delete(c, &post)?;
                    }
                    held
                }
                (TargetKind::Comment, QueueAction::Remove) => {
                    let comment = comments::by_id(c, id)?.ok_or(DbError::NotFound("Comment"))?;
                    let held = !comment.is_deleted
                        && (comment.safety.quarantined || comment.safety.submolt_only);
                    if held {
                        comments::delete(c, &comment)?;
                    }
                    held
                }
            };
            if !changed {
                return Err(DbError::Refused(
                    "This item is no longer quarantined".into(),
                ));
            }
            log(c, &record)
        })
        .await
    }

    async fn moderation_log(&self, before: Option<i64>, limit: i64) -> Result<Vec<LogEntry>> {
        self.get(|c| moderation::entries(c, before, limit))
    }

    async fn export_rows(
        &self,
        table: &'static TableSpec,
        after: Option<TransferRow>,
        limit: i64,
    ) -> Result<Vec<TransferRow>> {
        self.get_heavy(move |c| transfer::export_rows(c, table, after.as_ref(), limit))
            .await
    }

    async fn import_begin(&self) -> Result<()> {
        self.put(transfer::import_begin).await
    }

    async fn import_rows(&self, table: &'static TableSpec, rows: Vec<TransferRow>) -> Result<()> {
        self.put(move |c| transfer::import_rows(c, table, &rows))
            .await
    }

    async fn import_finish(&self) -> Result<()> {
        self.put(transfer::import_finish).await
    }

    async fn ready(&self) -> Result<()> {
        // The schema was brought up to date when the store opened (one process owns the
        // file); a read proves the pool works, a no-op job that the writer still runs.
        self.get(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))?;
        self.put(|_| Ok(())).await
    }

    fn shutdown(&self) {
        SqliteStore::shutdown(self);
    }

    fn runtime_stats(&self) -> tidepool_store::StoreStats {
        SqliteStore::runtime_stats(self)
    }
}
