//! Store behaviour: group commit, savepoint isolation, counters that match the data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tidepool_store_sqlite::agents::{self, NewAgent};
use tidepool_store_sqlite::comments::{self, CommentSort, NewComment};
use tidepool_store_sqlite::feed::{self, FeedScope, PageRequest, PostSort, Window};
use tidepool_store_sqlite::posts::{self, NewPost, Safety};
use tidepool_store_sqlite::votes::{self, Ballot, TargetKind, VoteAction};
use tidepool_store_sqlite::{DbError, SqliteStore, StoreOptions, submolts};

fn new_agent(name: &str) -> NewAgent {
    NewAgent {
        name: name.into(),
        name_key: name.to_ascii_lowercase(),
        description: String::new(),
        key_hash: name.as_bytes().to_vec(),
        claim_token_hash: format!("claim-{name}").into_bytes(),
        claim_expires_at: 0,
        verification_code_hash: vec![1],
        auto_claim: true,
        now: 1_772_366_400_000,
    }
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
    (dir, store)
}

#[test]
fn a_failed_job_rolls_back_alone() {
    let (_dir, store) = open();
    store
        .write_blocking(|c| agents::register(c, new_agent("alice")))
        .unwrap();
    // This job writes a row, then fails: its row must not survive.
    let err = store
        .write_blocking(|c| {
            agents::register(c, new_agent("bob"))?;
            agents::register(c, new_agent("alice"))
        })
        .unwrap_err();
    assert!(matches!(err, DbError::Conflict(_)));
    assert!(store.read(|c| agents::by_name(c, "bob")).unwrap().is_none());
    assert!(
        store
            .read(|c| agents::by_name(c, "alice"))
            .unwrap()
            .is_some()
    );
}

