//! Every listing query, run on a seeded store, must walk an index: no full scan of a
//! table and no sort of a whole table (Lemmy's feeds took 24 s when this was missed).
//! Statements are captured through SQLite's trace hook with their bound values, so the
//! plans checked are those of the SQL the store really runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use rusqlite::Connection;
use rusqlite::trace::{TraceEvent, TraceEventCodes};
use tidepool_core::cursor::Cursor;
use tidepool_core::model::notifications::{NewNotification, NotificationKind};
use tidepool_store_sqlite::agents::{self, NewAgent};
use tidepool_store_sqlite::comments::{self, CommentSort, NewComment};
use tidepool_store_sqlite::feed::{self, FeedScope, PageRequest, PostSort, Window};
use tidepool_store_sqlite::posts::{self, NewPost, Safety};
use tidepool_store_sqlite::submolts::{self, NewSubmolt, SubmoltSort};
use tidepool_store_sqlite::votes::{self, Ballot, TargetKind};
use tidepool_store_sqlite::{
    SqliteStore, StoreOptions, connect_read_only, moderation, notifications, owners, search,
};

static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

const NOW: i64 = 1_772_366_400_000;
const AGENTS: i64 = 300;
const SUBMOLTS: i64 = 40;
const POSTS: i64 = 12_000;
const COMMENTS: i64 = 24_000;

fn seed(store: &SqliteStore) {
    store
        .write_blocking(|c| {
            for i in 0..AGENTS {
                agents::register(
                    c,
                    NewAgent {
                        name: format!("agent{i}"),
                        name_key: format!("agent{i}"),
                        description: String::new(),
                        key_hash: format!("k{i}").into_bytes(),
                        claim_token_hash: format!("c{i}").into_bytes(),
                        claim_expires_at: 0,
                        verification_code_hash: vec![],
                        auto_claim: true,
                        now: NOW - 60 * 86_400_000,
                    },
                )?;
            }
            for i in 0..SUBMOLTS {
                submolts::create(
                    c,
                    NewSubmolt {
                        name: format!("sub{i}"),
                        display_name: format!("Sub {i}"),
                        description: String::new(),
                        allow_crypto: false,
                        creator_id: 1 + i % AGENTS,
                        now: NOW - 50 * 86_400_000,
                    },
                )?;
            }
            for i in 0..POSTS {
                posts::create(
                    c,
                    NewPost {
                        author_id: 1 + (i * 7) % AGENTS,
                        submolt_id: 1 + (i * 7 + i / 50) % (SUBMOLTS + 3),
                        title: format!("post {i} about reefs and tides"),
                        content: Some(format!("body {i} kelp coral plankton")),
                        url: None,
                        post_type: tidepool_core::model::posts::PostType::Text,
                        safety: Safety::allow(),
                        now: NOW - (POSTS - i) * 200_000,
                    },
                )?;
            }
            for i in 0..COMMENTS {
                let parent = if i % 3 == 0 || i < 100 {
                    None
                } else {
                    comments::by_id(c, i / 2)?.map(|p| p.uuid)
                };
                let post_id = match i {
                    i if i < 100 => 1,
                    _ => comments::by_id(c, i / 2)?
                        .filter(|_| parent.is_some())
                        .map_or(1 + (i * 13) % POSTS, |p| p.post_id),
                };
                comments::create(
                    c,
                    NewComment {
                        post_id,
                        author_id: 1 + (i * 11) % AGENTS,
                        parent_uuid: parent,
                        content: format!("comment {i} coral"),
                        safety: Safety::allow(),
                        now: NOW - (COMMENTS - i) * 100_000,
                    },
                )?;
            }
            for i in 0..20_000 {
                let voter = 1 + (i * 17) % AGENTS;
                let post = 1 + (i * 31) % POSTS;
                let author = 1 + (post - 1) * 7 % AGENTS;
                if voter != author {
                    votes::cast(
                        c,
                        Ballot {
                            voter_id: voter,
                            weight: 1.0,
                            kind: TargetKind::Post,
                            target_id: post,
                            author_id: author,
                            value: if i % 5 == 0 { -1 } else { 1 },
                            now: NOW,
                        },
                    )?;
                }
            }
            for i in 0..SUBMOLTS {
                submolts::subscribe(c, 1, 1 + i, NOW)?;
            }
            for i in 2..60 {
                agents::follow(c, 1, i, NOW)?;
            }
            // 100 notifications per agent, the older nine in ten read, half about a post.
            let mut batch = Vec::new();
            for k in 0..100 {
                for agent in 1..=AGENTS {
                    batch.push(NewNotification {
                        agent_id: agent,
                        kind: NotificationKind::Comment,
                        actor_id: Some(1 + (agent + k) % AGENTS),
                        post_id: (k % 2 == 0).then_some(1 + (agent * 7 + k) % POSTS),
                        comment_id: None,
                        message: String::new(),
                        now: NOW + k,
                    });
                }
            }
            notifications::add(c, batch)?;
            c.execute(
                "UPDATE notifications SET is_read = 1 WHERE created_at < ?1",
                [NOW + 90],
            )?;
            // Agent 7's backlog: 20,000 more notifications, the older 5,000 never read.
            c.execute(
                "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 20000)
                 INSERT INTO notifications(uuid, agent_id, kind, message, is_read, created_at)
                 SELECT 'backlog' || n, 7, 'follow', '', n > 5000, ?1 + 1000 + n FROM k",
                [NOW],
            )?;
            // One post in eight reported by one to five agents (4,500 open reports); one
            // reported post in five deleted since.
            for post in (8..=POSTS).step_by(8) {
                for k in 1..=(post % 5 + 1) {
                    moderation::report(c, post, k, &format!("reason {k}"), NOW + post * 10 + k)?;
                }
                if post % 40 == 0 {
                    let p = posts::by_id(c, post)?.unwrap();
                    posts::delete(c, &p)?;
                }
            }
            c.execute_batch("ANALYZE")?;
            Ok(())
        })
        .unwrap();
}

