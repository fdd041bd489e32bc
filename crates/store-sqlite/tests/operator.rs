//! What operators do to a store from the command line: claiming agents with or without an
//! owner, and opening a database a newer tidepool wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tidepool_store_sqlite::agents::{self, AgentStatus, NewAgent};
use tidepool_store_sqlite::{DbError, SqliteStore, StoreOptions, owners, schema};

const NOW: i64 = 1_772_366_400_000;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
    (dir, store)
}

/// An unclaimed agent whose claim link expires an hour after `NOW`.
fn register(store: &SqliteStore, name: &str) {
    let new = NewAgent {
        name: name.into(),
        name_key: name.to_ascii_lowercase(),
        description: String::new(),
        key_hash: format!("key-{name}").into_bytes(),
        claim_token_hash: format!("claim-{name}").into_bytes(),
        claim_expires_at: NOW + 3_600_000,
        verification_code_hash: format!("code-{name}").into_bytes(),
        auto_claim: false,
        now: NOW,
    };
    store.write_blocking(|c| agents::register(c, new)).unwrap();
}

fn owner(store: &SqliteStore, email: &str) -> i64 {
    let email = email.to_owned();
    store
        .write_blocking(move |c| owners::create(c, &email, "hash", false, NOW))
        .unwrap()
        .id
}

fn claimable_by_link(store: &SqliteStore, name: &str, at: i64) -> bool {
    let token = format!("claim-{name}").into_bytes();
    store
        .read(move |c| owners::agent_by_claim_token(c, &token, at))
        .unwrap()
        .is_some()
}

fn last_audit(store: &SqliteStore) -> (String, String) {
    let e = store.read(|c| agents::audit_log(c, 1)).unwrap().remove(0);
    (e.event, e.detail)
}

#[test]
fn an_agent_claimed_without_owner_can_write_and_keeps_its_claim_link() {
    let (_dir, store) = open();
    register(&store, "Drifter");
    // The operator's claim renews the link beyond its first expiry.
    let until = NOW + 10 * 3_600_000;
    let a = store
        .write_blocking(move |c| agents::claim_without_owner(c, "drifter", until, NOW + 1))
        .unwrap();
    assert_eq!(a.status, AgentStatus::Claimed);
    assert_eq!(a.claimed_at, Some(NOW + 1));
    assert_eq!(
        store.read(move |c| owners::owner_of(c, a.id)).unwrap(),
        None
    );
    let (event, detail) = last_audit(&store);
    assert_eq!(event, "agent_claimed");
    assert!(detail.contains(r#""by":"operator""#), "{detail}");
    // A human can still open the link, past its original expiry but not past the renewal.
    assert!(claimable_by_link(&store, "Drifter", NOW + 2 * 3_600_000));
    assert!(!claimable_by_link(&store, "Drifter", until + 1));
    // A second operator claim without an owner has nothing to do.
    let again = store
        .write_blocking(move |c| agents::claim_without_owner(c, "drifter", until, NOW + 2))
        .unwrap_err();
    assert!(matches!(again, DbError::Conflict(_)), "{again}");
    // Giving it an owner later ends the link and keeps the first claim time.
    let o = owner(&store, "later@example.com");
    let a = store
        .write_blocking(move |c| agents::claim_for_owner(c, "drifter", o, 20, NOW + 3))
        .unwrap();
    assert_eq!(a.claimed_at, Some(NOW + 1));
    assert_eq!(
        store.read(move |c| owners::owner_of(c, a.id)).unwrap(),
        Some(o)
    );
    assert!(!claimable_by_link(&store, "Drifter", NOW + 4));
}

#[test]
fn claiming_for_an_owner_sets_the_owner_respects_the_cap_and_is_audited() {
    let (_dir, store) = open();
    for name in ["First", "Second", "Third"] {
        register(&store, name);
    }
    let alice = owner(&store, "alice@example.com");
    let a = store
        .write_blocking(move |c| agents::claim_for_owner(c, "first", alice, 1, NOW))
        .unwrap();
    assert_eq!(a.status, AgentStatus::Claimed);
    assert_eq!(
        store.read(move |c| owners::owner_of(c, a.id)).unwrap(),
        Some(alice)
    );
    assert!(!claimable_by_link(&store, "First", NOW));
    let (event, detail) = last_audit(&store);
    assert_eq!(event, "agent_claimed");
    assert!(
        detail.contains(r#""by":"operator""#) && detail.contains(&format!(r#""owner":{alice}"#)),
        "{detail}"
    );
    // The cap of one: Alice cannot get a second agent, and Second stays unclaimed.
    let capped = store
        .write_blocking(move |c| agents::claim_for_owner(c, "second", alice, 1, NOW))
        .unwrap_err();
    assert!(matches!(capped, DbError::Refused(_)), "{capped}");
    assert_eq!(
        store
            .read(|c| agents::by_name(c, "second"))
            .unwrap()
            .unwrap()
            .status,
        AgentStatus::PendingClaim
    );
    // An agent with an owner is not handed to another one.
    let bob = owner(&store, "bob@example.com");
    let taken = store
        .write_blocking(move |c| agents::claim_for_owner(c, "first", bob, 20, NOW))
        .unwrap_err();
    assert!(matches!(taken, DbError::Conflict(_)), "{taken}");
    // A suspended agent is not brought back by a claim.
    store
        .write_blocking(|c| {
            c.execute(
                "UPDATE agents SET status = 'suspended' WHERE name_key = 'third'",
                [],
            )?;
            Ok(())
        })
        .unwrap();
    for with_owner in [false, true] {
        let err = store
            .write_blocking(move |c| {
                if with_owner {
                    agents::claim_for_owner(c, "third", bob, 20, NOW)
                } else {
                    agents::claim_without_owner(c, "third", NOW, NOW)
                }
            })
            .unwrap_err();
        assert!(matches!(err, DbError::Refused(_)), "{err}");
    }
    let missing = store
        .write_blocking(move |c| agents::claim_for_owner(c, "nobody", bob, 20, NOW))
        .unwrap_err();
    assert!(matches!(missing, DbError::NotFound(_)), "{missing}");
}

#[test]
fn a_database_from_a_newer_tidepool_is_refused_and_left_alone() {
    let (dir, store) = open();
    store.shutdown();
    let db = dir.path().join("tidepool.db");
    let newest: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(newest > 0);
    let future = newest + 1;
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", future)
        .unwrap();
    let err = match SqliteStore::open(dir.path(), StoreOptions::default()) {
        Ok(_) => panic!("a store of schema version {future} was opened"),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(
        message.contains(&format!("schema version {future}"))
            && message.contains(&format!("({newest})"))
            && message.contains("Upgrade tidepool"),
        "{message}"
    );
    let after: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(after, future);

    // The same through `migrate` itself, and for a version no tidepool writes.
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "user_version", -1).unwrap();
    assert!(schema::migrate(&mut conn).is_err());
    // The current version itself is fine (nothing to do).
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    schema::migrate(&mut conn).unwrap();
    schema::migrate(&mut conn).unwrap();
}
