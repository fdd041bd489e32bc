//! Agents, keys, follows, the audit log, owners, claims, suspensions and submolts on
//! PostgreSQL, through the `Store` trait: results, error variants and messages, audit
//! events and counters as the SQLite backend gives them, and the caps and counters that
//! must stay exact when several writers run at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::{Value, json};
use tidepool_core::model::agents::{Agent, AgentStatus, KeyScope, NewAgent};
use tidepool_core::model::feed::PageRequest;
use tidepool_core::model::owners::{ClaimOutcome, MAX_SESSIONS, SuspensionLevel};
use tidepool_core::model::submolts::{
    DEFAULT_SUBMOLTS, MAX_MODERATORS, NewSubmolt, Role, SettingsChange, SubmoltSort,
};
use tidepool_store::{AdminClaim, ModerationRecord, Store, StoreError};
use tidepool_store_pg::testing::TestDb;
use tidepool_store_pg::{PgConfig, PgStore, Sql, StatementMode, Type};

const NOW: i64 = 1_700_000_000_000;

async fn open(mode: StatementMode) -> (TestDb, PgStore) {
    let db = TestDb::new().await;
    let mut config: PgConfig = db.config();
    config.statements = mode;
    let store = PgStore::open(&config).await.unwrap();
    (db, store)
}

fn hash(tag: &str) -> Vec<u8> {
    let mut h = [0u8; 32];
    for (i, b) in tag.bytes().enumerate() {
        h[i % 32] ^= b.wrapping_add(i as u8);
    }
    h[31] ^= tag.len() as u8;
    h.to_vec()
}

fn new_agent(name: &str, auto_claim: bool) -> NewAgent {
    NewAgent {
        name: name.to_owned(),
        name_key: name.to_lowercase(),
        description: format!("I am {name}"),
        key_hash: hash(&format!("key-{name}")),
        claim_token_hash: hash(&format!("claim-{name}")),
        claim_expires_at: NOW + 3_600_000,
        verification_code_hash: hash(&format!("code-{name}")),
        auto_claim,
        now: NOW,
    }
}

async fn counter(store: &PgStore, name: &str) -> i64 {
    const COUNTER: Sql = Sql::new(
        "SELECT sum(value)::bigint FROM counters WHERE name = $1",
        &[Type::TEXT],
    );
    store
        .pool()
        .query_one(&COUNTER, &[&name])
        .await
        .unwrap()
        .get(0)
}

/// The newest audit event's name and parsed detail.
async fn last_event(store: &PgStore) -> (String, Option<String>, Value) {
    let e = store.audit_log(1).await.unwrap().remove(0);
    (
        e.event,
        e.agent_name,
        serde_json::from_str(&e.detail).unwrap(),
    )
}

fn refused(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Refused(m)) => m,
        other => panic!("expected Refused, got {other:?}"),
    }
}