/// Plans of every statement `f` runs.
fn plans(conn: &mut Connection, f: impl FnOnce(&Connection)) -> Vec<(String, Vec<String>)> {
    CAPTURED.lock().unwrap().clear();
    conn.trace_v2(
        TraceEventCodes::SQLITE_TRACE_STMT,
        Some(|e: TraceEvent<'_>| {
            if let TraceEvent::Stmt(stmt, _) = e {
                CAPTURED.lock().unwrap().push(
                    stmt.expanded_sql()
                        .unwrap_or_else(|| stmt.sql().into_owned()),
                );
            }
        }),
    )
    .unwrap();
    f(conn);
    conn.trace_v2(TraceEventCodes::empty(), None::<fn(TraceEvent<'_>)>)
        .unwrap();
    let statements: Vec<String> = CAPTURED.lock().unwrap().drain(..).collect();
    statements
        .into_iter()
        .filter(|s| {
            s.trim_start().to_uppercase().starts_with("SELECT")
                || s.trim_start().to_uppercase().starts_with("WITH")
        })
        // FTS5 reads its own shadow tables ('main'.'posts_fts_data' ...): not our SQL.
        .filter(|s| !s.contains("'main'."))
        .map(|sql| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let lines = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (sql, lines)
        })
        .collect()
}

/// Tables and the aliases the store's SQL gives them.
const TABLES: &[&str] = &[
    "p",
    "a",
    "s",
    "c",
    "pc",
    "l",
    "posts",
    "agents",
    "submolts",
    "comments",
    "votes",
    "follows",
    "subscriptions",
    "api_keys",
    "submolt_moderators",
    "audit_log",
    "n",
    "notifications",
    "r",
    "post_reports",
];

/// Asserts no full table scan and, unless `bounded_sort`, no temporary sort.
#[track_caller]
fn assert_indexed(what: &str, plans: &[(String, Vec<String>)], bounded_sort: bool) {
    assert!(!plans.is_empty(), "{what}: no statement captured");
    for (sql, lines) in plans {
        for line in lines {
            // `SCAN x` without an index, where x is a real table (CTEs and FTS are fine).
            let full_scan = line.strip_prefix("SCAN ").is_some_and(|rest| {
                !rest.contains("USING")
                    && TABLES.contains(&rest.split_whitespace().next().unwrap_or(""))
            });
            assert!(
                !full_scan,
                "{what}: full table scan `{line}` in\n{sql}\nplan: {lines:#?}"
            );
            if !bounded_sort {
                assert!(
                    !line.contains("TEMP B-TREE"),
                    "{what}: sorts in a temp b-tree `{line}` in\n{sql}\nplan: {lines:#?}"
                );
            }
        }
    }
}

fn page(after: Option<(f64, i64)>) -> PageRequest {
    PageRequest {
        limit: 25,
        after,
        offset: 0,
        now: NOW,
        include_quarantined: false,
    }
}

