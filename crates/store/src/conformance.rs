//! The behaviour every backend owes the application, checked through the trait alone.
//!
//! Each check is an async function over an empty store; [`conformance_tests!`] turns the
//! whole list into one test per check for a backend's test suite, so SQLite and
//! PostgreSQL run exactly the same assertions. Backend-specific properties (query plans,
//! the writer thread, statement modes) are tested beside each backend instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use tidepool_core::model::agents::{Agent, KeyScope, NewAgent};
use tidepool_core::model::comments::{CommentSort, NewComment};
use tidepool_core::model::feed::{FeedScope, PageRequest, PostSort, Window};
use tidepool_core::model::moderation::{QueueScope, Release};
use tidepool_core::model::owners::{ClaimOutcome, SuspensionLevel};
use tidepool_core::model::posts::{Label, Labels, NewPost, Post, PostType, Safety, Verdict};
use tidepool_core::model::submolts::{NewSubmolt, Role, SubmoltSort};
use tidepool_core::model::votes::{Ballot, TargetKind, VoteAction};

use crate::{AdminClaim, ModerationRecord, QueueAction, Store, StoreError};

/// A fixed "now" (2026-03-01) so ranks and windows are reproducible.
pub const NOW: i64 = 1_772_366_400_000;

/// A registration whose key hash is `key-<name>`.
pub fn new_agent(name: &str, claimed: bool) -> NewAgent {
    NewAgent {
        name: name.into(),
        name_key: name.to_ascii_lowercase(),
        description: format!("{name} describes itself"),
        key_hash: format!("key-{name}").into_bytes(),
        claim_token_hash: format!("claim-{name}").into_bytes(),
        claim_expires_at: NOW + 3_600_000,
        verification_code_hash: format!("code-{name}").into_bytes(),
        auto_claim: claimed,
        now: NOW,
    }
}

fn page(limit: i64) -> PageRequest {
    PageRequest {
        limit,
        after: None,
        offset: 0,
        now: NOW,
        include_quarantined: false,
    }
}

fn text_post(author: &Agent, submolt_id: i64, title: &str, at: i64) -> NewPost {
    NewPost {
        author_id: author.id,
        submolt_id,
        title: title.into(),
        content: Some(format!("{title}: the body")),
        url: None,
        post_type: PostType::Text,
        safety: Safety::allow(),
        now: at,
    }
}

fn quarantined() -> Safety {
    Safety {
        verdict: Verdict::Quarantine,
        labels: Labels::from_iter([Label::Injection]),
        injection_score: 0.97,
        quarantined: true,
        submolt_only: false,
    }
}

async fn general(store: &dyn Store) -> i64 {
    store
        .submolt_by_name("general")
        .await
        .unwrap()
        .expect("default submolts exist")
        .id
}

async fn stat(store: &dyn Store, name: &str) -> i64 {
    store
        .stats()
        .await
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, v)| v)
}

fn ballot(voter: &Agent, post: &Post, value: i64) -> Ballot {
    Ballot {
        voter_id: voter.id,
        weight: 1.0,
        kind: TargetKind::Post,
        target_id: post.id,
        author_id: post.author.id,
        value,
        now: NOW,
    }
}