fn conflict(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn forbidden(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Forbidden(m)) => m,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

fn not_found(r: Result<impl std::fmt::Debug, StoreError>) -> &'static str {
    match r {
        Err(StoreError::NotFound(w)) => w,
        other => panic!("expected NotFound, got {other:?}"),
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

// ---------------------------------------------------------------------------------------
// Agents and keys

#[tokio::test]
async fn register_look_up_and_update_agents() {
    for mode in [StatementMode::Prepared, StatementMode::Unnamed] {
        let (_db, store) = open(mode).await;
        let before = counter(&store, "agents").await;
        let a = store
            .register_agent(new_agent("Alice", false))
            .await
            .unwrap();
        assert_eq!(a.name, "Alice");
        assert_eq!(a.status, AgentStatus::PendingClaim);
        assert_eq!(a.claimed_at, None);
        assert_eq!(a.created_at, NOW);
        assert_eq!(a.last_active, NOW);
        assert_eq!(a.metadata, "{}");
        assert_eq!(a.vote_weight, 1.0);
        assert_eq!(a.owner_id, None);
        assert_eq!(a.uuid.len(), 36);
        let (event, name, detail) = last_event(&store).await;
        assert_eq!(
            (event.as_str(), name.as_deref()),
            ("key_issued", Some("Alice"))
        );
        assert_eq!(detail, json!({"scope": "full", "reason": "registration"}));

        let b = store.register_agent(new_agent("Bob", true)).await.unwrap();
        assert_eq!(b.status, AgentStatus::Claimed);
        assert_eq!(b.claimed_at, Some(NOW));
        let log = store.audit_log(2).await.unwrap();
        assert_eq!(log[0].event, "agent_claimed");
        assert_eq!(log[0].detail, json!({"by": "auto-claim"}).to_string());
        assert_eq!(log[1].event, "key_issued");
        assert!(log[0].id > log[1].id);

        // Same name key, other case: the SQLite message, and nothing counted.
        let m = conflict(store.register_agent(new_agent("ALICE", false)).await);
        assert_eq!(m, "Name already taken");
        assert_eq!(counter(&store, "agents").await, before + 2);

        assert_eq!(store.agent_by_id(a.id).await.unwrap().unwrap().uuid, a.uuid);
        assert!(store.agent_by_id(a.id + 1000).await.unwrap().is_none());
        assert_eq!(
            store.agent_by_name("alice").await.unwrap().unwrap().id,
            a.id
        );
        assert!(store.agent_by_name("Alice").await.unwrap().is_none());
        let (found, scope) = store
            .agent_by_key_hash(&hash("key-Alice"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.id, scope), (a.id, KeyScope::Full));
        assert!(
            store
                .agent_by_key_hash(&hash("nope"))
                .await
                .unwrap()
                .is_none()
        );

        // None leaves a field alone; last_active moves to the present.
        let u = store
            .update_profile(a.id, Some("new words".into()), None)
            .await
            .unwrap();
        assert_eq!(
            (u.description.as_str(), u.metadata.as_str()),
            ("new words", "{}")
        );
        assert!(u.last_active > NOW);
        let u = store
            .update_profile(a.id, None, Some(r#"{"x":1}"#.into()))
            .await
            .unwrap();
        assert_eq!(
            (u.description.as_str(), u.metadata.as_str()),
            ("new words", r#"{"x":1}"#)
        );
        assert_eq!(
            not_found(store.update_profile(a.id + 1000, None, None).await),
            "Agent"
        );
    }
}

#[tokio::test]
async fn keys_rotate_mint_revoke_and_block() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let a = store.register_agent(new_agent("keys", true)).await.unwrap();

    store.rotate_key(a.id, hash("k2"), NOW + 1).await.unwrap();
    assert!(
        store
            .agent_by_key_hash(&hash("key-keys"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .agent_by_key_hash(&hash("k2"))
            .await
            .unwrap()
            .unwrap()
            .0
            .id,
        a.id
    );
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        ("key_rotated", json!({"revoked": 1}))
    );

    store
        .add_read_key(a.id, hash("r1"), 2, NOW + 2)
        .await
        .unwrap();
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        ("key_issued", json!({"scope": "read"}))
    );
    store
        .add_read_key(a.id, hash("r2"), 2, NOW + 3)
        .await
        .unwrap();
    let m = forbidden(store.add_read_key(a.id, hash("r3"), 2, NOW + 4).await);
    assert_eq!(
        m,
        "This agent already has 2 live read-only keys, the most allowed; revoke one first"
    );
    let (_, scope) = store.agent_by_key_hash(&hash("r1")).await.unwrap().unwrap();
    assert_eq!(scope, KeyScope::Read);
    // A rotation replaces full keys only.
    store.rotate_key(a.id, hash("k3"), NOW + 5).await.unwrap();
    assert!(
        store
            .agent_by_key_hash(&hash("r1"))
            .await
            .unwrap()
            .is_some()
    );

    let keys = store.keys_of(a.id).await.unwrap();
    let scopes: Vec<(&str, bool)> = keys
        .iter()
        .map(|k| (k.scope.as_str(), k.revoked_at.is_some()))
        .collect();
    assert_eq!(
        scopes,
        [
            ("full", false),
            ("read", false),
            ("read", false),
            ("full", true),
            ("full", true)
        ]
    );
    assert!(keys.windows(2).all(|w| w[0].id > w[1].id));

    // Read keys by id: a full key is not one, nor is another agent's.
    let r1 = keys[2].id;
    assert_eq!(
        not_found(store.revoke_read_key(a.id, keys[0].id, NOW + 6).await),
        "Read-only key"
    );
    assert_eq!(
        not_found(store.revoke_read_key(a.id + 1, r1, NOW + 6).await),
        "Read-only key"
    );
    store.revoke_read_key(a.id, r1, NOW + 6).await.unwrap();
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        ("key_revoked", json!({"by": "owner", "scope": "read"}))
    );
    assert_eq!(
        not_found(store.revoke_read_key(a.id, r1, NOW + 7).await),
        "Read-only key"
    );
    // The freed slot can be used again.
    store
        .add_read_key(a.id, hash("r4"), 2, NOW + 8)
        .await
        .unwrap();

    // Leaked keys: each live one revoked once (a repeat is not counted), with its own
    // audit row, then the refusal itself.
    let b = store
        .register_agent(new_agent("other", true))
        .await
        .unwrap();
    let leaked: Vec<[u8; 32]> = [hash("k3"), hash("key-other"), hash("k3"), hash("unknown")]
        .iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect();
    let n = store
        .block_content(leaked, Some(b.id), json!({"where": "post"}), NOW + 9)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let log = store.audit_log(3).await.unwrap();
    assert_eq!(log[0].event, "content_blocked");
    assert_eq!(log[0].agent_name.as_deref(), Some("other"));
    assert_eq!(log[0].detail, r#"{"where":"post"}"#);
    assert_eq!(
        (log[1].event.as_str(), log[1].agent_name.as_deref()),
        ("key_revoked", Some("other"))
    );
    assert_eq!(log[1].detail, r#"{"reason":"leaked in content"}"#);
    assert_eq!(log[2].agent_name.as_deref(), Some("keys"));
    assert!(
        store
            .agent_by_key_hash(&hash("k3"))
            .await
            .unwrap()
            .is_none()
    );
    // Nothing leaked, no agent: only the refusal.
    assert_eq!(
        store
            .block_content(vec![], None, json!({}), NOW + 10)
            .await
            .unwrap(),
        0
    );
    let (event, name, _) = last_event(&store).await;
    assert_eq!((event.as_str(), name), ("content_blocked", None));

    // Owner-side revocation of everything.
    assert_eq!(store.revoke_all_keys(a.id, NOW + 11).await.unwrap(), 2);
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        (
            "key_revoked",
            json!({"by": "owner", "scope": "all", "count": 2})
        )
    );
    assert_eq!(store.revoke_all_keys(a.id, NOW + 12).await.unwrap(), 0);
    assert_eq!(last_event(&store).await.0, "key_revoked");
    assert!(
        store
            .keys_of(a.id)
            .await
            .unwrap()
            .iter()
            .all(|k| k.revoked_at.is_some())
    );
}

#[tokio::test]
async fn keys_of_lists_every_live_key_and_the_newest_revoked() {
    let (_db, store) = open(StatementMode::Unnamed).await;
    let a = store.register_agent(new_agent("many", true)).await.unwrap();
    for i in 0..25 {
        store
            .rotate_key(a.id, hash(&format!("rot{i}")), NOW + i)
            .await
            .unwrap();
    }
    let keys = store.keys_of(a.id).await.unwrap();
    assert_eq!(keys.len(), 21);
    assert!(keys[0].revoked_at.is_none());
    assert!(keys[1..].iter().all(|k| k.revoked_at.is_some()));
    assert!(keys.windows(2).all(|w| w[0].id > w[1].id));
}

#[tokio::test]
async fn audit_and_audit_log() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let a = store.register_agent(new_agent("aud", false)).await.unwrap();
    store
        .audit("custom", Some(a.id), json!({"b": 2, "a": [1, "x"]}))
        .await
        .unwrap();
    store.audit("anon", None, json!({})).await.unwrap();
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].event, "anon");
    assert_eq!(log[0].agent_name, None);
    assert_eq!(log[1].event, "custom");
    assert_eq!(log[1].agent_name.as_deref(), Some("aud"));
    assert_eq!(log[1].detail, json!({"b": 2, "a": [1, "x"]}).to_string());
    assert!(log[0].at >= log[1].at);
    assert_eq!(store.audit_log(0).await.unwrap().len(), 0);
    // SQLite reads a negative limit as none.
    assert_eq!(store.audit_log(-1).await.unwrap().len(), 3);
}

#[tokio::test]
async fn follows_move_counters_once() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let a = store.register_agent(new_agent("fa", true)).await.unwrap();
    let b = store.register_agent(new_agent("fb", true)).await.unwrap();
    assert_eq!(
        refused(store.follow(a.id, a.id, NOW).await),
        "You cannot follow yourself"
    );
    assert!(store.follow(a.id, b.id, NOW + 50).await.unwrap());
    assert!(!store.follow(a.id, b.id, NOW + 60).await.unwrap());
    assert!(store.is_following(a.id, b.id).await.unwrap());
    assert!(!store.is_following(b.id, a.id).await.unwrap());
    let (a1, b1) = (
        store.agent_by_id(a.id).await.unwrap().unwrap(),
        store.agent_by_id(b.id).await.unwrap().unwrap(),
    );
    assert_eq!((a1.following_count, a1.follower_count), (1, 0));
    assert_eq!((b1.following_count, b1.follower_count), (0, 1));
    // The follower is touched (never backwards), the followed is not.
    assert_eq!(a1.last_active, NOW + 60);
    assert_eq!(b1.last_active, NOW);
    store.follow(a.id, b.id, NOW + 10).await.unwrap();
    assert_eq!(
        store.agent_by_id(a.id).await.unwrap().unwrap().last_active,
        NOW + 60
    );

    assert!(store.unfollow(a.id, b.id).await.unwrap());
    assert!(!store.unfollow(a.id, b.id).await.unwrap());
    let (a2, b2) = (
        store.agent_by_id(a.id).await.unwrap().unwrap(),
        store.agent_by_id(b.id).await.unwrap().unwrap(),
    );
    assert_eq!((a2.following_count, b2.follower_count), (0, 0));
}

