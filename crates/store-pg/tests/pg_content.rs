//! Posts, comments, votes, listings, search and moderation of the PostgreSQL store,
//! against a real server (`TIDEPOOL_TEST_DATABASE_URL`, or a throwaway cluster).
//!
//! Agents and submolts are inserted with plain SQL so these tests depend only on the
//! methods under test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use serde_json::{Value, json};
use tidepool_core::model::comments::{Comment, CommentSort, NewComment, TREE_NODE_CAP};
use tidepool_core::model::feed::{FeedScope, PageRequest, PostSort, RISING_WINDOW_MS, Window};
use tidepool_core::model::moderation::{QueueScope, Release};
use tidepool_core::model::posts::{Label, Labels, NewPost, Post, Safety, Verdict};
use tidepool_core::model::votes::{Ballot, TargetKind, VoteAction};
use tidepool_core::rank;
use tidepool_store::{ModerationRecord, QueueAction, Store, StoreError};
use tidepool_store_pg::testing::TestDb;
use tidepool_store_pg::{PgStore, Row, Sql, Type};

// The very statements the store runs, for the query-plan test.
#[allow(dead_code, unused_imports)]
#[path = "../src/store/post_rows.rs"]
mod post_rows;

async fn open() -> (TestDb, PgStore) {
    let db = TestDb::new().await;
    let store = PgStore::open(&db.config()).await.expect("open store");
    (db, store)
}

const NEW_AGENT: Sql = Sql::new(
    "INSERT INTO agents(uuid, name, name_key, created_at, last_active)
     VALUES ($1, $2, lower($2), 0, 0) RETURNING id",
    &[Type::TEXT, Type::TEXT],
);

const NEW_SUBMOLT: Sql = Sql::new(
    "INSERT INTO submolts(uuid, name, display_name, created_at, last_activity_at)
     VALUES ($1, $2, $2, 0, 0) RETURNING id",
    &[Type::TEXT, Type::TEXT],
);

async fn agent(store: &PgStore, name: &str) -> i64 {
    let uuid = tidepool_store::new_public_id();
    store
        .pool()
        .query_one(&NEW_AGENT, &[&uuid, &name])
        .await
        .unwrap()
        .get(0)
}

async fn submolt(store: &PgStore, name: &str) -> i64 {
    let uuid = tidepool_store::new_public_id();
    store
        .pool()
        .query_one(&NEW_SUBMOLT, &[&uuid, &name])
        .await
        .unwrap()
        .get(0)
}

/// Runs a statement of the test's own (setup and checks) and returns its rows.
async fn sql(
    store: &PgStore,
    text: &'static str,
    types: &'static [Type],
    params: &[&(dyn tidepool_store_pg::ToSql + Sync)],
) -> Vec<Row> {
    store
        .pool()
        .query(&Sql::new(text, types), params)
        .await
        .unwrap()
}

async fn int(store: &PgStore, text: &'static str, id: i64) -> i64 {
    sql(store, text, &[Type::INT8], &[&id]).await[0].get(0)
}

fn new_post(author: i64, submolt: i64, title: &str, content: &str, now: i64) -> NewPost {
    NewPost {
        author_id: author,
        submolt_id: submolt,
        title: title.into(),
        content: Some(content.into()),
        url: None,
        post_type: tidepool_core::model::posts::PostType::Text,
        safety: Safety::allow(),
        now,
    }
}

fn new_comment(
    post: i64,
    author: i64,
    parent: Option<&str>,
    content: &str,
    now: i64,
) -> NewComment {
    NewComment {
        post_id: post,
        author_id: author,
        parent_uuid: parent.map(str::to_owned),
        content: content.into(),
        safety: Safety::allow(),
        now,
    }
}

fn quarantine() -> Safety {
    Safety {
        verdict: Verdict::Quarantine,
        labels: Labels::from_iter([Label::Injection]),
        injection_score: 0.75,
        quarantined: true,
        submolt_only: false,
    }
}

fn ballot(voter: i64, kind: TargetKind, target: i64, author: i64, value: i64, now: i64) -> Ballot {
    Ballot {
        voter_id: voter,
        weight: 1.0,
        kind,
        target_id: target,
        author_id: author,
        value,
        now,
    }
}

fn page(limit: i64, now: i64, include_quarantined: bool) -> PageRequest {
    PageRequest {
        limit,
        after: None,
        offset: 0,
        now,
        include_quarantined,
    }
}

async fn stat(store: &PgStore, name: &str) -> i64 {
    store
        .stats()
        .await
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap()
        .1
}

const NOW: i64 = 1_772_366_400_000;