#[test]
fn concurrent_writes_are_grouped_and_all_acknowledged() {
    let (_dir, store) = open();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    store
                        .write_blocking(move |c| {
                            agents::register(c, new_agent(&format!("a{t}x{i}")))
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let n: i64 = store
        .read(|c| Ok(c.query_row("SELECT count(*) FROM agents", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(n, 400);
    let counter = store
        .read(posts::stats)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == "agents")
        .unwrap()
        .1;
    assert_eq!(counter, 400);
}

#[test]
fn acknowledged_writes_survive_shutdown_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
        store
            .write_blocking(|c| agents::register(c, new_agent("durable")))
            .unwrap();
        store.shutdown();
    }
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(
        store
            .read(|c| agents::by_name(c, "durable"))
            .unwrap()
            .is_some()
    );
    // Default submolts exist exactly once after a reopen.
    let n: i64 = store
        .read(|c| {
            Ok(c.query_row(
                "SELECT value FROM counters WHERE name='submolts'",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn votes_keep_counters_and_ranks_consistent() {
    let (_dir, store) = open();
    let ids: Vec<i64> = (0..4)
        .map(|i| {
            store
                .write_blocking(move |c| agents::register(c, new_agent(&format!("v{i}"))))
                .unwrap()
                .id
        })
        .collect();
    let general = store
        .read(|c| submolts::by_name(c, "general"))
        .unwrap()
        .unwrap();
    let author = ids[0];
    let post = store
        .write_blocking(move |c| {
            posts::create(
                c,
                NewPost {
                    author_id: author,
                    submolt_id: general.id,
                    title: "t".into(),
                    content: Some("c".into()),
                    url: None,
                    post_type: tidepool_core::model::posts::PostType::Text,
                    safety: Safety::allow(),
                    now: 1_772_366_400_000,
                },
            )
        })
        .unwrap();
    let vote = |voter: i64, value: i64| {
        let pid = post.id;
        store
            .write_blocking(move |c| {
                votes::cast(
                    c,
                    Ballot {
                        voter_id: voter,
                        weight: 1.0,
                        kind: TargetKind::Post,
                        target_id: pid,
                        author_id: author,
                        value,
                        now: 0,
                    },
                )
            })
            .unwrap()
    };
    assert_eq!(vote(ids[1], 1), VoteAction::Upvoted);
    assert_eq!(vote(ids[2], 1), VoteAction::Upvoted);
    assert_eq!(vote(ids[3], -1), VoteAction::Downvoted);
    assert_eq!(vote(ids[3], 1), VoteAction::Changed);
    assert_eq!(vote(ids[2], 1), VoteAction::Removed);
    let p = store.read(|c| posts::by_id(c, post.id)).unwrap().unwrap();
    assert_eq!((p.score, p.upvotes, p.downvotes), (2, 2, 0));
    assert_eq!(p.hot_rank, tidepool_core::rank::hot(2.0, p.created_at));
    let a = store.read(|c| agents::by_id(c, author)).unwrap().unwrap();
    assert_eq!(a.karma, 2);
    let self_vote = store.write_blocking(move |c| {
        votes::cast(
            c,
            Ballot {
                voter_id: author,
                weight: 1.0,
                kind: TargetKind::Post,
                target_id: post.id,
                author_id: author,
                value: 1,
                now: 0,
            },
        )
    });
    assert!(matches!(self_vote, Err(DbError::Refused(_))));

    // Comments: depth limit, tree fetch.
    let pid = post.id;
    let mut parent: Option<String> = None;
    for depth in 0..=10 {
        let c = store
            .write_blocking({
                let parent = parent.clone();
                move |c| {
                    comments::create(
                        c,
                        NewComment {
                            post_id: pid,
                            author_id: author,
                            parent_uuid: parent,
                            content: format!("d{depth}"),
                            safety: Safety::allow(),
                            now: 1,
                        },
                    )
                }
            })
            .unwrap();
        assert_eq!(c.depth, depth);
        parent = Some(c.uuid);
    }
    let too_deep = store.write_blocking(move |c| {
        comments::create(
            c,
            NewComment {
                post_id: pid,
                author_id: author,
                parent_uuid: parent,
                content: "x".into(),
                safety: Safety::allow(),
                now: 1,
            },
        )
    });
    assert!(matches!(too_deep, Err(DbError::Refused(_))));
    let page = PageRequest {
        limit: 10,
        after: None,
        offset: 0,
        now: 0,
        include_quarantined: false,
    };
    let (roots, replies) = store
        .read(|c| comments::tree(c, pid, CommentSort::Best, &page))
        .unwrap();
    assert_eq!(roots.items.len(), 1);
    assert_eq!(replies.len(), 10);
    let p = store.read(|c| posts::by_id(c, pid)).unwrap().unwrap();
    assert_eq!(p.comment_count, 11);

    let listed = store
        .read(|c| feed::list_posts(c, FeedScope::All, PostSort::Hot, Window::All, false, &page))
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

#[test]
fn search_ranks_only_the_newest_candidates() {
    use tidepool_store_sqlite::search::{self, MAX_CANDIDATES};
    let (_dir, store) = open();
    let author = store
        .write_blocking(|c| agents::register(c, new_agent("searcher")))
        .unwrap()
        .id;
    let general = store
        .read(|c| submolts::by_name(c, "general"))
        .unwrap()
        .unwrap()
        .id;
    let total = MAX_CANDIDATES + 50;
    store
        .write_blocking(move |c| {
            for i in 0..total {
                // The oldest post is the most relevant (the word three times), but it is
                // older than the newest MAX_CANDIDATES matches.
                let content = if i == 0 {
                    "lagoon lagoon lagoon".to_owned()
                } else {
                    format!("lagoon filler {i}")
                };
                posts::create(
                    c,
                    NewPost {
                        author_id: author,
                        submolt_id: general,
                        title: format!("t{i}"),
                        content: Some(content),
                        url: None,
                        post_type: tidepool_core::model::posts::PostType::Text,
                        safety: Safety::allow(),
                        now: i,
                    },
                )?;
            }
            Ok(())
        })
        .unwrap();
    let hits = store
        .read(|c| search::posts(c, "\"lagoon\"", 3000, 0, false))
        .unwrap();
    assert_eq!(hits.len() as i64, MAX_CANDIDATES);
    assert!(hits.iter().all(|(p, _)| p.title != "t0"));
    assert!(
        hits.iter()
            .any(|(p, _)| p.title == format!("t{}", total - 1))
    );
}

/// A stored verdict or role this build cannot read is an error naming it, never read as
/// another (a role grants moderation); stored labels it does not know are kept.
#[test]
fn unknown_stored_names_are_errors_or_kept_never_guessed() {
    let (_dir, store) = open();
    let author = store
        .write_blocking(|c| agents::register(c, new_agent("alice")))
        .unwrap()
        .id;
    let general = store
        .read(|c| submolts::by_name(c, "general"))
        .unwrap()
        .unwrap()
        .id;
    let post = store
        .write_blocking(move |c| {
            posts::create(
                c,
                NewPost {
                    author_id: author,
                    submolt_id: general,
                    title: "t".into(),
                    content: Some("c".into()),
                    url: None,
                    post_type: tidepool_core::model::posts::PostType::Text,
                    safety: Safety::allow(),
                    now: 1_772_366_400_000,
                },
            )
        })
        .unwrap()
        .id;
    store
        .write_blocking(move |c| {
            c.execute(
                r#"UPDATE posts SET safety_labels = '["pii","from_a_newer_guard"]' WHERE id = ?1"#,
                [post],
            )?;
            c.execute(
                "INSERT INTO submolt_moderators(submolt_id, agent_id, role, created_at)
                 VALUES (?1, ?2, 'admin', 0)",
                [general, author],
            )?;
            Ok(())
        })
        .unwrap();
    let p = store.read(|c| posts::by_id(c, post)).unwrap().unwrap();
    assert_eq!(p.safety.labels.to_json(), r#"["pii","from_a_newer_guard"]"#);
    let err = store
        .read(|c| submolts::role_of(c, general, author))
        .unwrap_err();
    assert!(err.to_string().contains(r#"unknown role "admin""#), "{err}");

    store
        .write_blocking(move |c| {
            c.execute(
                "UPDATE posts SET safety_verdict = 'shadowban' WHERE id = ?1",
                [post],
            )?;
            Ok(())
        })
        .unwrap();
    let err = store.read(|c| posts::by_id(c, post)).unwrap_err();
    assert!(
        err.to_string().contains(r#"unknown verdict "shadowban""#),
        "{err}"
    );

    store
        .write_blocking(move |c| {
            c.execute(
                "UPDATE posts SET safety_verdict = 'allow', post_type = 'video' WHERE id = ?1",
                [post],
            )?;
            Ok(())
        })
        .unwrap();
    let err = store.read(|c| posts::by_id(c, post)).unwrap_err();
    assert!(
        err.to_string().contains(r#"unknown post type "video""#),
        "{err}"
    );
}