#[tokio::test]
async fn admin_claims() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let a = store.register_agent(new_agent("op", false)).await.unwrap();
    assert_eq!(
        not_found(
            store
                .admin_claim(
                    "nobody",
                    AdminClaim::WithoutOwner { link_expires_at: 0 },
                    NOW
                )
                .await
        ),
        "Agent"
    );

    // Without an owner: claimed, link kept usable until at least the given time.
    let later = NOW + 7 * 24 * 3_600_000;
    let (agent, owner) = store
        .admin_claim(
            "op",
            AdminClaim::WithoutOwner {
                link_expires_at: later,
            },
            NOW + 1,
        )
        .await
        .unwrap();
    assert!(owner.is_none());
    assert_eq!(agent.status, AgentStatus::Claimed);
    assert_eq!(agent.claimed_at, Some(NOW + 1));
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        ("agent_claimed", json!({"by": "operator", "owner": null}))
    );
    // The claim link still finds it (its expiry moved to `later`).
    assert_eq!(
        store
            .agent_by_claim_token(&hash("claim-op"), later - 1)
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
    assert_eq!(
        conflict(
            store
                .admin_claim("op", AdminClaim::WithoutOwner { link_expires_at: 0 }, NOW)
                .await
        ),
        "Agent op is already claimed"
    );

    // For an owner.
    let m = refused(
        store
            .admin_claim(
                "op",
                AdminClaim::ForOwner {
                    email: "who@example.com".into(),
                    cap: 5,
                },
                NOW,
            )
            .await,
    );
    assert_eq!(
        m,
        "no owner account who@example.com (create it with `tidepool admin create-owner`)"
    );
    let o = store
        .create_owner("Boss@Example.com", "phc", false, NOW)
        .await
        .unwrap();
    let (agent, owner) = store
        .admin_claim(
            "op",
            AdminClaim::ForOwner {
                email: "boss@example.COM".into(),
                cap: 5,
            },
            NOW + 2,
        )
        .await
        .unwrap();
    assert_eq!(owner.unwrap().id, o.id);
    assert_eq!(agent.owner_id, Some(o.id));
    // The earlier operator claim keeps its time.
    assert_eq!(agent.claimed_at, Some(NOW + 1));
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        ("agent_claimed", json!({"by": "operator", "owner": o.id}))
    );
    assert!(
        store
            .agent_by_claim_token(&hash("claim-op"), NOW)
            .await
            .unwrap()
            .is_none()
    );
    let for_boss = || AdminClaim::ForOwner {
        email: "boss@example.com".into(),
        cap: 2,
    };
    assert_eq!(
        conflict(store.admin_claim("op", for_boss(), NOW).await),
        "Agent op already has an owner"
    );

    // The owner cap.
    store.register_agent(new_agent("op2", false)).await.unwrap();
    store.register_agent(new_agent("op3", false)).await.unwrap();
    store.admin_claim("op2", for_boss(), NOW).await.unwrap();
    assert_eq!(
        refused(store.admin_claim("op3", for_boss(), NOW).await),
        "You already own 2 agents, the most one owner may have"
    );

    // Suspended or deleted agents cannot be claimed.
    store
        .set_suspended(
            a.id,
            SuspensionLevel::Owner,
            Some(("owner".into(), "why".into())),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        refused(store.admin_claim("op", for_boss(), NOW).await),
        "Agent op is suspended, so it cannot be claimed"
    );
    let op3 = store.agent_by_name("op3").await.unwrap().unwrap();
    store.delete_agent(op3.id, NOW).await.unwrap();
    assert_eq!(
        refused(
            store
                .admin_claim("op3", AdminClaim::WithoutOwner { link_expires_at: 0 }, NOW)
                .await
        ),
        "Agent op3 is deleted, so it cannot be claimed"
    );
}

// ---------------------------------------------------------------------------------------
// Owners