#[test]
fn every_listing_query_uses_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
    seed(&store);
    let mut conn = connect_read_only(store.db_path()).unwrap();

    for sort in [PostSort::Hot, PostSort::New, PostSort::Top] {
        for scope in [FeedScope::All, FeedScope::Submolt(3), FeedScope::Author(5)] {
            let first =
                feed::list_posts(&conn, scope, sort, Window::All, false, &page(None)).unwrap();
            assert_eq!(first.items.len(), 25, "{sort:?} {scope:?}");
            let after = first
                .next_cursor
                .map(|c: Cursor| (c.key.unwrap(), c.id.unwrap()));
            for after in [None, after] {
                let p = plans(&mut conn, |c| {
                    feed::list_posts(c, scope, sort, Window::All, false, &page(after)).unwrap();
                });
                assert_indexed(
                    &format!("posts {sort:?} {scope:?} after={after:?}"),
                    &p,
                    false,
                );
            }
        }
    }
    // Windowed top and rising sort at most the posts inside their window.
    for (sort, window) in [
        (PostSort::Top, Window::Day),
        (PostSort::Top, Window::Week),
        (PostSort::Rising, Window::All),
    ] {
        let p = plans(&mut conn, |c| {
            feed::list_posts(c, FeedScope::All, sort, window, false, &page(None)).unwrap();
        });
        assert_indexed(&format!("{sort:?} {window:?}"), &p, true);
        // Either the window is found through the time index (then sorted), or the score
        // index is walked in order and filtered by time; both are index-driven.
        assert!(
            p.iter()
                .flat_map(|(_, l)| l)
                .any(|l| l.contains("USING INDEX posts_")),
            "{p:#?}"
        );
    }
    let p = plans(&mut conn, |c| {
        feed::list_posts(
            c,
            FeedScope::Submolt(2),
            PostSort::Hot,
            Window::All,
            true,
            &page(None),
        )
        .unwrap();
        posts::pinned(c, 2).unwrap();
    });
    assert_indexed("submolt feed with pins", &p, false);

    let p = plans(&mut conn, |c| {
        let f = feed::personal_feed(c, 1, false, PostSort::Hot, &page(None)).unwrap();
        assert_eq!(f.items.len(), 25);
    });
    assert_indexed("personal feed", &p, false);

    for sort in [
        SubmoltSort::Popular,
        SubmoltSort::New,
        SubmoltSort::Alphabetical,
    ] {
        let first = submolts::list(&conn, sort, &page(None)).unwrap();
        let after = first.next_cursor.map(|c| (c.key.unwrap(), c.id.unwrap()));
        let p = plans(&mut conn, |c| {
            submolts::list(c, sort, &page(None)).unwrap();
            submolts::list(c, sort, &page(after)).unwrap();
        });
        assert_indexed(&format!("submolts {sort:?}"), &p, false);
    }

    // Comment trees: roots of one post through that sort's roots index (no sort, however
    // large the thread), replies through the parent index.
    for sort in [
        CommentSort::Best,
        CommentSort::Top,
        CommentSort::New,
        CommentSort::Old,
        CommentSort::Controversial,
    ] {
        let p = plans(&mut conn, |c| {
            let (roots, replies) = comments::tree(c, 1, sort, &page(None)).unwrap();
            assert!(!roots.items.is_empty(), "{sort:?}");
            // The seed hangs replies off the newer comments only.
            assert!(sort == CommentSort::Old || !replies.is_empty(), "{sort:?}");
        });
        assert_indexed(&format!("comments {sort:?}"), &p, false);
        let first = comments::tree(
            &conn,
            1,
            sort,
            &PageRequest {
                limit: 10,
                ..page(None)
            },
        )
        .unwrap()
        .0;
        let cursor = first.next_cursor.expect("post 1 has more than 10 roots");
        let after = Some((cursor.key.unwrap(), cursor.id.unwrap()));
        let p2 = plans(&mut conn, |c| {
            let (roots, _) = comments::tree(
                c,
                1,
                sort,
                &PageRequest {
                    limit: 10,
                    ..page(after)
                },
            )
            .unwrap();
            let first_ids: Vec<i64> = first.items.iter().map(|c| c.id).collect();
            assert!(
                roots.items.iter().all(|r| !first_ids.contains(&r.id)),
                "{sort:?}: page 2 repeats page 1"
            );
        });
        assert_indexed(&format!("comments {sort:?} page 2"), &p2, false);
        let all: Vec<&String> = p.iter().flat_map(|(_, l)| l).collect();
        assert!(
            all.iter()
                .any(|l| l.contains("comments_post_roots") || l.contains("comments_roots_")),
            "{sort:?}: {all:#?}"
        );
        assert!(
            all.iter().any(|l| l.contains("comments_parent")),
            "{sort:?}: {all:#?}"
        );
    }
    let p = plans(&mut conn, |c| {
        comments::recent_by_author(c, 3, 5, false).unwrap();
    });
    assert_indexed("recent comments", &p, false);
    // The audit log is read newest first by walking its rowid b-tree backwards up to the
    // LIMIT: the plan says `SCAN l` for that walk, so check it has no sort instead.
    let p = plans(&mut conn, |c| {
        agents::audit_log(c, 20).unwrap();
    });
    assert!(
        p.iter()
            .flat_map(|(_, l)| l)
            .all(|l| !l.contains("TEMP B-TREE")),
        "{p:#?}"
    );

    let q = search::fts_query("coral reefs").unwrap();
    let p = plans(&mut conn, |c| {
        assert!(!search::posts(c, &q, 20, 0, false).unwrap().is_empty());
        assert!(
            !search::comments(c, "\"coral\"", 20, 0, false)
                .unwrap()
                .is_empty()
        );
    });
    // Relevance order is computed by FTS5 over the matches, never over a table.
    assert_indexed("search", &p, true);

    // Web UI: the moderation queue, the log, an owner's agents, keys and events.
    let p = plans(&mut conn, |c| {
        for scope in [
            moderation::QueueScope::All,
            moderation::QueueScope::Submolts(vec![1, 2]),
        ] {
            moderation::queued_posts(c, &scope, None, 50).unwrap();
            moderation::queued_comments(c, &scope, Some(1_000), 50).unwrap();
        }
    });
    assert_indexed("moderation queue", &p, false);
    let p = plans(&mut conn, |c| {
        let agents: Vec<i64> = owners::agents_of(c, 1)
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect();
        owners::events_of(c, &agents, 50).unwrap();
        owners::keys_of(c, 3).unwrap();
        owners::moderated_submolts(c, 1).unwrap();
    });
    assert_indexed("owner dashboard", &p, false);

    // An agent's notifications, newest first, all and unread ones, a later page, and its
    // unread count: through the agent's notifications, never the whole table (the unread
    // listing and count may sort or count the agent's unread ones alone).
    let p = plans(&mut conn, |c| {
        let all = notifications::list(c, 200, false, None, 20).unwrap();
        assert_eq!(all.len(), 20);
        notifications::list(c, 200, false, Some(all[19].id), 20).unwrap();
    });
    assert_indexed("notifications", &p, false);
    assert!(
        p.iter()
            .flat_map(|(_, l)| l)
            .any(|l| l.contains("notifications_agent")),
        "{p:#?}"
    );
    let p = plans(&mut conn, |c| {
        assert_eq!(
            notifications::list(c, 200, true, None, 20).unwrap().len(),
            10
        );
        assert_eq!(notifications::unread(c, 200).unwrap(), 10);
    });
    assert_indexed("unread notifications", &p, true);
    for (sql, lines) in &p {
        assert!(
            lines.iter().any(|l| l.contains("INDEX notifications_")),
            "{sql}: {lines:#?}"
        );
    }

    // Reported posts, everything and two submolts: the reports walked newest first
    // through post_reports_created (never all of them grouped), posts by primary key.
    let p = plans(&mut conn, |c| {
        for scope in [
            moderation::QueueScope::All,
            moderation::QueueScope::Submolts(vec![2, 10]),
        ] {
            let listed = moderation::reported(c, &scope, 50).unwrap();
            assert_eq!(listed.len(), 50, "{scope:?}");
        }
    });
    assert_indexed("reported posts", &p, true);
    // Only one post's reasons are sorted, never the reports.
    for (sql, lines) in &p {
        assert!(
            lines.iter().all(|l| !l.contains("TEMP B-TREE")
                || l.contains("ORDER BY") && sql.starts_with("SELECT reason ")),
            "{sql}: {lines:#?}"
        );
    }
    assert!(
        p.iter()
            .flat_map(|(_, l)| l)
            .any(|l| l.contains("post_reports_created")),
        "{p:#?}"
    );

    // Agent 7 pages its old unread notifications, behind 15,000 read ones, without
    // reading them all: each statement steps the VM about as often as for a page (about
    // 1,000 steps) or the unread count's cap (about 8,000), not for every notification of
    // the backlog (walking notifications_agent took 76,000 for the first page).
    let middle = notifications::list(&conn, 7, true, None, 2_500).unwrap()[2_499].id;
    let p = plans(&mut conn, |c| {
        assert_eq!(notifications::list(c, 7, true, None, 20).unwrap().len(), 20);
        assert_eq!(
            notifications::list(c, 7, true, Some(middle), 20)
                .unwrap()
                .len(),
            20
        );
        notifications::unread(c, 7).unwrap();
    });
    for (sql, lines) in &p {
        let mut stmt = conn.prepare(sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        while rows.next().unwrap().is_some() {}
        drop(rows);
        let steps = stmt.get_status(rusqlite::StatementStatus::VmStep);
        assert!(steps <= 10_000, "{steps} VM steps: {sql}\nplan: {lines:#?}");
    }

    let p = plans(&mut conn, |c| {
        moderation::entries(c, None, 50).unwrap();
    });
    assert!(
        p.iter()
            .flat_map(|(_, l)| l)
            .all(|l| !l.contains("TEMP B-TREE")),
        "{p:#?}"
    );
}