#[tokio::test]
async fn posts_counters_and_quarantine_audit() {
    let (_db, store) = open().await;
    let alice = agent(&store, "alice").await;
    let lab = submolt(&store, "lab").await;
    let p = store
        .create_post(new_post(alice, lab, "Hello world", "first post", NOW))
        .await
        .unwrap();
    assert_eq!(p.author.id, alice);
    assert_eq!(p.author.name, "alice");
    assert_eq!(p.submolt.id, lab);
    assert_eq!(p.submolt.name, "lab");
    assert_eq!(p.title, "Hello world");
    assert_eq!(p.content.as_deref(), Some("first post"));
    assert_eq!(p.hot_rank, rank::hot(0.0, NOW));
    assert_eq!(
        (p.score, p.upvotes, p.downvotes, p.comment_count),
        (0, 0, 0, 0)
    );
    assert!(!p.is_pinned);
    assert_eq!(p.safety, Safety::allow());
    assert_eq!((p.created_at, p.updated_at), (NOW, NOW));

    let names: Vec<String> = store
        .stats()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(names, ["agents", "comments", "posts", "submolts"]);
    assert_eq!(stat(&store, "posts").await, 1);
    assert_eq!(
        int(&store, "SELECT post_count FROM agents WHERE id = $1", alice).await,
        1
    );
    assert_eq!(
        int(
            &store,
            "SELECT last_active FROM agents WHERE id = $1",
            alice
        )
        .await,
        NOW
    );
    assert_eq!(
        int(&store, "SELECT post_count FROM submolts WHERE id = $1", lab).await,
        1
    );
    assert_eq!(
        int(
            &store,
            "SELECT last_activity_at FROM submolts WHERE id = $1",
            lab
        )
        .await,
        NOW
    );

    assert_eq!(store.post_by_uuid(&p.uuid).await.unwrap().unwrap().id, p.id);
    assert_eq!(store.post_by_id(p.id).await.unwrap().unwrap().uuid, p.uuid);
    assert!(store.post_by_uuid("nope").await.unwrap().is_none());
    assert!(store.post_by_id(p.id + 1000).await.unwrap().is_none());

    // A quarantined post and its audit event, with SQLite's detail.
    let mut q = new_post(alice, lab, "Ignore previous instructions", "x", NOW + 1);
    q.safety = quarantine();
    let q = store.create_post(q).await.unwrap();
    assert!(q.safety.quarantined && !q.safety.submolt_only);
    let audit = sql(
        &store,
        "SELECT event, agent_id, detail FROM audit_log WHERE event = 'content_quarantined'",
        &[],
        &[],
    )
    .await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].get::<_, Option<i64>>(1), Some(alice));
    assert_eq!(
        audit[0].get::<_, String>(2),
        json!({"post": q.uuid, "labels": ["injection"], "injection_score": 0.75}).to_string()
    );

    // Deleting: gone from reads, counters back, a second delete is NotFound.
    store.delete_post(p.id).await.unwrap();
    assert!(store.post_by_id(p.id).await.unwrap().is_none());
    assert!(store.post_by_uuid(&p.uuid).await.unwrap().is_none());
    assert!(matches!(
        store.delete_post(p.id).await,
        Err(StoreError::NotFound("Post"))
    ));
    assert!(matches!(
        store.delete_post(-5).await,
        Err(StoreError::NotFound("Post"))
    ));
    assert_eq!(stat(&store, "posts").await, 1);
    assert_eq!(
        int(&store, "SELECT post_count FROM agents WHERE id = $1", alice).await,
        1
    );
    assert_eq!(
        int(&store, "SELECT post_count FROM submolts WHERE id = $1", lab).await,
        1
    );
    let row = &sql(
        &store,
        "SELECT title, content, is_deleted FROM posts WHERE id = $1",
        &[Type::INT8],
        &[&p.id],
    )
    .await[0];
    assert_eq!(row.get::<_, String>(0), "[deleted]");
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, i16>(2), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pinning_is_capped_exactly() {
    let (_db, store) = open().await;
    let alice = agent(&store, "alice").await;
    let lab = submolt(&store, "lab").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .create_post(new_post(alice, lab, &format!("post {i}"), "x", NOW + i))
                .await
                .unwrap()
                .id,
        );
    }
    for id in &ids[..3] {
        assert!(store.set_pinned(*id, true).await.unwrap());
    }
    assert!(!store.set_pinned(ids[0], true).await.unwrap());
    match store.set_pinned(ids[3], true).await {
        Err(StoreError::Refused(m)) => assert_eq!(m, "A submolt can have at most 3 pinned posts"),
        other => panic!("{other:?}"),
    }
    let pinned: Vec<i64> = store
        .pinned(lab)
        .await
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(pinned, [ids[2], ids[1], ids[0]]);
    assert!(store.post_by_id(ids[0]).await.unwrap().unwrap().is_pinned);
    assert!(store.set_pinned(ids[0], false).await.unwrap());
    assert!(!store.set_pinned(ids[0], false).await.unwrap());
    assert!(store.set_pinned(ids[3], true).await.unwrap());
    // A deleted post is unpinned and cannot be pinned.
    store.delete_post(ids[3]).await.unwrap();
    assert_eq!(store.pinned(lab).await.unwrap().len(), 2);
    assert!(matches!(
        store.set_pinned(ids[3], true).await,
        Err(StoreError::NotFound("Post"))
    ));

    // Concurrent pins in a fresh submolt: exactly three win.
    let other = submolt(&store, "other").await;
    let mut posts = Vec::new();
    for i in 0..10 {
        posts.push(
            store
                .create_post(new_post(alice, other, &format!("p{i}"), "x", NOW + i))
                .await
                .unwrap()
                .id,
        );
    }
    let tasks: Vec<_> = posts
        .iter()
        .map(|&id| {
            let store = store.clone();
            tokio::spawn(async move { store.set_pinned(id, true).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => won += 1,
            Err(StoreError::Refused(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 3);
    assert_eq!(store.pinned(other).await.unwrap().len(), 3);
}

#[tokio::test]
async fn comments_depth_parents_and_deletion() {
    let (_db, store) = open().await;
    let alice = agent(&store, "alice").await;
    let bob = agent(&store, "bob").await;
    let lab = submolt(&store, "lab").await;
    let post = store
        .create_post(new_post(alice, lab, "Thread", "x", NOW))
        .await
        .unwrap();
    let other = store
        .create_post(new_post(alice, lab, "Other", "x", NOW))
        .await
        .unwrap();
    let root = store
        .create_comment(new_comment(post.id, bob, None, "root", NOW + 1))
        .await
        .unwrap();
    assert_eq!(
        (root.depth, root.parent_id, root.parent_uuid.clone()),
        (0, None, None)
    );
    assert_eq!(
        (
            root.post_id,
            root.post_uuid.as_str(),
            root.post_title.as_str()
        ),
        (post.id, post.uuid.as_str(), "Thread")
    );
    assert_eq!(root.author.id, bob);
    assert_eq!(root.best_rank, 0.0);
    assert!(!root.is_deleted);
    let reply = store
        .create_comment(new_comment(
            post.id,
            alice,
            Some(&root.uuid),
            "reply",
            NOW + 2,
        ))
        .await
        .unwrap();
    assert_eq!(reply.depth, 1);
    assert_eq!(reply.parent_id, Some(root.id));
    assert_eq!(reply.parent_uuid.as_deref(), Some(root.uuid.as_str()));

    // The parent must exist on the same post.
    for parent in [root.uuid.as_str(), "missing"] {
        assert!(matches!(
            store
                .create_comment(new_comment(other.id, bob, Some(parent), "x", NOW))
                .await,
            Err(StoreError::NotFound("Parent comment"))
        ));
    }
    // Depth: a chain reaches COMMENT_DEPTH_MAX, one more is refused.
    let mut parent = reply.uuid.clone();
    for _ in 2..=tidepool_core::text::COMMENT_DEPTH_MAX {
        parent = store
            .create_comment(new_comment(post.id, bob, Some(&parent), "deeper", NOW))
            .await
            .unwrap()
            .uuid;
    }
    match store
        .create_comment(new_comment(post.id, bob, Some(&parent), "too deep", NOW))
        .await
    {
        Err(StoreError::Refused(m)) => assert_eq!(m, "Maximum comment depth exceeded"),
        other => panic!("{other:?}"),
    }
    let created = 1 + tidepool_core::text::COMMENT_DEPTH_MAX; // root + depths 1..=MAX
    assert_eq!(
        store
            .post_by_id(post.id)
            .await
            .unwrap()
            .unwrap()
            .comment_count,
        created
    );
    assert_eq!(stat(&store, "comments").await, created);
    let by_agents = int(
        &store,
        "SELECT sum(comment_count)::int8 FROM agents WHERE id <> $1",
        0,
    )
    .await;
    assert_eq!(by_agents, created);
    assert_eq!(
        int(
            &store,
            "SELECT last_active FROM agents WHERE id = $1",
            alice
        )
        .await,
        NOW + 2
    );

    // Quarantined comment: audit event with SQLite's detail.
    let mut q = new_comment(post.id, bob, None, "bad", NOW + 3);
    q.safety = quarantine();
    let q = store.create_comment(q).await.unwrap();
    assert!(q.safety.quarantined);
    let detail: String = sql(
        &store,
        "SELECT detail FROM audit_log WHERE event = 'content_quarantined' AND agent_id = $1",
        &[Type::INT8],
        &[&bob],
    )
    .await[0]
        .get(0);
    assert_eq!(
        detail,
        json!({"comment": q.uuid, "labels": ["injection"], "injection_score": 0.75}).to_string()
    );

    // Soft delete keeps the row (and the count).
    store.delete_comment(reply.id).await.unwrap();
    let gone = store.comment_by_id(reply.id).await.unwrap().unwrap();
    assert!(gone.is_deleted);
    assert_eq!(gone.content, "");
    assert_eq!(
        store
            .comment_by_uuid(&reply.uuid)
            .await
            .unwrap()
            .unwrap()
            .id,
        reply.id
    );
    assert_eq!(
        store
            .post_by_id(post.id)
            .await
            .unwrap()
            .unwrap()
            .comment_count,
        created + 1
    );
    assert!(matches!(
        store.delete_comment(-1).await,
        Err(StoreError::NotFound("Comment"))
    ));
    // Comments of a deleted post are gone.
    store.delete_post(post.id).await.unwrap();
    assert!(store.comment_by_id(root.id).await.unwrap().is_none());
    assert!(store.comment_by_uuid(&root.uuid).await.unwrap().is_none());
    assert!(matches!(
        store.delete_comment(root.id).await,
        Err(StoreError::NotFound("Comment"))
    ));
}

#[tokio::test]
async fn votes_move_counters_ranks_and_karma() {
    let (_db, store) = open().await;
    let alice = agent(&store, "alice").await;
    let bob = agent(&store, "bob").await;
    let carol = agent(&store, "carol").await;
    let lab = submolt(&store, "lab").await;
    let post = store
        .create_post(new_post(alice, lab, "Vote", "x", NOW))
        .await
        .unwrap();
    let post_vote = |voter, value, now| ballot(voter, TargetKind::Post, post.id, alice, value, now);

    match store.cast_vote(post_vote(alice, 1, NOW)).await {
        Err(StoreError::Refused(m)) => assert_eq!(m, "Cannot vote on your own content"),
        other => panic!("{other:?}"),
    }
    let check = async |score: i64, up: i64, down: i64, karma: i64| {
        let p = store.post_by_id(post.id).await.unwrap().unwrap();
        assert_eq!((p.score, p.upvotes, p.downvotes), (score, up, down));
        assert_eq!(p.weighted_score, score as f64);
        assert_eq!(p.hot_rank, rank::hot(score as f64, NOW));
        assert_eq!(p.author.karma, karma);
    };
    assert_eq!(
        store.cast_vote(post_vote(bob, 1, NOW + 10)).await.unwrap(),
        (VoteAction::Upvoted, false)
    );
    check(1, 1, 0, 1).await;
    assert_eq!(
        int(&store, "SELECT last_active FROM agents WHERE id = $1", bob).await,
        NOW + 10
    );
    assert_eq!(
        store
            .cast_vote(post_vote(bob, 1, NOW + 11))
            .await
            .unwrap()
            .0,
        VoteAction::Removed
    );
    check(0, 0, 0, 0).await;
    assert_eq!(
        store
            .cast_vote(post_vote(bob, -1, NOW + 12))
            .await
            .unwrap()
            .0,
        VoteAction::Downvoted
    );
    check(-1, 0, 1, -1).await;
    assert_eq!(
        store
            .cast_vote(post_vote(bob, 1, NOW + 13))
            .await
            .unwrap()
            .0,
        VoteAction::Changed
    );
    check(1, 1, 0, 1).await;
    // The follow flag.
    sql(
        &store,
        "INSERT INTO follows(follower_id, followed_id, created_at) VALUES ($1, $2, 0)",
        &[Type::INT8, Type::INT8],
        &[&carol, &alice],
    )
    .await;
    assert_eq!(
        store.cast_vote(post_vote(carol, 1, NOW)).await.unwrap(),
        (VoteAction::Upvoted, true)
    );
    check(2, 2, 0, 2).await;
    // Retracting.
    assert!(
        store
            .retract_vote(bob, TargetKind::Post, post.id, alice, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .retract_vote(bob, TargetKind::Post, post.id, alice, NOW)
            .await
            .unwrap()
    );
    check(1, 1, 0, 1).await;

    // A weighted vote moves the weighted score and the hot rank by its weight.
    let dave = agent(&store, "dave").await;
    let mut b = post_vote(dave, 1, NOW);
    b.weight = 2.5;
    store.cast_vote(b).await.unwrap();
    let p = store.post_by_id(post.id).await.unwrap().unwrap();
    assert_eq!((p.score, p.weighted_score), (2, 3.5));
    assert_eq!(p.hot_rank, rank::hot(3.5, NOW));
    b.value = -1;
    b.weight = 1.0;
    assert_eq!(store.cast_vote(b).await.unwrap().0, VoteAction::Changed);
    let p = store.post_by_id(post.id).await.unwrap().unwrap();
    assert_eq!((p.score, p.weighted_score), (0, 0.0));

    // Comments: best rank is the Wilson bound, controversy stored too.
    let c = store
        .create_comment(new_comment(post.id, bob, None, "c", NOW))
        .await
        .unwrap();
    let vote = |voter, value| ballot(voter, TargetKind::Comment, c.id, bob, value, NOW);
    store.cast_vote(vote(alice, 1)).await.unwrap();
    store.cast_vote(vote(carol, 1)).await.unwrap();
    store.cast_vote(vote(dave, -1)).await.unwrap();
    let got = store.comment_by_id(c.id).await.unwrap().unwrap();
    assert_eq!((got.score, got.upvotes, got.downvotes), (1, 2, 1));
    assert_eq!(got.best_rank, rank::wilson_lower_bound(2, 1));
    assert_eq!(got.author.karma, 1);
    let controversy: f64 = sql(
        &store,
        "SELECT controversy FROM comments WHERE id = $1",
        &[Type::INT8],
        &[&c.id],
    )
    .await[0]
        .get(0);
    assert_eq!(controversy, rank::controversy(2, 1));
    assert!(
        store
            .retract_vote(dave, TargetKind::Comment, c.id, bob, NOW)
            .await
            .unwrap()
    );
    let got = store.comment_by_id(c.id).await.unwrap().unwrap();
    assert_eq!((got.score, got.upvotes, got.downvotes), (2, 2, 0));
    assert_eq!(got.best_rank, rank::wilson_lower_bound(2, 0));
    assert_eq!(got.author.karma, 2);
}

/// 16 agents, each authoring a post, vote on each other's posts and on one comment and
/// comment at once (50 operations each): afterwards every counter equals what the rows say.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_votes_and_comments_keep_counters_exact() {
    let (_db, store) = open().await;
    let lab = submolt(&store, "lab").await;
    let mut agents = Vec::new();
    let mut posts = Vec::new();
    for i in 0..16 {
        let a = agent(&store, &format!("agent{i}")).await;
        agents.push(a);
        posts.push(
            store
                .create_post(new_post(a, lab, &format!("post {i}"), "x", NOW + i))
                .await
                .unwrap(),
        );
    }
    let shared = store
        .create_comment(new_comment(posts[0].id, agents[15], None, "shared", NOW))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16usize)
        .map(|i| {
            let store = store.clone();
            let agents = agents.clone();
            let posts: Vec<(i64, i64)> = posts.iter().map(|p| (p.id, p.author.id)).collect();
            let shared = (shared.id, shared.author.id);
            tokio::spawn(async move {
                for j in 0..50usize {
                    let now = NOW + 1000 + j as i64;
                    let value = if (i * 7 + j * 3) % 4 == 0 { -1 } else { 1 };
                    match j % 5 {
                        // A comment on some post.
                        4 => {
                            let (post, _) = posts[(i + j) % 16];
                            store
                                .create_comment(new_comment(post, agents[i], None, "hi", now))
                                .await
                                .unwrap();
                        }
                        3 if agents[i] != shared.1 => {
                            store
                                .cast_vote(ballot(
                                    agents[i],
                                    TargetKind::Comment,
                                    shared.0,
                                    shared.1,
                                    value,
                                    now,
                                ))
                                .await
                                .unwrap();
                        }
                        2 => {
                            let (post, author) = posts[(i + j + 1) % 16];
                            if author != agents[i] {
                                store
                                    .retract_vote(agents[i], TargetKind::Post, post, author, now)
                                    .await
                                    .unwrap();
                            }
                        }
                        _ => {
                            // Neighbours first: agents i and i+1 vote on each other's
                            // posts at the same moment (the deadlock-prone pattern).
                            let (post, author) = posts[(i + 1 + j % 3) % 16];
                            let (post, author) = if j % 2 == 0 {
                                posts[(i + 15) % 16]
                            } else {
                                (post, author)
                            };
                            if author != agents[i] {
                                store
                                    .cast_vote(ballot(
                                        agents[i],
                                        TargetKind::Post,
                                        post,
                                        author,
                                        value,
                                        now,
                                    ))
                                    .await
                                    .unwrap();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }

    let mismatched = |text: &'static str| {
        let store = store.clone();
        async move { sql(&store, text, &[], &[]).await.len() }
    };
    assert_eq!(
        mismatched(
            "SELECT p.id FROM posts p LEFT JOIN (
                 SELECT target_id, sum(value)::int8 AS s, count(*) FILTER (WHERE value > 0) AS u,
                        count(*) FILTER (WHERE value < 0) AS d, sum(value * weight) AS w
                 FROM votes WHERE target_kind = 0 GROUP BY target_id) v ON v.target_id = p.id
             WHERE p.score <> coalesce(v.s, 0) OR p.upvotes <> coalesce(v.u, 0)
                OR p.downvotes <> coalesce(v.d, 0) OR p.weighted_score <> coalesce(v.w, 0)
                OR p.hot_rank <> tp_hot(coalesce(v.w, 0), p.created_at)
                OR p.hot_rank <> tp_hot(p.score::float8, p.created_at)"
        )
        .await,
        0
    );
    assert_eq!(
        mismatched(
            "SELECT c.id FROM comments c LEFT JOIN (
                 SELECT target_id, sum(value)::int8 AS s, count(*) FILTER (WHERE value > 0) AS u,
                        count(*) FILTER (WHERE value < 0) AS d
                 FROM votes WHERE target_kind = 1 GROUP BY target_id) v ON v.target_id = c.id
             WHERE c.score <> coalesce(v.s, 0) OR c.upvotes <> coalesce(v.u, 0)
                OR c.downvotes <> coalesce(v.d, 0)
                OR c.best_rank <> tp_wilson(c.upvotes, c.downvotes)
                OR c.controversy <> tp_controversy(c.upvotes, c.downvotes)"
        )
        .await,
        0
    );
    assert_eq!(
        mismatched(
            "SELECT p.id FROM posts p WHERE p.comment_count <>
                 (SELECT count(*) FROM comments c WHERE c.post_id = p.id)"
        )
        .await,
        0
    );
    assert_eq!(
        mismatched(
            "SELECT a.id FROM agents a WHERE a.karma <> coalesce((
                 SELECT sum(v.value) FROM votes v
                 LEFT JOIN posts p ON v.target_kind = 0 AND p.id = v.target_id
                 LEFT JOIN comments c ON v.target_kind = 1 AND c.id = v.target_id
                 WHERE coalesce(p.author_id, c.author_id) = a.id), 0)
             OR a.comment_count <> (SELECT count(*) FROM comments c WHERE c.author_id = a.id)
             OR a.post_count <> (SELECT count(*) FROM posts p WHERE p.author_id = a.id)"
        )
        .await,
        0
    );
    let comments = int(&store, "SELECT count(*) FROM comments WHERE id > $1", 0).await;
    assert_eq!(comments, 1 + 16 * 10);
    assert_eq!(stat(&store, "comments").await, comments);
    // Something actually happened.
    assert!(
        int(
            &store,
            "SELECT count(*) FROM votes WHERE target_kind = $1",
            0
        )
        .await
            > 16
    );
}

/// Seeds posts with varied scores, ages, visibilities and pins for the listing tests.
struct Seeded {
    store: PgStore,
    s1: i64,
    s2: i64,
    authors: [i64; 3],
    posts: Vec<Post>,
}

async fn seed_listings(store: PgStore) -> Seeded {
    let s1 = submolt(&store, "one").await;
    let s2 = submolt(&store, "two").await;
    let authors = [
        agent(&store, "a0").await,
        agent(&store, "a1").await,
        agent(&store, "a2").await,
    ];
    let mut ids = Vec::new();
    for i in 0..36i64 {
        let author = authors[(i % 3) as usize];
        let sub = if i % 2 == 0 { s1 } else { s2 };
        // Ages from a few minutes to several days; some equal times to exercise ties.
        let created = NOW - (i / 2) * 3 * 3_600_000;
        let mut new = new_post(author, sub, &format!("post {i}"), "x", created);
        if i % 7 == 3 {
            new.safety = quarantine();
        }
        let p = store.create_post(new).await.unwrap();
        let score = (i * 37) % 11 - 4;
        sql(
            &store,
            "UPDATE posts SET score = $2, weighted_score = $2::float8, upvotes = greatest($2, 0),
                 downvotes = greatest(-$2, 0), hot_rank = tp_hot($2::float8, created_at),
                 is_quarantined = CASE WHEN $3 THEN 2 ELSE is_quarantined END
             WHERE id = $1",
            &[Type::INT8, Type::INT8, Type::BOOL],
            &[&p.id, &score, &(i % 7 == 5)],
        )
        .await;
        ids.push(p.id);
    }
    store.set_pinned(ids[0], true).await.unwrap();
    store.set_pinned(ids[4], true).await.unwrap();
    store.delete_post(ids[2]).await.unwrap();
    let mut posts = Vec::new();
    for id in ids {
        if let Some(p) = store.post_by_id(id).await.unwrap() {
            posts.push(p);
        }
    }
    Seeded {
        store,
        s1,
        s2,
        authors,
        posts,
    }
}

fn sort_key(sort: PostSort, p: &Post, now: i64) -> f64 {
    match sort {
        PostSort::Hot => p.hot_rank,
        PostSort::New => p.created_at as f64,
        PostSort::Top => p.score as f64,
        PostSort::Rising => rank::rising(p.weighted_score, p.created_at, now),
    }
}

fn sorted(mut v: Vec<&Post>, sort: PostSort, now: i64) -> Vec<i64> {
    v.sort_by(|a, b| {
        sort_key(sort, b, now)
            .total_cmp(&sort_key(sort, a, now))
            .then(b.id.cmp(&a.id))
    });
    v.iter().map(|p| p.id).collect()
}

/// Pages through a listing by cursor and by offset; both must give `expected`.
async fn pages<F, Fut>(expected: &[i64], limit: i64, fetch: F)
where
    F: Fn(PageRequest) -> Fut,
    Fut: std::future::Future<Output = tidepool_core::model::feed::Page<Post>>,
{
    for by_offset in [false, true] {
        let mut got = Vec::new();
        let mut req = page(limit, NOW, false);
        loop {
            let p = fetch(req.clone()).await;
            got.extend(p.items.iter().map(|p| p.id));
            assert!(got.len() <= expected.len() + 1, "runaway paging");
            if !p.has_more {
                break;
            }
            if by_offset {
                req.offset = p.next_offset.unwrap();
            } else {
                let c = p.next_cursor.unwrap();
                req.after = Some((c.key.unwrap(), c.id.unwrap()));
            }
        }
        assert_eq!(got, expected, "by_offset = {by_offset}");
    }
}

#[tokio::test]
async fn list_posts_matches_the_sqlite_rules() {
    let (_db, store) = open().await;
    let s = seed_listings(store).await;
    let store = &s.store;
    let scopes = [
        FeedScope::All,
        FeedScope::Submolt(s.s1),
        FeedScope::Submolt(s.s2),
        FeedScope::Author(s.authors[1]),
    ];
    for scope in scopes {
        for sort in PostSort::ALL {
            for window in [Window::All, Window::Day] {
                for exclude_pinned in [false, true] {
                    for include_q in [false, true] {
                        let expected: Vec<&Post> = s
                            .posts
                            .iter()
                            .filter(|p| match scope {
                                FeedScope::All => true,
                                FeedScope::Submolt(id) => p.submolt.id == id,
                                FeedScope::Author(id) => p.author.id == id,
                            })
                            .filter(|p| {
                                include_q
                                    || match scope {
                                        FeedScope::Submolt(_) => !p.safety.quarantined,
                                        _ => !p.safety.quarantined && !p.safety.submolt_only,
                                    }
                            })
                            .filter(|p| !exclude_pinned || !p.is_pinned)
                            .filter(|p| match sort {
                                PostSort::Top => {
                                    window.millis().is_none_or(|ms| p.created_at >= NOW - ms)
                                }
                                PostSort::Rising => p.created_at >= NOW - RISING_WINDOW_MS,
                                _ => true,
                            })
                            .collect();
                        let expected = sorted(expected, sort, NOW);
                        assert!(!expected.is_empty());
                        pages(&expected, 4, |mut req| async move {
                            req.include_quarantined = include_q;
                            store
                                .list_posts(scope, sort, window, exclude_pinned, req)
                                .await
                                .unwrap()
                        })
                        .await;
                    }
                }
            }
        }
    }
    // Cursor keys are the sort's key; a page of 0 is empty with a look-ahead.
    let p = store
        .list_posts(
            FeedScope::All,
            PostSort::New,
            Window::All,
            false,
            page(0, NOW, false),
        )
        .await
        .unwrap();
    assert!(p.items.is_empty() && p.has_more);
}

#[tokio::test]
async fn personal_feed_merges_subscriptions_and_follows() {
    let (_db, store) = open().await;
    let s = seed_listings(store).await;
    let store = &s.store;
    let reader = agent(store, "reader").await;
    sql(
        store,
        "INSERT INTO subscriptions(agent_id, submolt_id, created_at) VALUES ($1, $2, 0)",
        &[Type::INT8, Type::INT8],
        &[&reader, &s.s1],
    )
    .await;
    sql(
        store,
        "INSERT INTO follows(follower_id, followed_id, created_at) VALUES ($1, $2, 0)",
        &[Type::INT8, Type::INT8],
        &[&reader, &s.authors[1]],
    )
    .await;
    for following_only in [false, true] {
        for sort in PostSort::ALL {
            let expected: Vec<&Post> = s
                .posts
                .iter()
                .filter(|p| {
                    (!following_only && p.submolt.id == s.s1) || p.author.id == s.authors[1]
                })
                .filter(|p| !p.safety.quarantined && !p.safety.submolt_only)
                .filter(|p| sort != PostSort::Rising || p.created_at >= NOW - RISING_WINDOW_MS)
                .collect();
            let expected = sorted(expected, sort, NOW);
            // A page as large as the feed: the per-source quirk (released posts take a
            // source's rows before being dropped) cannot cut it short.
            pages(&expected, 100, |req| async move {
                store
                    .personal_feed(reader, following_only, sort, req)
                    .await
                    .unwrap()
            })
            .await;
            // Small pages, where only follows are read (a submolt source's rows may
            // include released-to-submolt posts, dropped after the merge as in SQLite,
            // which can end a small page early).
            if following_only {
                pages(&expected, 3, |req| async move {
                    store
                        .personal_feed(reader, following_only, sort, req)
                        .await
                        .unwrap()
                })
                .await;
            }
        }
    }
    // Everything when quarantined posts are asked for.
    let all = store
        .personal_feed(reader, false, PostSort::New, page(100, NOW, true))
        .await
        .unwrap();
    let expected = s
        .posts
        .iter()
        .filter(|p| p.submolt.id == s.s1 || p.author.id == s.authors[1])
        .count();
    assert_eq!(all.items.len(), expected);
    let nobody = agent(store, "nobody").await;
    assert!(
        store
            .personal_feed(nobody, false, PostSort::Hot, page(10, NOW, false))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn comment_trees_page_roots_and_cap_replies() {
    let (_db, store) = open().await;
    let alice = agent(&store, "alice").await;
    let bob = agent(&store, "bob").await;
    let lab = submolt(&store, "lab").await;
    let post = store
        .create_post(new_post(alice, lab, "Thread", "x", NOW))
        .await
        .unwrap();
    let mut roots = Vec::new();
    for i in 0..7i64 {
        let mut new = new_comment(
            post.id,
            bob,
            None,
            &format!("root {i}"),
            NOW + (i % 4) * 1000,
        );
        if i == 5 {
            new.safety = quarantine();
        }
        let c = store.create_comment(new).await.unwrap();
        let (ups, downs) = ((i * 5) % 7, (i * 3) % 4);
        sql(
            &store,
            "UPDATE comments SET upvotes = $2, downvotes = $3, score = $2 - $3,
                 best_rank = tp_wilson($2, $3), controversy = tp_controversy($2, $3),
                 is_quarantined = CASE WHEN $4 THEN 2 ELSE is_quarantined END
             WHERE id = $1",
            &[Type::INT8, Type::INT8, Type::INT8, Type::BOOL],
            &[&c.id, &ups, &downs, &(i == 6)],
        )
        .await;
        roots.push(store.comment_by_id(c.id).await.unwrap().unwrap());
    }
    // Replies: two levels under the first roots, one quarantined.
    let r1 = store
        .create_comment(new_comment(post.id, alice, Some(&roots[0].uuid), "r1", NOW))
        .await
        .unwrap();
    let r2 = store
        .create_comment(new_comment(post.id, alice, Some(&r1.uuid), "r2", NOW))
        .await
        .unwrap();
    let mut q = new_comment(post.id, alice, Some(&roots[1].uuid), "rq", NOW);
    q.safety = quarantine();
    let rq = store.create_comment(q).await.unwrap();

    for sort in CommentSort::ALL {
        for include_q in [false, true] {
            let mut expected: Vec<&Comment> = roots
                .iter()
                .filter(|c| include_q || !c.safety.quarantined)
                .collect();
            expected.sort_by(|a, b| sort.key(b).total_cmp(&sort.key(a)).then(b.id.cmp(&a.id)));
            if sort == CommentSort::Old {
                // Oldest first, ties by id ascending.
                expected.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            }
            let expected: Vec<i64> = expected.iter().map(|c| c.id).collect();
            let mut got = Vec::new();
            let mut replies = HashSet::new();
            let mut req = page(2, NOW, include_q);
            loop {
                let (p, r) = store
                    .comment_tree(post.id, sort, req.clone())
                    .await
                    .unwrap();
                got.extend(p.items.iter().map(|c| c.id));
                replies.extend(r.iter().map(|c| c.id));
                if !p.has_more {
                    break;
                }
                let c = p.next_cursor.unwrap();
                req.after = Some((c.key.unwrap(), c.id.unwrap()));
                assert!(got.len() <= expected.len());
            }
            assert_eq!(got, expected, "{sort:?} include_q={include_q}");
            let mut want = HashSet::from([r1.id, r2.id]);
            if include_q {
                want.insert(rq.id);
            }
            assert_eq!(replies, want, "{sort:?}");
        }
    }

    // The node cap: one root with 600 replies gives TREE_NODE_CAP - 1 of them, breadth
    // first (every direct reply before any grandchild).
    let big = store
        .create_post(new_post(alice, lab, "Big", "x", NOW))
        .await
        .unwrap();
    let root = store
        .create_comment(new_comment(big.id, bob, None, "root", NOW))
        .await
        .unwrap();
    sql(
        &store,
        "INSERT INTO comments(uuid, post_id, author_id, parent_id, depth, content, created_at, updated_at)
         SELECT 'bulk-' || g, $1, $2, $3, 1, 'reply', $4, $4 FROM generate_series(1, 400) g",
        &[Type::INT8, Type::INT8, Type::INT8, Type::INT8],
        &[&big.id, &alice, &root.id, &NOW],
    )
    .await;
    sql(
        &store,
        "INSERT INTO comments(uuid, post_id, author_id, parent_id, depth, content, created_at, updated_at)
         SELECT 'deep-' || c.id, c.post_id, c.author_id, c.id, 2, 'deeper', $2, $2
         FROM comments c WHERE c.parent_id = $1",
        &[Type::INT8, Type::INT8],
        &[&root.id, &NOW],
    )
    .await;
    let (p, replies) = store
        .comment_tree(big.id, CommentSort::Best, page(20, NOW, false))
        .await
        .unwrap();
    assert_eq!(p.items.len(), 1);
    assert_eq!(replies.len() as i64, TREE_NODE_CAP - 1);
    assert_eq!(replies.iter().filter(|c| c.depth == 1).count(), 400);
    assert!(replies.windows(2).all(|w| w[0].id < w[1].id));
}

#[tokio::test]
async fn recent_comments_and_search() {
    let (_db, store) = open().await;
    let alice = agent(&store, "alice").await;
    let bob = agent(&store, "bob").await;
    let lab = submolt(&store, "lab").await;
    let mk = async |title: &str, content: &str, safety: Safety| {
        let mut new = new_post(alice, lab, title, content, NOW);
        new.safety = safety;
        store.create_post(new).await.unwrap()
    };
    let p1 = mk("Rust async runtime", "tokio and friends", Safety::allow()).await;
    let p2 = mk("Python", "async generators in python", Safety::allow()).await;
    let p3 = mk(
        "Borrow checker",
        "rust lifetimes explained",
        Safety::allow(),
    )
    .await;
    let pq = mk("Rust quarantined", "rust", quarantine()).await;
    let gone = mk("Rust deleted", "rust", Safety::allow()).await;
    let released = mk("Rust released", "rust", Safety::allow()).await;
    sql(
        &store,
        "UPDATE posts SET is_quarantined = 2 WHERE id = $1",
        &[Type::INT8],
        &[&released.id],
    )
    .await;
    store.delete_post(gone.id).await.unwrap();

    let ids = async |q: &str, include_q: bool| -> Vec<i64> {
        let hits = store.search_posts(q, 10, include_q).await.unwrap();
        for (_, sim) in &hits {
            assert!((0.5..1.0).contains(sim), "{sim}");
        }
        let mut v: Vec<i64> = hits.into_iter().map(|(p, _)| p.id).collect();
        v.sort();
        v
    };
    assert_eq!(ids("rust", false).await, [p1.id, p3.id]);
    assert_eq!(ids("RUST", true).await, [p1.id, p3.id, pq.id, released.id]);
    assert_eq!(ids("rust async", false).await, [p1.id]);
    assert_eq!(ids("async", false).await, [p1.id, p2.id]);
    assert_eq!(
        ids("\"async\" OR NEAR(python*", false).await,
        Vec::<i64>::new()
    );
    assert_eq!(ids("python!", false).await, [p2.id]);
    assert!(ids("  !!! ", true).await.is_empty());
    assert!(ids("nothing-matches-this", true).await.is_empty());
    assert_eq!(store.search_posts("rust", 1, true).await.unwrap().len(), 1);
    // As in SQLite, the best `limit` matches are picked before hidden ones are dropped:
    // here the best match is quarantined, so the page is empty.
    assert!(
        store
            .search_posts("rust", 1, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .search_posts("rust", -1, false)
            .await
            .unwrap()
            .is_empty()
    );
    // Best first: the post saying it twice ranks at least as high.
    let ranked = store.search_posts("rust", 10, true).await.unwrap();
    assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1));

    // Comments.
    let c1 = store
        .create_comment(new_comment(p1.id, bob, None, "great async answer", NOW))
        .await
        .unwrap();
    let c2 = store
        .create_comment(new_comment(
            p2.id,
            bob,
            None,
            "another async thought",
            NOW + 1,
        ))
        .await
        .unwrap();
    let mut q = new_comment(p3.id, bob, None, "async but quarantined", NOW + 2);
    q.safety = quarantine();
    let cq = store.create_comment(q).await.unwrap();
    let on_released = store
        .create_comment(new_comment(
            released.id,
            bob,
            None,
            "async on a released post",
            NOW + 3,
        ))
        .await
        .unwrap();
    let deleted = store
        .create_comment(new_comment(p1.id, bob, None, "async deleted", NOW + 4))
        .await
        .unwrap();
    store.delete_comment(deleted.id).await.unwrap();
    let cids = async |q: &str, include_q: bool| -> Vec<i64> {
        let mut v: Vec<i64> = store
            .search_comments(q, 10, include_q)
            .await
            .unwrap()
            .into_iter()
            .map(|(c, s)| {
                assert!((0.5..1.0).contains(&s));
                c.id
            })
            .collect();
        v.sort();
        v
    };
    // A comment on a post released to its submolt only stays out of search, like the
    // post itself (search is never a way around that release).
    assert_eq!(cids("async", false).await, [c1.id, c2.id]);
    assert_eq!(
        cids("async", true).await,
        [c1.id, c2.id, cq.id, on_released.id]
    );
    assert_eq!(cids("async answer", false).await, [c1.id]);
    store.delete_post(p2.id).await.unwrap();
    assert_eq!(cids("async", false).await, [c1.id]);

    // Recent comments: newest first, live only; quarantined comments and comments on
    // quarantined or released posts only when asked for.
    let recent = async |limit: i64, include_q: bool| -> Vec<i64> {
        store
            .recent_comments_by(bob, limit, include_q)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect()
    };
    assert_eq!(recent(10, false).await, [c1.id]);
    assert_eq!(recent(10, true).await, [on_released.id, cq.id, c1.id]);
    assert_eq!(recent(1, true).await, [on_released.id]);
    assert_eq!(recent(-1, true).await, [on_released.id, cq.id, c1.id]);
}

fn record(action: &str, kind: &str, target: &str, now: i64) -> ModerationRecord {
    ModerationRecord {
        actor: "mod".into(),
        action: action.into(),
        target_kind: kind.into(),
        target: target.into(),
        reason: "because".into(),
        now,
    }
}

#[tokio::test]
async fn moderation_queue_release_remove_and_log() {
    let (_db, store) = open().await;
    let alice = agent(&store, "alice").await;
    let s1 = submolt(&store, "one").await;
    let s2 = submolt(&store, "two").await;
    let mut queued = Vec::new();
    for (i, sub) in [s1, s2, s1, s2].into_iter().enumerate() {
        let mut new = new_post(alice, sub, &format!("q{i}"), "x", NOW);
        new.safety = quarantine();
        queued.push(store.create_post(new).await.unwrap());
    }
    let fine = store
        .create_post(new_post(alice, s1, "fine", "x", NOW))
        .await
        .unwrap();
    let ids = |v: Vec<Post>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.queued_posts(QueueScope::All, None, 10).await.unwrap()),
        [queued[3].id, queued[2].id, queued[1].id, queued[0].id]
    );
    assert_eq!(
        ids(store
            .queued_posts(QueueScope::Submolts(vec![s1]), None, 10)
            .await
            .unwrap()),
        [queued[2].id, queued[0].id]
    );
    assert!(
        store
            .queued_posts(QueueScope::Submolts(vec![]), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(store
            .queued_posts(QueueScope::All, Some(queued[2].id), 1)
            .await
            .unwrap()),
        [queued[1].id]
    );
    // A limit below 1 is 1.
    assert_eq!(
        store
            .queued_posts(QueueScope::All, None, 0)
            .await
            .unwrap()
            .len(),
        1
    );

    // Release to the submolt, then globally; a third release is refused.
    let release = |to| QueueAction::Release(to);
    store
        .moderate_item(
            TargetKind::Post,
            queued[0].id,
            release(Release::Submolt),
            record("release", "post", &queued[0].uuid, NOW + 1),
        )
        .await
        .unwrap();
    let p = store.post_by_id(queued[0].id).await.unwrap().unwrap();
    assert!(p.safety.submolt_only && !p.safety.quarantined);
    assert_eq!(p.safety.verdict, Verdict::Label);
    match store
        .moderate_item(
            TargetKind::Post,
            queued[0].id,
            release(Release::Submolt),
            record("release", "post", "x", NOW),
        )
        .await
    {
        Err(StoreError::Refused(m)) => assert_eq!(m, "This item is no longer quarantined"),
        other => panic!("{other:?}"),
    }
    store
        .moderate_item(
            TargetKind::Post,
            queued[0].id,
            release(Release::Global),
            record("release", "post", &queued[0].uuid, NOW + 2),
        )
        .await
        .unwrap();
    let p = store.post_by_id(queued[0].id).await.unwrap().unwrap();
    assert!(!p.safety.submolt_only && !p.safety.quarantined);
    assert!(matches!(
        store
            .moderate_item(
                TargetKind::Post,
                fine.id,
                release(Release::Global),
                record("release", "post", "x", NOW)
            )
            .await,
        Err(StoreError::Refused(_))
    ));
    // Remove: the post is deleted with its counters.
    let before = stat(&store, "posts").await;
    store
        .moderate_item(
            TargetKind::Post,
            queued[1].id,
            QueueAction::Remove,
            record("remove", "post", &queued[1].uuid, NOW + 3),
        )
        .await
        .unwrap();
    assert!(store.post_by_id(queued[1].id).await.unwrap().is_none());
    assert_eq!(stat(&store, "posts").await, before - 1);
    assert_eq!(
        int(&store, "SELECT post_count FROM submolts WHERE id = $1", s2).await,
        1
    );
    assert!(matches!(
        store
            .moderate_item(
                TargetKind::Post,
                queued[1].id,
                QueueAction::Remove,
                record("remove", "post", "x", NOW)
            )
            .await,
        Err(StoreError::NotFound("Post"))
    ));
    assert_eq!(
        ids(store.queued_posts(QueueScope::All, None, 10).await.unwrap()),
        [queued[3].id, queued[2].id]
    );

    // Comments.
    let mut cq = Vec::new();
    for (i, post) in [&queued[2], &queued[3], &fine].into_iter().enumerate() {
        let mut new = new_comment(post.id, alice, None, &format!("c{i}"), NOW);
        new.safety = quarantine();
        cq.push(store.create_comment(new).await.unwrap());
    }
    let cids = |v: Vec<Comment>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        cids(
            store
                .queued_comments(QueueScope::All, None, 10)
                .await
                .unwrap()
        ),
        [cq[2].id, cq[1].id, cq[0].id]
    );
    assert_eq!(
        cids(
            store
                .queued_comments(QueueScope::Submolts(vec![s1]), None, 10)
                .await
                .unwrap()
        ),
        [cq[2].id, cq[0].id]
    );
    assert_eq!(
        cids(
            store
                .queued_comments(QueueScope::All, Some(cq[2].id), 1)
                .await
                .unwrap()
        ),
        [cq[1].id]
    );
    store
        .moderate_item(
            TargetKind::Comment,
            cq[0].id,
            release(Release::Global),
            record("release", "comment", &cq[0].uuid, NOW + 4),
        )
        .await
        .unwrap();
    assert!(
        !store
            .comment_by_id(cq[0].id)
            .await
            .unwrap()
            .unwrap()
            .safety
            .quarantined
    );
    assert!(matches!(
        store
            .moderate_item(
                TargetKind::Comment,
                cq[0].id,
                release(Release::Submolt),
                record("release", "comment", "x", NOW)
            )
            .await,
        Err(StoreError::Refused(_))
    ));
    store
        .moderate_item(
            TargetKind::Comment,
            cq[1].id,
            QueueAction::Remove,
            record("remove", "comment", &cq[1].uuid, NOW + 5),
        )
        .await
        .unwrap();
    assert!(
        store
            .comment_by_id(cq[1].id)
            .await
            .unwrap()
            .unwrap()
            .is_deleted
    );
    assert_eq!(
        cids(
            store
                .queued_comments(QueueScope::All, None, 10)
                .await
                .unwrap()
        ),
        [cq[2].id]
    );
    // A comment whose post is gone leaves the queue and cannot be removed.
    store.delete_post(fine.id).await.unwrap();
    assert!(
        store
            .queued_comments(QueueScope::All, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .moderate_item(
                TargetKind::Comment,
                cq[2].id,
                QueueAction::Remove,
                record("remove", "comment", "x", NOW)
            )
            .await,
        Err(StoreError::NotFound("Comment"))
    ));

    // The log holds the successful actions only, newest first.
    let log = store.moderation_log(None, 100).await.unwrap();
    let at: Vec<i64> = log.iter().map(|e| e.at).collect();
    assert_eq!(at, [NOW + 5, NOW + 4, NOW + 3, NOW + 2, NOW + 1]);
    assert_eq!(
        (
            log[0].actor.as_str(),
            log[0].action.as_str(),
            log[0].target_kind.as_str(),
            log[0].target.as_str(),
            log[0].reason.as_str()
        ),
        ("mod", "remove", "comment", cq[1].uuid.as_str(), "because")
    );
    let older = store.moderation_log(Some(log[1].id), 2).await.unwrap();
    assert_eq!(
        older.iter().map(|e| e.at).collect::<Vec<_>>(),
        [NOW + 3, NOW + 2]
    );
}

// ---- query plans ----

/// Every node of an EXPLAIN (FORMAT JSON) plan, depth first.
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for c in children {
            nodes(c, out);
        }
    }
}

/// Literal SQL for a parameter value of the EXPLAIN test.
fn literal(t: &Type, i: usize, scope_id: i64) -> String {
    match (i, t.name()) {
        (_, "bool") => "false".into(),
        (0, _) => "1e300".into(), // keyset: before everything of interest
        (1, _) => "9000000000000000000".into(),
        (2, _) => "21".into(), // limit + 1
        (3, _) => "0".into(),  // offset
        (6, _) => i64::MIN.to_string(),
        (7, _) => scope_id.to_string(),
        _ => NOW.to_string(),
    }
}

/// On 20k posts, hot/new/top (global, by submolt, by author; first page and keyset
/// page) walk an index in order: an index scan of posts, never a Sort, never a seq scan of
/// posts, with custom plans (unnamed statements) and generic plans (prepared ones).
#[tokio::test]
async fn feed_queries_walk_an_index() {
    let (_db, store) = open().await;
    let conn = store.pool().get().await.unwrap();
    let client = conn.client();
    client
        .batch_execute(
            "INSERT INTO agents(uuid, name, name_key, created_at, last_active)
                 SELECT 'a' || g, 'a' || g, 'a' || g, 0, 0 FROM generate_series(1, 50) g;
             INSERT INTO submolts(uuid, name, display_name, created_at, last_activity_at)
                 SELECT 's' || g, 's' || g, 's' || g, 0, 0 FROM generate_series(1, 20) g;
             INSERT INTO posts(uuid, author_id, submolt_id, title, post_type, score,
                               weighted_score, hot_rank, created_at, updated_at)
                 SELECT 'p' || g, (SELECT id FROM agents WHERE name = 'a' || (g % 50 + 1)),
                        (SELECT id FROM submolts WHERE name = 's' || (g % 20 + 1)),
                        'title ' || g, 'text', (g * 7919) % 1000 - 300,
                        ((g * 7919) % 1000 - 300)::float8,
                        tp_hot(((g * 7919) % 1000 - 300)::float8, 1700000000000 + g * 60000::int8),
                        1700000000000 + g * 60000::int8, 1700000000000 + g * 60000::int8
                 FROM generate_series(1, 20000) g;
             ANALYZE;",
        )
        .await
        .unwrap();
    let scope_row = client
        .query_one("SELECT (SELECT id FROM submolts WHERE name = 's3'), (SELECT id FROM agents WHERE name = 'a7')", &[])
        .await
        .unwrap();
    let (sub, author): (i64, i64) = (scope_row.get(0), scope_row.get(1));
    let mut checked = 0;
    for (scope, scope_id) in [
        (FeedScope::All, 0),
        (FeedScope::Submolt(sub), sub),
        (FeedScope::Author(author), author),
    ] {
        for sort in [PostSort::Hot, PostSort::New, PostSort::Top] {
            for keyset in [false, true] {
                let stmt = post_rows::list_posts_sql(scope, sort, keyset);
                let types: Vec<&str> = stmt.types.iter().map(|t| t.name()).collect();
                let args: Vec<String> = stmt
                    .types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        if i == 0 && post_rows::integer_key(sort) {
                            "9000000000000000000".into()
                        } else {
                            literal(t, i, scope_id)
                        }
                    })
                    .collect();
                for mode in ["force_custom_plan", "force_generic_plan"] {
                    client
                        .batch_execute(&format!(
                            "DEALLOCATE ALL; SET plan_cache_mode = {mode};
                             PREPARE q({}) AS {}",
                            types.join(", "),
                            stmt.text
                        ))
                        .await
                        .unwrap();
                    let rows = client
                        .simple_query(&format!(
                            "EXPLAIN (FORMAT JSON) EXECUTE q({})",
                            args.join(", ")
                        ))
                        .await
                        .unwrap();
                    let text = rows
                        .iter()
                        .find_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(r) => {
                                r.get(0).map(str::to_owned)
                            }
                            _ => None,
                        })
                        .unwrap();
                    let plan: Value = serde_json::from_str(&text).unwrap();
                    let mut all = Vec::new();
                    nodes(&plan[0]["Plan"], &mut all);
                    let what = format!("{scope:?} {sort:?} keyset={keyset} {mode}: {text}");
                    let node_type = |n: &Value| n["Node Type"].as_str().unwrap_or("").to_owned();
                    assert!(
                        all.iter()
                            .any(|n| node_type(n).starts_with("Index")
                                && n["Relation Name"] == "posts"),
                        "no index scan of posts: {what}"
                    );
                    assert!(
                        !all.iter().any(|n| node_type(n).contains("Sort")),
                        "sorts: {what}"
                    );
                    assert!(
                        !all.iter()
                            .any(|n| node_type(n) == "Seq Scan" && n["Relation Name"] == "posts"),
                        "seq scan of posts: {what}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 36);
    client
        .batch_execute("DEALLOCATE ALL; RESET plan_cache_mode")
        .await
        .unwrap();
}