#[tokio::test]
async fn owners_and_sessions() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let o = store
        .create_owner("Ann@Example.com", "hash1", true, NOW)
        .await
        .unwrap();
    assert_eq!(
        (
            o.email.as_str(),
            o.password_hash.as_str(),
            o.is_admin,
            o.created_at
        ),
        ("Ann@Example.com", "hash1", true, NOW)
    );
    assert_eq!(
        conflict(store.create_owner("ann@example.com", "x", false, NOW).await),
        "An account with this email already exists"
    );
    assert_eq!(
        store
            .owner_by_email("ANN@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        o.id
    );
    assert!(store.owner_by_email("x@y").await.unwrap().is_none());
    let plain = store
        .create_owner("plain@example.com", "h", false, NOW)
        .await
        .unwrap();
    assert!(!plain.is_admin);

    store
        .create_session(hash("s1"), o.id, NOW, NOW + 100)
        .await
        .unwrap();
    assert_eq!(
        store
            .session_owner(&hash("s1"), NOW + 99)
            .await
            .unwrap()
            .unwrap()
            .id,
        o.id
    );
    assert!(
        store
            .session_owner(&hash("s1"), NOW + 100)
            .await
            .unwrap()
            .is_none()
    );
    store.delete_session(&hash("s1")).await.unwrap();
    assert!(
        store
            .session_owner(&hash("s1"), NOW)
            .await
            .unwrap()
            .is_none()
    );
    store.delete_session(&hash("s1")).await.unwrap();

    // A new password ends every session.
    store
        .create_session(hash("s2"), o.id, NOW, NOW + 100)
        .await
        .unwrap();
    store.set_password(o.id, "hash2").await.unwrap();
    assert!(
        store
            .session_owner(&hash("s2"), NOW)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .owner_by_email("ann@example.com")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "hash2"
    );

    // At most MAX_SESSIONS live sessions: the oldest go first; expired ones go when a new
    // one starts.
    for i in 0..MAX_SESSIONS + 3 {
        store
            .create_session(hash(&format!("m{i}")), o.id, NOW + i, NOW + 1_000_000)
            .await
            .unwrap();
    }
    for i in 0..3 {
        assert!(
            store
                .session_owner(&hash(&format!("m{i}")), NOW)
                .await
                .unwrap()
                .is_none()
        );
    }
    for i in 3..MAX_SESSIONS + 3 {
        assert!(
            store
                .session_owner(&hash(&format!("m{i}")), NOW)
                .await
                .unwrap()
                .is_some()
        );
    }
    const SESSIONS: Sql = Sql::new(
        "SELECT count(*) FROM sessions WHERE owner_id = $1",
        &[Type::INT8],
    );
    store
        .create_session(hash("short"), plain.id, NOW, NOW + 1)
        .await
        .unwrap();
    store
        .create_session(hash("next"), plain.id, NOW + 5, NOW + 100)
        .await
        .unwrap();
    let n: i64 = store
        .pool()
        .query_one(&SESSIONS, &[&plain.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn claims_with_token() {
    let (_db, store) = open(StatementMode::Unnamed).await;
    let o = store
        .create_owner("c@example.com", "h", false, NOW)
        .await
        .unwrap();
    let a = store.register_agent(new_agent("cl", false)).await.unwrap();
    assert_eq!(store.owner_of(a.id).await.unwrap(), None);
    assert_eq!(store.owner_of(a.id + 100).await.unwrap(), None);
    assert_eq!(
        store
            .agent_by_claim_token(&hash("claim-cl"), NOW)
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
    // Expired.
    assert!(
        store
            .agent_by_claim_token(&hash("claim-cl"), NOW + 3_600_000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        refused(
            store
                .claim_with_token(hash("claim-cl"), hash("code-cl"), o.id, 5, NOW + 3_600_000)
                .await
        ),
        "This claim link is invalid, used or expired"
    );

    // A wrong code is an outcome, and its audit row stays.
    let wrong = store
        .claim_with_token(hash("claim-cl"), hash("bad"), o.id, 5, NOW)
        .await
        .unwrap();
    assert!(matches!(wrong, ClaimOutcome::WrongCode));
    let (event, name, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), name.as_deref(), detail),
        ("claim_code_wrong", Some("cl"), json!({"owner": o.id}))
    );

    // The cap refuses (rolled back: the link still works afterwards).
    assert_eq!(
        refused(
            store
                .claim_with_token(hash("claim-cl"), hash("code-cl"), o.id, 0, NOW)
                .await
        ),
        "You already own 0 agents, the most one owner may have"
    );
    let ClaimOutcome::Claimed(agent) = store
        .claim_with_token(hash("claim-cl"), hash("code-cl"), o.id, 5, NOW + 7)
        .await
        .unwrap()
    else {
        panic!("not claimed")
    };
    assert_eq!(agent.status, AgentStatus::Claimed);
    assert_eq!(agent.owner_id, Some(o.id));
    assert_eq!(agent.claimed_at, Some(NOW + 7));
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        ("agent_claimed", json!({"by": "owner", "owner": o.id}))
    );
    assert_eq!(store.owner_of(a.id).await.unwrap(), Some(o.id));
    // Single use.
    assert_eq!(
        refused(
            store
                .claim_with_token(hash("claim-cl"), hash("code-cl"), o.id, 5, NOW)
                .await
        ),
        "This claim link is invalid, used or expired"
    );
    let mine = store.agents_of(o.id).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, a.id);
    assert!(store.agents_of(o.id + 100).await.unwrap().is_empty());

    // An auto-claimed agent without owner can still be claimed through its link.
    let b = store.register_agent(new_agent("auto", true)).await.unwrap();
    assert!(matches!(
        store
            .claim_with_token(hash("claim-auto"), hash("code-auto"), o.id, 5, NOW)
            .await
            .unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    let ids: Vec<i64> = store
        .agents_of(o.id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, [a.id, b.id]);
}

#[tokio::test]
async fn suspensions_and_deletion() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let pending = store
        .register_agent(new_agent("pend", false))
        .await
        .unwrap();
    let a = store.register_agent(new_agent("sus", true)).await.unwrap();
    let owner_suspends = || Some(("owner".to_owned(), "my reasons".to_owned()));

    assert_eq!(
        not_found(
            store
                .set_suspended(a.id + 100, SuspensionLevel::Owner, None, None)
                .await
        ),
        "Agent"
    );
    assert_eq!(
        refused(
            store
                .set_suspended(pending.id, SuspensionLevel::Owner, owner_suspends(), None)
                .await
        ),
        "pend is pending_claim, so it cannot be suspended"
    );
    assert_eq!(
        refused(
            store
                .set_suspended(a.id, SuspensionLevel::Owner, None, None)
                .await
        ),
        "sus is claimed, so it cannot be resumed"
    );
    assert!(store.suspension_of(a.id).await.unwrap().is_none());
    assert!(store.suspension_of(a.id + 100).await.unwrap().is_none());

    let s = store
        .set_suspended(a.id, SuspensionLevel::Owner, owner_suspends(), None)
        .await
        .unwrap();
    assert_eq!(s.status, AgentStatus::Suspended);
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        ("agent_suspended", json!({"by": "owner", "actor": "owner"}))
    );
    let sus = store.suspension_of(a.id).await.unwrap().unwrap();
    assert_eq!(
        (sus.level, sus.actor.as_str(), sus.reason.as_str()),
        (SuspensionLevel::Owner, "owner", "my reasons")
    );
    assert_eq!(
        refused(
            store
                .set_suspended(a.id, SuspensionLevel::Owner, owner_suspends(), None)
                .await
        ),
        "sus is already suspended"
    );
    // A moderator raises it, with a public log entry in the same transaction.
    let record = ModerationRecord {
        actor: "mod-7".into(),
        action: "suspend".into(),
        target_kind: "agent".into(),
        target: a.uuid.clone(),
        reason: "spam".into(),
        now: NOW + 5,
    };
    store
        .set_suspended(
            a.id,
            SuspensionLevel::Moderator,
            Some(("mod-7".into(), "spam".into())),
            Some(record),
        )
        .await
        .unwrap();
    const MOD_LOG: Sql = Sql::new(
        "SELECT at, actor, action, target_kind, target, reason FROM mod_log ORDER BY id DESC LIMIT 1",
        &[],
    );
    let row = store.pool().query_one(&MOD_LOG, &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), NOW + 5);
    assert_eq!(row.get::<_, String>(1), "mod-7");
    assert_eq!(row.get::<_, String>(4), a.uuid);
    assert_eq!(
        store.suspension_of(a.id).await.unwrap().unwrap().level,
        SuspensionLevel::Moderator
    );
    assert_eq!(
        refused(
            store
                .set_suspended(a.id, SuspensionLevel::Owner, None, None)
                .await
        ),
        "sus was suspended by a moderator; only a moderator can lift it"
    );
    let r = store
        .set_suspended(a.id, SuspensionLevel::Moderator, None, None)
        .await
        .unwrap();
    assert_eq!(r.status, AgentStatus::Claimed);
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        ("agent_resumed", json!({"by": "moderator"}))
    );
    assert!(store.suspension_of(a.id).await.unwrap().is_none());

    // Deletion: keys revoked, profile emptied, name kept.
    store
        .update_profile(a.id, Some("desc".into()), Some(r#"{"k":1}"#.into()))
        .await
        .unwrap();
    store.delete_agent(a.id, NOW + 9).await.unwrap();
    let d = store.agent_by_id(a.id).await.unwrap().unwrap();
    assert_eq!(d.status, AgentStatus::Deleted);
    assert_eq!((d.description.as_str(), d.metadata.as_str()), ("", "{}"));
    assert_eq!(d.name, "sus");
    assert!(
        store
            .agent_by_key_hash(&hash("key-sus"))
            .await
            .unwrap()
            .is_none()
    );
    let (event, _, detail) = last_event(&store).await;
    assert_eq!(
        (event.as_str(), detail),
        ("agent_deleted", json!({"by": "owner"}))
    );
    assert_eq!(
        refused(
            store
                .set_suspended(a.id, SuspensionLevel::Owner, owner_suspends(), None)
                .await
        ),
        "sus is deleted, so it cannot be suspended"
    );
}

#[tokio::test]
async fn owner_views_events_moderation_and_admin() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let admin = store
        .create_owner("admin@example.com", "h", true, NOW)
        .await
        .unwrap();
    let user = store
        .create_owner("user@example.com", "h", false, NOW)
        .await
        .unwrap();
    let a = store.register_agent(new_agent("ev1", false)).await.unwrap();
    let b = store.register_agent(new_agent("ev2", false)).await.unwrap();
    let c = store.register_agent(new_agent("ev3", false)).await.unwrap();
    for (agent, owner) in [(&a, &admin), (&b, &user)] {
        store
            .claim_with_token(
                hash(&format!("claim-{}", agent.name)),
                hash(&format!("code-{}", agent.name)),
                owner.id,
                5,
                NOW,
            )
            .await
            .unwrap();
    }
    assert!(store.owned_by_admin(a.id).await.unwrap());
    assert!(!store.owned_by_admin(b.id).await.unwrap());
    assert!(!store.owned_by_admin(c.id).await.unwrap());
    assert!(!store.owned_by_admin(c.id + 100).await.unwrap());

    store.audit("x", Some(a.id), json!({"n": 1})).await.unwrap();
    store.audit("y", Some(c.id), json!({"n": 2})).await.unwrap();
    store.audit("z", Some(b.id), json!({"n": 3})).await.unwrap();
    let ev = store.events_of(vec![a.id, b.id], 10).await.unwrap();
    let names: Vec<(&str, &str)> = ev
        .iter()
        .map(|e| (e.event.as_str(), e.agent_name.as_deref().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("z", "ev2"),
            ("x", "ev1"),
            ("agent_claimed", "ev2"),
            ("agent_claimed", "ev1"),
            ("key_issued", "ev2"),
            ("key_issued", "ev1")
        ]
    );
    assert!(ev.windows(2).all(|w| w[0].id > w[1].id));
    let ev = store.events_of(vec![a.id, b.id], 3).await.unwrap();
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[2].event, "agent_claimed");
    assert!(store.events_of(vec![], 3).await.unwrap().is_empty());

    // Moderated submolts: through any of the owner's agents, deduplicated and sorted.
    let s1 = store
        .create_submolt(new_submolt("zeta", b.id))
        .await
        .unwrap();
    let s2 = store
        .create_submolt(new_submolt("alpha", a.id))
        .await
        .unwrap();
    store.add_moderator(s1.id, a.id, NOW).await.unwrap();
    assert_eq!(
        store.moderated_submolts(admin.id).await.unwrap(),
        [s1.id.min(s2.id), s1.id.max(s2.id)]
    );
    assert_eq!(store.moderated_submolts(user.id).await.unwrap(), [s1.id]);
    assert!(
        store
            .moderated_submolts(user.id + 100)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// Submolts

fn new_submolt(name: &str, creator: i64) -> NewSubmolt {
    NewSubmolt {
        name: name.to_owned(),
        display_name: name.to_uppercase(),
        description: format!("about {name}"),
        allow_crypto: false,
        creator_id: creator,
        now: NOW,
    }
}

#[tokio::test]
async fn defaults_exist_once() {
    let db = TestDb::new().await;
    // Several nodes starting at once on a fresh database.
    let mut opens = Vec::new();
    for i in 0..6 {
        let mut config = db.config();
        config.statements = if i % 2 == 0 {
            StatementMode::Prepared
        } else {
            StatementMode::Unnamed
        };
        opens.push(tokio::spawn(async move {
            PgStore::open(&config).await.unwrap()
        }));
    }
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap());
    }
    let store = &stores[0];
    assert_eq!(counter(store, "submolts").await, 3);
    for (name, display, description) in DEFAULT_SUBMOLTS {
        let s = store.submolt_by_name(name).await.unwrap().unwrap();
        assert_eq!(
            (s.display_name.as_str(), s.description.as_str()),
            (*display, *description)
        );
        assert_eq!(s.created_by, None);
        assert!(!s.allow_crypto);
    }
    // And again on an existing database.
    PgStore::open(&db.config()).await.unwrap();
    assert_eq!(counter(store, "submolts").await, 3);
    // A missing default comes back, counted once.
    const DROP_ONE: Sql = Sql::new("DELETE FROM submolts WHERE name = 'announcements'", &[]);
    store.pool().execute(&DROP_ONE, &[]).await.unwrap();
    PgStore::open(&db.config()).await.unwrap();
    assert_eq!(counter(store, "submolts").await, 4);
    assert!(
        store
            .submolt_by_name("announcements")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn submolts_create_subscribe_and_settings() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let a = store
        .register_agent(new_agent("maker", true))
        .await
        .unwrap();
    let b = store
        .register_agent(new_agent("reader", true))
        .await
        .unwrap();
    let mut new = new_submolt("rust", a.id);
    new.allow_crypto = true;
    let s = store.create_submolt(new).await.unwrap();
    assert_eq!(
        (
            s.name.as_str(),
            s.display_name.as_str(),
            s.description.as_str()
        ),
        ("rust", "RUST", "about rust")
    );
    assert!(s.allow_crypto);
    assert_eq!(s.subscriber_count, 1);
    assert_eq!(s.created_by, Some((a.uuid.clone(), "maker".to_owned())));
    assert_eq!((s.created_at, s.last_activity_at), (NOW, NOW));
    assert_eq!(counter(&store, "submolts").await, 4);
    assert_eq!(
        store.role_of(s.id, a.id).await.unwrap().map(Role::as_str),
        Some("owner")
    );
    assert!(store.is_subscribed(a.id, s.id).await.unwrap());
    assert_eq!(
        store
            .agent_by_id(a.id)
            .await
            .unwrap()
            .unwrap()
            .subscription_count,
        1
    );
    assert_eq!(
        conflict(store.create_submolt(new_submolt("rust", b.id)).await),
        "Submolt name already taken"
    );
    assert_eq!(counter(&store, "submolts").await, 4);
    assert_eq!(
        store.submolt_by_id(s.id).await.unwrap().unwrap().name,
        "rust"
    );
    assert!(store.submolt_by_id(s.id + 100).await.unwrap().is_none());
    assert_eq!(
        store.submolt_by_name("rust").await.unwrap().unwrap().id,
        s.id
    );
    assert!(store.submolt_by_name("Rust").await.unwrap().is_none());

    assert!(store.subscribe(b.id, s.id, NOW).await.unwrap());
    assert!(!store.subscribe(b.id, s.id, NOW).await.unwrap());
    assert_eq!(
        store
            .submolt_by_id(s.id)
            .await
            .unwrap()
            .unwrap()
            .subscriber_count,
        2
    );
    assert!(store.unsubscribe(b.id, s.id).await.unwrap());
    assert!(!store.unsubscribe(b.id, s.id).await.unwrap());
    assert!(!store.is_subscribed(b.id, s.id).await.unwrap());
    assert_eq!(
        store
            .submolt_by_id(s.id)
            .await
            .unwrap()
            .unwrap()
            .subscriber_count,
        1
    );
    assert_eq!(
        store
            .agent_by_id(b.id)
            .await
            .unwrap()
            .unwrap()
            .subscription_count,
        0
    );
    assert_eq!(store.role_of(s.id, b.id).await.unwrap(), None);

    let u = store
        .update_submolt(
            s.id,
            SettingsChange {
                display_name: Some("Rustaceans".into()),
                banner_color: Some("#000000".into()),
                allow_crypto: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.display_name, "Rustaceans");
    assert_eq!(u.description, "about rust");
    assert_eq!(u.banner_color.as_deref(), Some("#000000"));
    assert_eq!(u.theme_color, None);
    assert!(!u.allow_crypto);
    assert_eq!(u.created_by, s.created_by);
    let u = store
        .update_submolt(s.id, SettingsChange::default())
        .await
        .unwrap();
    assert_eq!(u.display_name, "Rustaceans");
    assert_eq!(
        not_found(
            store
                .update_submolt(s.id + 100, SettingsChange::default())
                .await
        ),
        "Submolt"
    );
}

#[tokio::test]
async fn moderators_roles_and_caps() {
    let (_db, store) = open(StatementMode::Unnamed).await;
    let owner = store.register_agent(new_agent("own", true)).await.unwrap();
    let s = store
        .create_submolt(new_submolt("modded", owner.id))
        .await
        .unwrap();
    let m1 = store.register_agent(new_agent("m1", true)).await.unwrap();
    let m2 = store.register_agent(new_agent("m2", true)).await.unwrap();
    assert_eq!(
        refused(store.add_moderator(s.id, owner.id, NOW).await),
        "The owner is already a moderator"
    );
    assert!(store.add_moderator(s.id, m2.id, NOW + 2).await.unwrap());
    assert!(store.add_moderator(s.id, m1.id, NOW + 1).await.unwrap());
    assert!(!store.add_moderator(s.id, m1.id, NOW + 3).await.unwrap());
    assert_eq!(
        store.role_of(s.id, m1.id).await.unwrap().map(Role::as_str),
        Some("moderator")
    );
    let mods: Vec<(String, String, i64)> = store
        .moderators(s.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.role.as_str().to_owned(), m.created_at))
        .collect();
    assert_eq!(
        mods,
        [
            ("own".into(), "owner".into(), NOW),
            ("m1".into(), "moderator".into(), NOW + 1),
            ("m2".into(), "moderator".into(), NOW + 2)
        ]
    );
    assert_eq!(store.moderators(s.id).await.unwrap()[1].agent_uuid, m1.uuid);

    assert_eq!(
        refused(store.remove_moderator(s.id, owner.id).await),
        "The owner cannot be removed"
    );
    assert!(store.remove_moderator(s.id, m1.id).await.unwrap());
    assert!(!store.remove_moderator(s.id, m1.id).await.unwrap());
    assert_eq!(store.role_of(s.id, m1.id).await.unwrap(), None);

    // The cap counts the owner too.
    let mut extra = Vec::new();
    for i in 0..MAX_MODERATORS {
        extra.push(
            store
                .register_agent(new_agent(&format!("x{i}"), true))
                .await
                .unwrap(),
        );
    }
    for a in &extra[..(MAX_MODERATORS - 2) as usize] {
        assert!(store.add_moderator(s.id, a.id, NOW).await.unwrap());
    }
    assert_eq!(
        store.moderators(s.id).await.unwrap().len() as i64,
        MAX_MODERATORS
    );
    assert_eq!(
        refused(
            store
                .add_moderator(s.id, extra[MAX_MODERATORS as usize - 1].id, NOW)
                .await
        ),
        format!("A submolt can have at most {MAX_MODERATORS} moderators")
    );
}