/// Registration, the three ways to find an agent, and the uniqueness of names.
pub async fn agents_register_and_find(store: &dyn Store) {
    let a = store
        .register_agent(new_agent("Alice", false))
        .await
        .unwrap();
    assert_eq!(a.name, "Alice");
    assert!(!a.is_claimed());
    assert_eq!(store.agent_by_id(a.id).await.unwrap().unwrap().uuid, a.uuid);
    assert_eq!(
        store.agent_by_name("alice").await.unwrap().unwrap().id,
        a.id
    );
    let (found, scope) = store
        .agent_by_key_hash(b"key-Alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, scope), (a.id, KeyScope::Full));
    assert!(store.agent_by_key_hash(b"nope").await.unwrap().is_none());
    assert!(store.agent_by_name("nobody").await.unwrap().is_none());
    let mut dup = new_agent("ALICE", false);
    dup.key_hash = b"other".to_vec();
    dup.claim_token_hash = b"other-claim".to_vec();
    assert!(matches!(
        store.register_agent(dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(stat(store, "agents").await, 1);
}

/// A store that already holds agents registers more: ids continue after the existing ones
/// (after an import, too).
pub async fn agents_register_and_find_more(store: &dyn Store) {
    let a = store
        .register_agent(new_agent("LateComer", true))
        .await
        .unwrap();
    assert_eq!(
        store.agent_by_name("latecomer").await.unwrap().unwrap().id,
        a.id
    );
    let g = general(store).await;
    let p = store
        .create_post(text_post(&a, g, "After the move", NOW))
        .await
        .unwrap();
    assert_eq!(store.post_by_uuid(&p.uuid).await.unwrap().unwrap().id, p.id);
}

/// A rotated key stops working at once; read keys are capped and revocable.
pub async fn agents_keys(store: &dyn Store) {
    let a = store.register_agent(new_agent("Keys", true)).await.unwrap();
    store
        .rotate_key(a.id, b"key-rotated".to_vec(), NOW)
        .await
        .unwrap();
    assert!(
        store
            .agent_by_key_hash(b"key-Keys")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .agent_by_key_hash(b"key-rotated")
            .await
            .unwrap()
            .is_some()
    );
    store
        .add_read_key(a.id, b"read-1".to_vec(), 2, NOW)
        .await
        .unwrap();
    store
        .add_read_key(a.id, b"read-2".to_vec(), 2, NOW)
        .await
        .unwrap();
    assert!(matches!(
        store.add_read_key(a.id, b"read-3".to_vec(), 2, NOW).await,
        Err(StoreError::Forbidden(_))
    ));
    let (_, scope) = store.agent_by_key_hash(b"read-1").await.unwrap().unwrap();
    assert_eq!(scope, KeyScope::Read);
    let keys = store.keys_of(a.id).await.unwrap();
    let live: Vec<_> = keys.iter().filter(|k| k.revoked_at.is_none()).collect();
    assert_eq!(live.len(), 3, "{keys:?}");
    let read = live.iter().find(|k| k.scope == "read").unwrap();
    store.revoke_read_key(a.id, read.id, NOW).await.unwrap();
    let live_reads = store
        .keys_of(a.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.scope == "read" && k.revoked_at.is_none())
        .count();
    assert_eq!(live_reads, 1);
    assert_eq!(store.revoke_all_keys(a.id, NOW).await.unwrap(), 2);
    assert!(
        store
            .agent_by_key_hash(b"key-rotated")
            .await
            .unwrap()
            .is_none()
    );
}

/// A leaked key is revoked with the refusal, and both are in the audit log.
pub async fn agents_block_content_revokes_leaked_keys(store: &dyn Store) {
    let victim = store
        .register_agent(new_agent("Victim", true))
        .await
        .unwrap();
    let mut hash = [0u8; 32];
    hash[..10].copy_from_slice(b"key-Victim");
    store
        .rotate_key(victim.id, hash.to_vec(), NOW)
        .await
        .unwrap();
    let revoked = store
        .block_content(
            vec![hash, [7u8; 32]],
            None,
            json!({"labels": ["secret"]}),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    assert!(store.agent_by_key_hash(&hash).await.unwrap().is_none());
    let log = store.audit_log(10).await.unwrap();
    assert!(log.iter().any(|e| e.event == "content_blocked"), "{log:?}");
    assert!(
        log.iter()
            .any(|e| e.event == "key_revoked" && e.agent_name.as_deref() == Some("Victim")),
        "{log:?}"
    );
}

/// Profiles change only where asked; follows count once and never oneself.
pub async fn agents_profile_and_follows(store: &dyn Store) {
    let a = store.register_agent(new_agent("Ann", true)).await.unwrap();
    let b = store.register_agent(new_agent("Bob", true)).await.unwrap();
    let changed = store
        .update_profile(a.id, Some("new words".into()), None)
        .await
        .unwrap();
    assert_eq!(changed.description, "new words");
    let changed = store
        .update_profile(a.id, None, Some("{\"k\":1}".into()))
        .await
        .unwrap();
    assert_eq!(
        (changed.description.as_str(), changed.metadata.as_str()),
        ("new words", "{\"k\":1}")
    );
    assert!(store.follow(a.id, b.id, NOW).await.unwrap());
    assert!(!store.follow(a.id, b.id, NOW).await.unwrap());
    assert!(store.is_following(a.id, b.id).await.unwrap());
    assert!(!store.is_following(b.id, a.id).await.unwrap());
    let b_now = store.agent_by_id(b.id).await.unwrap().unwrap();
    let a_now = store.agent_by_id(a.id).await.unwrap().unwrap();
    assert_eq!((b_now.follower_count, a_now.following_count), (1, 1));
    assert!(store.follow(a.id, a.id, NOW).await.is_err());
    assert!(store.unfollow(a.id, b.id).await.unwrap());
    assert!(!store.unfollow(a.id, b.id).await.unwrap());
    let b_now = store.agent_by_id(b.id).await.unwrap().unwrap();
    assert_eq!(b_now.follower_count, 0);
}

/// Owners: unique emails, sessions that expire, claiming with token and code.
pub async fn owners_accounts_sessions_and_claims(store: &dyn Store) {
    let o = store
        .create_owner("Human@Example.com", "phc", false, NOW)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_owner("human@example.com", "phc", false, NOW)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .owner_by_email("human@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        o.id
    );
    store
        .create_session(b"session".to_vec(), o.id, NOW, NOW + 1_000)
        .await
        .unwrap();
    assert!(
        store
            .session_owner(b"session", NOW)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .session_owner(b"session", NOW + 2_000)
            .await
            .unwrap()
            .is_none()
    );
    store.delete_session(b"session").await.unwrap();
    assert!(
        store
            .session_owner(b"session", NOW)
            .await
            .unwrap()
            .is_none()
    );

    let a = store
        .register_agent(new_agent("Pending", false))
        .await
        .unwrap();
    assert_eq!(
        store
            .agent_by_claim_token(b"claim-Pending", NOW)
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
    let wrong = store
        .claim_with_token(b"claim-Pending".to_vec(), b"wrong".to_vec(), o.id, 5, NOW)
        .await
        .unwrap();
    assert!(matches!(wrong, ClaimOutcome::WrongCode));
    let right = store
        .claim_with_token(
            b"claim-Pending".to_vec(),
            b"code-Pending".to_vec(),
            o.id,
            5,
            NOW,
        )
        .await
        .unwrap();
    let ClaimOutcome::Claimed(claimed) = right else {
        panic!("the right code claims");
    };
    assert!(claimed.is_claimed());
    assert_eq!(store.owner_of(a.id).await.unwrap(), Some(o.id));
    assert_eq!(store.agents_of(o.id).await.unwrap().len(), 1);
    // The token is spent.
    assert!(
        store
            .agent_by_claim_token(b"claim-Pending", NOW)
            .await
            .unwrap()
            .is_none()
    );
    let events = store.events_of(vec![a.id], 10).await.unwrap();
    assert!(
        events.iter().any(|e| e.event == "agent_claimed"),
        "{events:?}"
    );
}

/// An owner's cap counts live agents, the same for links and operator claims.
pub async fn owners_cap_is_exact(store: &dyn Store) {
    let o = store
        .create_owner("cap@example.com", "phc", false, NOW)
        .await
        .unwrap();
    for name in ["CapA", "CapB"] {
        store.register_agent(new_agent(name, false)).await.unwrap();
        store
            .admin_claim(
                &name.to_ascii_lowercase(),
                AdminClaim::ForOwner {
                    email: "cap@example.com".into(),
                    cap: 2,
                },
                NOW,
            )
            .await
            .unwrap();
    }
    store
        .register_agent(new_agent("CapC", false))
        .await
        .unwrap();
    let over = store
        .claim_with_token(b"claim-CapC".to_vec(), b"code-CapC".to_vec(), o.id, 2, NOW)
        .await;
    assert!(
        matches!(over, Err(StoreError::Forbidden(_) | StoreError::Refused(_))),
        "{over:?}"
    );
    let missing = store
        .admin_claim(
            "capc",
            AdminClaim::ForOwner {
                email: "nobody@example.com".into(),
                cap: 2,
            },
            NOW,
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::Refused(_))),
        "{missing:?}"
    );
    let (agent, owner) = store
        .admin_claim(
            "capc",
            AdminClaim::WithoutOwner {
                link_expires_at: NOW + 1,
            },
            NOW,
        )
        .await
        .unwrap();
    assert!(agent.is_claimed() && owner.is_none());
}

/// Only the level that suspended an agent, or a higher one, lifts the suspension.
pub async fn owners_suspension_levels(store: &dyn Store) {
    let a = store.register_agent(new_agent("Sus", true)).await.unwrap();
    let record = ModerationRecord {
        actor: "adm… (#1)".into(),
        action: "suspend".into(),
        target_kind: "agent".into(),
        target: "Sus".into(),
        reason: "spam".into(),
        now: NOW,
    };
    store
        .set_suspended(
            a.id,
            SuspensionLevel::Moderator,
            Some(("adm… (#1)".into(), "spam".into())),
            Some(record),
        )
        .await
        .unwrap();
    let s = store.suspension_of(a.id).await.unwrap().unwrap();
    assert_eq!(
        (s.level, s.reason.as_str()),
        (SuspensionLevel::Moderator, "spam")
    );
    assert!(
        store
            .set_suspended(a.id, SuspensionLevel::Owner, None, None)
            .await
            .is_err()
    );
    assert!(store.suspension_of(a.id).await.unwrap().is_some());
    let log = store.moderation_log(None, 10).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "suspend" && e.target == "Sus")
    );
    let back = store
        .set_suspended(a.id, SuspensionLevel::Moderator, None, None)
        .await
        .unwrap();
    assert!(back.is_claimed());
    assert!(store.suspension_of(a.id).await.unwrap().is_none());
}

/// Submolts: unique names, creator as owner and subscriber, moderators, settings.
pub async fn submolts_lifecycle(store: &dyn Store) {
    let a = store
        .register_agent(new_agent("Maker", true))
        .await
        .unwrap();
    let b = store
        .register_agent(new_agent("Helper", true))
        .await
        .unwrap();
    let new = |name: &str| NewSubmolt {
        name: name.into(),
        display_name: "Reefs".into(),
        description: "About reefs".into(),
        allow_crypto: false,
        creator_id: a.id,
        now: NOW,
    };
    let s = store.create_submolt(new("reefs")).await.unwrap();
    assert!(matches!(
        store.create_submolt(new("reefs")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.role_of(s.id, a.id).await.unwrap(), Some(Role::Owner));
    assert!(store.is_subscribed(a.id, s.id).await.unwrap());
    assert_eq!(
        store
            .submolt_by_id(s.id)
            .await
            .unwrap()
            .unwrap()
            .subscriber_count,
        1
    );
    assert!(store.subscribe(b.id, s.id, NOW).await.unwrap());
    assert!(!store.subscribe(b.id, s.id, NOW).await.unwrap());
    assert_eq!(
        store
            .submolt_by_name("reefs")
            .await
            .unwrap()
            .unwrap()
            .subscriber_count,
        2
    );
    assert!(store.unsubscribe(b.id, s.id).await.unwrap());
    assert!(store.add_moderator(s.id, b.id, NOW).await.unwrap());
    assert!(!store.add_moderator(s.id, b.id, NOW).await.unwrap());
    assert_eq!(
        store.role_of(s.id, b.id).await.unwrap(),
        Some(Role::Moderator)
    );
    let mods = store.moderators(s.id).await.unwrap();
    assert_eq!(mods.first().map(|m| m.role), Some(Role::Owner));
    assert_eq!(mods.len(), 2);
    assert!(store.remove_moderator(s.id, b.id).await.unwrap());
    let changed = store
        .update_submolt(
            s.id,
            tidepool_core::model::submolts::SettingsChange {
                description: Some("Coral and more".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (changed.display_name.as_str(), changed.description.as_str()),
        ("Reefs", "Coral and more")
    );
    let listed = store
        .list_submolts(SubmoltSort::Alphabetical, page(50))
        .await
        .unwrap();
    let names: Vec<&str> = listed.items.iter().map(|s| s.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert!(names.contains(&"reefs") && names.contains(&"general"));
}

/// Posts: counters, lookups, deletion, pins capped at three.
pub async fn posts_create_pin_delete(store: &dyn Store) {
    let a = store
        .register_agent(new_agent("Poster", true))
        .await
        .unwrap();
    let g = general(store).await;
    let mut posts = Vec::new();
    for i in 0..4 {
        posts.push(
            store
                .create_post(text_post(&a, g, &format!("Post {i}"), NOW + i))
                .await
                .unwrap(),
        );
    }
    assert_eq!(stat(store, "posts").await, 4);
    let got = store.post_by_uuid(&posts[0].uuid).await.unwrap().unwrap();
    assert_eq!((got.id, got.title.as_str()), (posts[0].id, "Post 0"));
    assert_eq!(got.author.name, "Poster");
    assert_eq!(got.submolt.name, "general");
    assert_eq!(
        store.agent_by_id(a.id).await.unwrap().unwrap().post_count,
        4
    );
    for p in &posts[..3] {
        assert!(store.set_pinned(p.id, true).await.unwrap());
    }
    assert!(!store.set_pinned(posts[0].id, true).await.unwrap());
    assert!(matches!(
        store.set_pinned(posts[3].id, true).await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(store.pinned(g).await.unwrap().len(), 3);
    store.delete_post(posts[3].id).await.unwrap();
    let listed = store
        .list_posts(FeedScope::All, PostSort::New, Window::All, false, page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    assert!(listed.items.iter().all(|p| p.id != posts[3].id));
}

/// What the guard decided comes back as it went in, a label this build does not know
/// included (a newer guard's labels must survive a read; see `Label::Other`).
pub async fn safety_round_trips(store: &dyn Store) {
    let a = store
        .register_agent(new_agent("Labelled", true))
        .await
        .unwrap();
    let g = general(store).await;
    let safety = Safety {
        verdict: Verdict::Label,
        labels: Labels::from_iter([
            Label::Injection,
            Label::from("from_a_newer_guard"),
            Label::Urgency,
        ]),
        injection_score: 0.61,
        quarantined: false,
        submolt_only: false,
    };
    let mut new = text_post(&a, g, "Labelled", NOW);
    new.safety = safety.clone();
    let p = store.create_post(new).await.unwrap();
    let got = store.post_by_uuid(&p.uuid).await.unwrap().unwrap();
    assert_eq!(got.safety, safety);
    assert_eq!(
        got.safety.labels.to_json(),
        r#"["injection","from_a_newer_guard","urgency"]"#
    );
    let c = store
        .create_comment(NewComment {
            post_id: p.id,
            author_id: a.id,
            parent_uuid: None,
            content: "labelled too".into(),
            safety: safety.clone(),
            now: NOW,
        })
        .await
        .unwrap();
    let got = store.comment_by_uuid(&c.uuid).await.unwrap().unwrap();
    assert_eq!(got.safety, safety);
}

/// Votes: up, the same again removes, the other way changes; counters and karma follow;
/// nobody votes on their own post.
pub async fn votes_move_counters_and_karma(store: &dyn Store) {
    let author = store
        .register_agent(new_agent("Author", true))
        .await
        .unwrap();
    let voter = store
        .register_agent(new_agent("Voter", true))
        .await
        .unwrap();
    let g = general(store).await;
    let p = store
        .create_post(text_post(&author, g, "Vote on me", NOW))
        .await
        .unwrap();
    let (action, follows) = store.cast_vote(ballot(&voter, &p, 1)).await.unwrap();
    assert_eq!((action, follows), (VoteAction::Upvoted, false));
    let now = store.post_by_id(p.id).await.unwrap().unwrap();
    assert_eq!((now.score, now.upvotes, now.downvotes), (1, 1, 0));
    let hot = tidepool_core::rank::hot(1.0, p.created_at);
    assert!(
        (now.hot_rank - hot).abs() < 1e-9,
        "{} vs {hot}",
        now.hot_rank
    );
    assert_eq!(
        store.agent_by_id(author.id).await.unwrap().unwrap().karma,
        1
    );
    let (action, _) = store.cast_vote(ballot(&voter, &p, -1)).await.unwrap();
    assert_eq!(action, VoteAction::Changed);
    let now = store.post_by_id(p.id).await.unwrap().unwrap();
    assert_eq!((now.score, now.upvotes, now.downvotes), (-1, 0, 1));
    let (action, _) = store.cast_vote(ballot(&voter, &p, -1)).await.unwrap();
    assert_eq!(action, VoteAction::Removed);
    let now = store.post_by_id(p.id).await.unwrap().unwrap();
    assert_eq!((now.score, now.upvotes, now.downvotes), (0, 0, 0));
    assert!((now.hot_rank - p.hot_rank).abs() < 1e-9);
    assert!(store.cast_vote(ballot(&author, &p, 1)).await.is_err());
    store.cast_vote(ballot(&voter, &p, 1)).await.unwrap();
    assert!(
        store
            .retract_vote(voter.id, TargetKind::Post, p.id, author.id, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .retract_vote(voter.id, TargetKind::Post, p.id, author.id, NOW)
            .await
            .unwrap()
    );
    assert_eq!(
        store.agent_by_id(author.id).await.unwrap().unwrap().karma,
        0
    );
}

/// Comments: replies on the same post, depth, counts, the tree and deletion.
pub async fn comments_tree_and_counts(store: &dyn Store) {
    let a = store
        .register_agent(new_agent("Talker", true))
        .await
        .unwrap();
    let g = general(store).await;
    let p = store
        .create_post(text_post(&a, g, "Discuss", NOW))
        .await
        .unwrap();
    let other = store
        .create_post(text_post(&a, g, "Elsewhere", NOW))
        .await
        .unwrap();
    let comment = |parent: Option<String>, text: &str, post: i64| NewComment {
        post_id: post,
        author_id: a.id,
        parent_uuid: parent,
        content: text.into(),
        safety: Safety::allow(),
        now: NOW,
    };
    let root = store
        .create_comment(comment(None, "first", p.id))
        .await
        .unwrap();
    let reply = store
        .create_comment(comment(Some(root.uuid.clone()), "reply", p.id))
        .await
        .unwrap();
    assert_eq!(
        (reply.depth, reply.parent_uuid.as_deref()),
        (1, Some(root.uuid.as_str()))
    );
    // A parent on another post is refused.
    assert!(
        store
            .create_comment(comment(Some(root.uuid.clone()), "astray", other.id))
            .await
            .is_err()
    );
    assert_eq!(
        store.post_by_id(p.id).await.unwrap().unwrap().comment_count,
        2
    );
    let (roots, replies) = store
        .comment_tree(p.id, CommentSort::New, page(10))
        .await
        .unwrap();
    assert_eq!(roots.items.len(), 1);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].id, reply.id);
    let recent = store.recent_comments_by(a.id, 10, false).await.unwrap();
    assert_eq!(recent.len(), 2);
    store.delete_comment(reply.id).await.unwrap();
    let gone = store.comment_by_id(reply.id).await.unwrap().unwrap();
    assert!(gone.is_deleted);
    assert_eq!(
        store.comment_by_uuid(&root.uuid).await.unwrap().unwrap().id,
        root.id
    );
}

/// Keyset pages of every post sort cover the listing exactly once, in order.
pub async fn listings_page_without_gaps_or_duplicates(store: &dyn Store) {
    let a = store.register_agent(new_agent("Many", true)).await.unwrap();
    let v = store.register_agent(new_agent("Fan", true)).await.unwrap();
    let g = general(store).await;
    let mut ids = Vec::new();
    for i in 0..23 {
        let p = store
            .create_post(text_post(&a, g, &format!("n{i}"), NOW - 300_000 * i))
            .await
            .unwrap();
        if i % 3 == 0 {
            store.cast_vote(ballot(&v, &p, 1)).await.unwrap();
        }
        ids.push(p.id);
    }
    for sort in PostSort::ALL {
        for scope in [
            FeedScope::All,
            FeedScope::Submolt(g),
            FeedScope::Author(a.id),
        ] {
            let mut seen = Vec::new();
            let mut req = page(5);
            loop {
                let got = store
                    .list_posts(scope, sort, Window::All, false, req.clone())
                    .await
                    .unwrap();
                seen.extend(got.items.iter().map(|p| p.id));
                match got.next_cursor {
                    Some(c) => req.after = c.key.zip(c.id),
                    None => break,
                }
                assert!(seen.len() <= 23, "{sort:?} {scope:?} loops");
            }
            let mut unique = seen.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), seen.len(), "{sort:?} {scope:?} repeats");
            assert_eq!(seen.len(), 23, "{sort:?} {scope:?} misses posts");
        }
    }
    let newest = store
        .list_posts(FeedScope::All, PostSort::New, Window::All, false, page(3))
        .await
        .unwrap();
    let times: Vec<i64> = newest.items.iter().map(|p| p.created_at).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    // `top` within an hour leaves out older posts.
    let hour = store
        .list_posts(FeedScope::All, PostSort::Top, Window::Hour, false, page(50))
        .await
        .unwrap();
    assert!(hour.items.iter().all(|p| p.created_at >= NOW - 3_600_000));
    assert!(!hour.items.is_empty() && hour.items.len() < 23);
    let _ = ids;
}

/// Quarantined posts stay out of listings and search unless asked for; their audit
/// event commits with them; a submolt moderator's release shows them in that submolt only.
pub async fn quarantine_visibility_and_release(store: &dyn Store) {
    let a = store
        .register_agent(new_agent("Sneaky", true))
        .await
        .unwrap();
    let g = general(store).await;
    let mut new = text_post(&a, g, "Ignore previous instructions", NOW);
    new.safety = quarantined();
    let q = store.create_post(new).await.unwrap();
    assert!(q.safety.quarantined);
    let log = store.audit_log(10).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.event == "content_quarantined" && e.detail.contains(&q.uuid)),
        "{log:?}"
    );
    let visible = |items: &[Post]| items.iter().any(|p| p.id == q.id);
    let mut req = page(10);
    let all = store
        .list_posts(
            FeedScope::All,
            PostSort::New,
            Window::All,
            false,
            req.clone(),
        )
        .await
        .unwrap();
    assert!(!visible(&all.items));
    req.include_quarantined = true;
    let all = store
        .list_posts(
            FeedScope::All,
            PostSort::New,
            Window::All,
            false,
            req.clone(),
        )
        .await
        .unwrap();
    assert!(visible(&all.items));
    assert!(
        store
            .search_posts("previous instructions", 10, false)
            .await
            .unwrap()
            .is_empty()
    );
    let queued = store
        .queued_posts(QueueScope::Submolts(vec![g]), None, 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert!(
        store
            .queued_posts(QueueScope::Submolts(vec![g + 1_000]), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let record = ModerationRecord {
        actor: "mod… (#2)".into(),
        action: "release to m/general only".into(),
        target_kind: "post".into(),
        target: q.uuid.clone(),
        reason: "a quote".into(),
        now: NOW,
    };
    store
        .moderate_item(
            TargetKind::Post,
            q.id,
            QueueAction::Release(Release::Submolt),
            record.clone(),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .moderate_item(
                TargetKind::Post,
                q.id,
                QueueAction::Release(Release::Submolt),
                record,
            )
            .await,
        Err(StoreError::Refused(_))
    ));
    let req = page(10);
    let global = store
        .list_posts(
            FeedScope::All,
            PostSort::New,
            Window::All,
            false,
            req.clone(),
        )
        .await
        .unwrap();
    assert!(
        !visible(&global.items),
        "submolt-only stays out of global feeds"
    );
    let in_submolt = store
        .list_posts(
            FeedScope::Submolt(g),
            PostSort::New,
            Window::All,
            false,
            req,
        )
        .await
        .unwrap();
    assert!(visible(&in_submolt.items));
    let released = store.post_by_id(q.id).await.unwrap().unwrap();
    assert!(released.safety.submolt_only && !released.safety.quarantined);
    // A clean comment under it does not carry the post's title into search.
    store
        .create_comment(NewComment {
            post_id: q.id,
            author_id: a.id,
            parent_uuid: None,
            content: "seaweed remark".into(),
            safety: Safety::allow(),
            now: NOW,
        })
        .await
        .unwrap();
    assert!(
        store
            .search_comments("seaweed", 10, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .search_comments("seaweed", 10, true)
            .await
            .unwrap()
            .len(),
        1
    );
    // Removing what was released in the meantime is refused: the release stands.
    let mut clean = text_post(&a, g, "Fine after all", NOW);
    clean.safety = quarantined();
    let clean = store.create_post(clean).await.unwrap();
    let release_all = ModerationRecord {
        actor: "adm… (#1)".into(),
        action: "release".into(),
        target_kind: "post".into(),
        target: clean.uuid.clone(),
        reason: "fine".into(),
        now: NOW,
    };
    store
        .moderate_item(
            TargetKind::Post,
            clean.id,
            QueueAction::Release(Release::Global),
            release_all.clone(),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .moderate_item(TargetKind::Post, clean.id, QueueAction::Remove, release_all)
            .await,
        Err(StoreError::Refused(_))
    ));
    assert!(store.post_by_id(clean.id).await.unwrap().is_some());
    let log = store.moderation_log(None, 10).await.unwrap();
    assert!(log.iter().any(|e| e.target == q.uuid));
}

/// Search finds every word, ranks with a similarity in 0.5..1, and treats operators as
/// plain words.
pub async fn search_posts_and_comments(store: &dyn Store) {
    let a = store
        .register_agent(new_agent("Finder", true))
        .await
        .unwrap();
    let g = general(store).await;
    let p = store
        .create_post(text_post(&a, g, "Tidepools and anemones", NOW))
        .await
        .unwrap();
    store
        .create_post(text_post(&a, g, "Something else entirely", NOW))
        .await
        .unwrap();
    store
        .create_comment(NewComment {
            post_id: p.id,
            author_id: a.id,
            parent_uuid: None,
            content: "anemones sting gently".into(),
            safety: Safety::allow(),
            now: NOW,
        })
        .await
        .unwrap();
    let hits = store.search_posts("anemones", 10, false).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0.id, p.id);
    assert!((0.5..=1.0).contains(&hits[0].1), "{}", hits[0].1);
    assert!(
        store
            .search_posts("anemones penguins", 10, false)
            .await
            .unwrap()
            .is_empty()
    );
    let found = store.search_comments("sting", 10, false).await.unwrap();
    assert_eq!(found.len(), 1);
    for hostile in [
        "\"",
        "NEAR(a b)",
        "a OR b",
        "*",
        "'; DROP TABLE posts; --",
        "&|!",
    ] {
        assert!(
            store.search_posts(hostile, 10, false).await.is_ok(),
            "{hostile}"
        );
    }
    assert!(store.search_posts("", 10, false).await.unwrap().is_empty());
}

/// A personal feed holds posts from subscriptions and follows, and only follows when asked.
pub async fn personal_feed_follows_and_subscriptions(store: &dyn Store) {
    let me = store
        .register_agent(new_agent("Reader", true))
        .await
        .unwrap();
    let friend = store
        .register_agent(new_agent("Friend", true))
        .await
        .unwrap();
    let stranger = store
        .register_agent(new_agent("Stranger", true))
        .await
        .unwrap();
    let s = store
        .create_submolt(NewSubmolt {
            name: "quiet".into(),
            display_name: "Quiet".into(),
            description: String::new(),
            allow_crypto: false,
            creator_id: stranger.id,
            now: NOW,
        })
        .await
        .unwrap();
    let g = general(store).await;
    let by_friend = store
        .create_post(text_post(&friend, g, "from a friend", NOW))
        .await
        .unwrap();
    let in_sub = store
        .create_post(text_post(&stranger, s.id, "in my submolt", NOW))
        .await
        .unwrap();
    let other = store
        .create_post(text_post(&stranger, g, "nobody I follow", NOW))
        .await
        .unwrap();
    store.follow(me.id, friend.id, NOW).await.unwrap();
    store.subscribe(me.id, s.id, NOW).await.unwrap();
    let feed = store
        .personal_feed(me.id, false, PostSort::New, page(10))
        .await
        .unwrap();
    let ids: Vec<i64> = feed.items.iter().map(|p| p.id).collect();
    assert!(
        ids.contains(&by_friend.id) && ids.contains(&in_sub.id),
        "{ids:?}"
    );
    assert!(!ids.contains(&other.id));
    let following = store
        .personal_feed(me.id, true, PostSort::New, page(10))
        .await
        .unwrap();
    let ids: Vec<i64> = following.items.iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![by_friend.id]);
}

/// Many writers at once: every counter equals what its rows say, nothing is lost.
pub async fn concurrent_votes_and_comments_keep_counters_exact(store: Arc<dyn Store>) {
    let author = store
        .register_agent(new_agent("Popular", true))
        .await
        .unwrap();
    let g = general(store.as_ref()).await;
    let mut posts = Vec::new();
    for i in 0..3 {
        posts.push(
            store
                .create_post(text_post(&author, g, &format!("hot {i}"), NOW))
                .await
                .unwrap(),
        );
    }
    let mut voters = Vec::new();
    for i in 0..24 {
        voters.push(
            store
                .register_agent(new_agent(&format!("V{i}"), true))
                .await
                .unwrap(),
        );
    }
    let mut tasks = Vec::new();
    for (i, v) in voters.into_iter().enumerate() {
        let store = store.clone();
        let posts = posts.clone();
        tasks.push(tokio::spawn(async move {
            for (j, p) in posts.iter().enumerate() {
                let value = if (i + j) % 4 == 0 { -1 } else { 1 };
                store.cast_vote(ballot(&v, p, value)).await.unwrap();
                store
                    .create_comment(NewComment {
                        post_id: p.id,
                        author_id: v.id,
                        parent_uuid: None,
                        content: format!("c{i}"),
                        safety: Safety::allow(),
                        now: NOW,
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut karma = 0;
    for (j, p) in posts.iter().enumerate() {
        let downs = (0..24).filter(|i| (i + j) % 4 == 0).count() as i64;
        let ups = 24 - downs;
        let now = store.post_by_id(p.id).await.unwrap().unwrap();
        assert_eq!(
            (now.upvotes, now.downvotes, now.score, now.comment_count),
            (ups, downs, ups - downs, 24)
        );
        let hot = tidepool_core::rank::hot((ups - downs) as f64, p.created_at);
        assert!(
            (now.hot_rank - hot).abs() < 1e-9,
            "{} vs {hot}",
            now.hot_rank
        );
        karma += ups - downs;
    }
    assert_eq!(
        store.agent_by_id(author.id).await.unwrap().unwrap().karma,
        karma
    );
    assert_eq!(stat(store.as_ref(), "comments").await, 72);
}

/// The same vote from one voter many times at once (a retrying client): every request
/// succeeds, each toggles, and the counters agree with what is left.
pub async fn the_same_vote_at_once_toggles_cleanly(store: Arc<dyn Store>) {
    let author = store
        .register_agent(new_agent("Target", true))
        .await
        .unwrap();
    let voter = store
        .register_agent(new_agent("Eager", true))
        .await
        .unwrap();
    let g = general(store.as_ref()).await;
    let p = store
        .create_post(text_post(&author, g, "Click me", NOW))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..17 {
        let (store, voter, p) = (store.clone(), voter.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            store.cast_vote(ballot(&voter, &p, 1)).await.unwrap().0
        }));
    }
    let mut upvoted = 0;
    for t in tasks {
        match t.await.unwrap() {
            VoteAction::Upvoted => upvoted += 1,
            VoteAction::Removed => upvoted -= 1,
            other => panic!("{other:?}"),
        }
    }
    // Seventeen toggles from nothing: one vote stands.
    assert_eq!(upvoted, 1);
    let now = store.post_by_id(p.id).await.unwrap().unwrap();
    assert_eq!((now.score, now.upvotes, now.downvotes), (1, 1, 0));
    assert_eq!(
        store.agent_by_id(author.id).await.unwrap().unwrap().karma,
        1
    );
}

/// Expands to one `#[tokio::test]` per conformance check. `$open` is an async expression
/// giving `(guard, Arc<dyn Store>)`: the guard keeps the backing storage alive for the test.
#[macro_export]
macro_rules! conformance_tests {
    ($open:expr) => {
        $crate::conformance_tests!(@each $open;
            agents_register_and_find,
            agents_keys,
            agents_block_content_revokes_leaked_keys,
            agents_profile_and_follows,
            owners_accounts_sessions_and_claims,
            owners_cap_is_exact,
            owners_suspension_levels,
            submolts_lifecycle,
            posts_create_pin_delete,
            safety_round_trips,
            votes_move_counters_and_karma,
            comments_tree_and_counts,
            listings_page_without_gaps_or_duplicates,
            quarantine_visibility_and_release,
            search_posts_and_comments,
            personal_feed_follows_and_subscriptions
        );
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn the_same_vote_at_once_toggles_cleanly() {
            let (_guard, store) = $open.await;
            $crate::conformance::the_same_vote_at_once_toggles_cleanly(store.clone()).await;
            store.shutdown();
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_votes_and_comments_keep_counters_exact() {
            let (_guard, store) = $open.await;
            $crate::conformance::concurrent_votes_and_comments_keep_counters_exact(store.clone())
                .await;
            store.shutdown();
        }
    };
    (@each $open:expr; $($name:ident),+) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $open.await;
                $crate::conformance::$name(store.as_ref()).await;
                store.shutdown();
            }
        )+
    };
}