#[tokio::test]
async fn submolt_listings_page_by_keyset_and_offset() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let mut agents = Vec::new();
    for i in 0..4 {
        agents.push(
            store
                .register_agent(new_agent(&format!("lister{i}"), true))
                .await
                .unwrap(),
        );
    }
    // Names whose bytewise order differs from a natural-language collation's.
    let names = ["b_x", "bx", "a-z", "az", "zz", "b1"];
    for (i, name) in names.iter().enumerate() {
        let mut new = new_submolt(name, agents[0].id);
        new.now = NOW + i as i64 * 1000;
        let s = store.create_submolt(new).await.unwrap();
        for a in agents.iter().skip(1).take(i % 4) {
            store.subscribe(a.id, s.id, NOW).await.unwrap();
        }
    }
    for sort in SubmoltSort::ALL {
        let all = store.list_submolts(sort, page(100)).await.unwrap();
        assert!(!all.has_more);
        assert_eq!(all.items.len(), 9);
        let expected: Vec<(String, i64)> = {
            let mut v: Vec<_> = all.items.to_vec();
            match sort {
                SubmoltSort::Popular => {
                    v.sort_by_key(|s| std::cmp::Reverse((s.subscriber_count, s.id)))
                }
                SubmoltSort::New => v.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id))),
                SubmoltSort::Alphabetical => {
                    v.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()))
                }
            }
            v.into_iter().map(|s| (s.name, s.id)).collect()
        };
        let got: Vec<(String, i64)> = all.items.iter().map(|s| (s.name.clone(), s.id)).collect();
        assert_eq!(got, expected, "{sort:?}");

        // Keyset pages of 2 walk the same order without gaps or repeats.
        let mut walked = Vec::new();
        let mut req = page(2);
        loop {
            let p = store.list_submolts(sort, req.clone()).await.unwrap();
            walked.extend(p.items.iter().map(|s| (s.name.clone(), s.id)));
            if !p.has_more {
                assert!(p.next_cursor.is_none());
                break;
            }
            let c = p.next_cursor.unwrap();
            assert_eq!(c.listing.as_deref(), Some(sort.cursor_listing()));
            req.after = Some((c.key.unwrap(), c.id.unwrap()));
        }
        assert_eq!(walked, expected, "{sort:?} keyset");

        // Offsets.
        let mut req = page(4);
        req.offset = 4;
        let p = store.list_submolts(sort, req).await.unwrap();
        assert!(p.has_more);
        assert_eq!(p.next_offset, Some(8));
        let got: Vec<_> = p.items.iter().map(|s| (s.name.clone(), s.id)).collect();
        assert_eq!(got, expected[4..8]);
    }
    let alpha: Vec<String> = store
        .list_submolts(SubmoltSort::Alphabetical, page(100))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        alpha,
        [
            "a-z",
            "announcements",
            "az",
            "b1",
            "b_x",
            "bx",
            "general",
            "introductions",
            "zz"
        ]
    );

    // A fractional popular key (a hand-made cursor) compares numerically, as in SQLite:
    // key 1.5 means "fewer than 2 subscribers".
    let mut req = page(100);
    req.after = Some((1.5, 0));
    let p = store
        .list_submolts(SubmoltSort::Popular, req)
        .await
        .unwrap();
    assert!(!p.items.is_empty());
    assert!(p.items.iter().all(|s| s.subscriber_count <= 1));
    assert_eq!(
        p.items.len(),
        store
            .list_submolts(SubmoltSort::Popular, page(100))
            .await
            .unwrap()
            .items
            .iter()
            .filter(|s| s.subscriber_count <= 1)
            .count()
    );
    // An unknown id in an alphabetical cursor: nothing after it.
    let mut req = page(100);
    req.after = Some((0.0, 999_999));
    assert!(
        store
            .list_submolts(SubmoltSort::Alphabetical, req)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A zero or negative page size gives no items, only the look-ahead answer.
    let p = store
        .list_submolts(SubmoltSort::New, page(0))
        .await
        .unwrap();
    assert!(p.items.is_empty() && p.has_more);
}

// ---------------------------------------------------------------------------------------
// Concurrency: caps and counters stay exact with many writers.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_caps_and_counters_exact() {
    let (_db, store) = open(StatementMode::Prepared).await;
    let store = Arc::new(store);
    let target = store.register_agent(new_agent("star", true)).await.unwrap();
    let mut fans: Vec<Agent> = Vec::new();
    for i in 0..8 {
        fans.push(
            store
                .register_agent(new_agent(&format!("fan{i}"), true))
                .await
                .unwrap(),
        );
    }

    // 8 read-key mints against a cap of 5.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let id = target.id;
        tasks.push(tokio::spawn(async move {
            store
                .add_read_key(id, hash(&format!("rk{i}")), 5, NOW)
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Forbidden(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 5);
    let live_read = store
        .keys_of(target.id)
        .await
        .unwrap()
        .iter()
        .filter(|k| k.scope == "read" && k.revoked_at.is_none())
        .count();
    assert_eq!(live_read, 5);

    // 8 rotations at once: exactly one full key stays live.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let id = target.id;
        tasks.push(tokio::spawn(async move {
            store.rotate_key(id, hash(&format!("rot{i}")), NOW).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let live_full = store
        .keys_of(target.id)
        .await
        .unwrap()
        .iter()
        .filter(|k| k.scope == "full" && k.revoked_at.is_none())
        .count();
    assert_eq!(live_full, 1);

    // 8 fans follow the star, each twice, and the star follows them back (opposite lock
    // directions at once).
    let mut tasks = Vec::new();
    for f in &fans {
        for (a, b) in [(f.id, target.id), (f.id, target.id), (target.id, f.id)] {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.follow(a, b, NOW).await }));
        }
    }
    let mut new_follows = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            new_follows += 1;
        }
    }
    assert_eq!(new_follows, 16);
    let star = store.agent_by_id(target.id).await.unwrap().unwrap();
    assert_eq!((star.follower_count, star.following_count), (8, 8));
    for f in &fans {
        let f = store.agent_by_id(f.id).await.unwrap().unwrap();
        assert_eq!((f.follower_count, f.following_count), (1, 1));
    }

    // Subscriptions: everyone at once, each twice.
    let s = store
        .create_submolt(new_submolt("busy", target.id))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for f in fans.iter().chain(fans.iter()) {
        let (store, id, sid) = (store.clone(), f.id, s.id);
        tasks.push(tokio::spawn(
            async move { store.subscribe(id, sid, NOW).await },
        ));
    }
    let mut subscribed = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            subscribed += 1;
        }
    }
    assert_eq!(subscribed, 8);
    assert_eq!(
        store
            .submolt_by_id(s.id)
            .await
            .unwrap()
            .unwrap()
            .subscriber_count,
        9
    );

    // Moderators: 8 appointments with room for 3 (the cap counts everyone present).
    let mut fillers = Vec::new();
    for i in 0..(MAX_MODERATORS - 4) {
        fillers.push(
            store
                .register_agent(new_agent(&format!("fill{i}"), true))
                .await
                .unwrap(),
        );
    }
    for f in &fillers {
        store.add_moderator(s.id, f.id, NOW).await.unwrap();
    }
    let mut tasks = Vec::new();
    for f in &fans {
        let (store, id, sid) = (store.clone(), f.id, s.id);
        tasks.push(tokio::spawn(async move {
            store.add_moderator(sid, id, NOW).await
        }));
    }
    let mut added = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => added += 1,
            Err(StoreError::Refused(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(added, 3);
    assert_eq!(
        store.moderators(s.id).await.unwrap().len() as i64,
        MAX_MODERATORS
    );

    // Concurrent removals of one moderator: exactly one says it removed.
    let removed_one = fillers[0].id;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, sid) = (store.clone(), s.id);
        tasks.push(tokio::spawn(async move {
            store.remove_moderator(sid, removed_one).await
        }));
    }
    let mut removed = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            removed += 1;
        }
    }
    assert_eq!(removed, 1);

    // Claims for one owner with a cap of 3: 8 agents claimed at once.
    let o = store
        .create_owner("many@example.com", "h", false, NOW)
        .await
        .unwrap();
    let mut claimable = Vec::new();
    for i in 0..8 {
        claimable.push(
            store
                .register_agent(new_agent(&format!("cl{i}"), false))
                .await
                .unwrap(),
        );
    }
    let mut tasks = Vec::new();
    for a in &claimable {
        let (store, name, oid) = (store.clone(), a.name.clone(), o.id);
        tasks.push(tokio::spawn(async move {
            store
                .claim_with_token(
                    hash(&format!("claim-{name}")),
                    hash(&format!("code-{name}")),
                    oid,
                    3,
                    NOW,
                )
                .await
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(ClaimOutcome::Claimed(_)) => claimed += 1,
            Err(StoreError::Refused(m)) => {
                assert_eq!(m, "You already own 3 agents, the most one owner may have")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(claimed, 3);
    assert_eq!(store.agents_of(o.id).await.unwrap().len(), 3);

    // One claim link used 8 times at once: one claim.
    let single = store
        .register_agent(new_agent("once", false))
        .await
        .unwrap();
    let owners: Vec<i64> = {
        let mut v = Vec::new();
        for i in 0..8 {
            v.push(
                store
                    .create_owner(&format!("o{i}@example.com"), "h", false, NOW)
                    .await
                    .unwrap()
                    .id,
            );
        }
        v
    };
    let mut tasks = Vec::new();
    for oid in owners {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_with_token(hash("claim-once"), hash("code-once"), oid, 5, NOW)
                .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(ClaimOutcome::Claimed(_)) => winners += 1,
            Err(StoreError::Refused(m)) => {
                assert_eq!(m, "This claim link is invalid, used or expired")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert!(store.owner_of(single.id).await.unwrap().is_some());

    // Logins: the session cap holds with many at once.
    let mut tasks = Vec::new();
    for i in 0..(MAX_SESSIONS + 8) {
        let (store, oid) = (store.clone(), o.id);
        tasks.push(tokio::spawn(async move {
            store
                .create_session(hash(&format!("sess{i}")), oid, NOW + i, NOW + 1_000_000)
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    const SESSIONS: Sql = Sql::new(
        "SELECT count(*) FROM sessions WHERE owner_id = $1",
        &[Type::INT8],
    );
    let n: i64 = store
        .pool()
        .query_one(&SESSIONS, &[&o.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, MAX_SESSIONS);

    // Registrations of one name at once: one wins, the rest get the SQLite message, and
    // the agents counter moved once.
    let before = counter(&store, "agents").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = new_agent(if i % 2 == 0 { "Dup" } else { "dup" }, false);
            n.key_hash = hash(&format!("dupkey{i}"));
            n.claim_token_hash = hash(&format!("dupclaim{i}"));
            store.register_agent(n).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict(m)) => assert_eq!(m, "Name already taken"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(counter(&store, "agents").await, before + 1);
}
