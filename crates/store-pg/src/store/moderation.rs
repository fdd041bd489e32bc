//! The moderation queue (quarantined posts and comments), releasing and removing items,
//! agents' reports of posts and the decisions on them, and the public moderation log, on
//! PostgreSQL (the SQLite reference: crates/store-sqlite/src/moderation.rs).

use tidepool_core::model::comments::Comment;
use tidepool_core::model::moderation::{
    LogEntry, MAX_PAGE, QueueScope, REPORT_REASONS_SHOWN, Release, ReportedPost,
};
use tidepool_core::model::posts::Post;
use tidepool_core::model::votes::TargetKind;
use tidepool_store::{ModerationRecord, QueueAction, Result, StoreError};

use super::content::{delete_comment_in, delete_post_in};
use super::post_rows::{
    comment_columns, comment_from_row, comment_joins, get, post_columns, post_from_row, post_joins,
};
use crate::notify::{Invalidation, notify};
use crate::{PgPool, Sql, Type};

/// The submolts a scope covers as an array parameter: NULL for everything.
fn submolts(scope: &QueueScope) -> Option<&[i64]> {
    match scope {
        QueueScope::All => None,
        QueueScope::Submolts(ids) => Some(ids),
    }
}

// Quarantined items are few: the queue walks its partial index (`is_quarantined = 1 AND
// is_deleted = 0`, newest id first) and filters by submolt.

const QUEUED_POSTS: Sql = Sql::new(
    concat!(
        "SELECT ",
        post_columns!(),
        " FROM ",
        post_joins!(),
        " WHERE p.is_quarantined = 1 AND p.is_deleted = 0 AND p.id < $1
             AND ($3::int8[] IS NULL OR p.submolt_id = ANY($3))
         ORDER BY p.id DESC LIMIT $2"
    ),
    &[Type::INT8, Type::INT8, Type::INT8_ARRAY],
);

const QUEUED_COMMENTS: Sql = Sql::new(
    concat!(
        "SELECT ",
        comment_columns!(),
        " FROM ",
        comment_joins!(),
        " WHERE c.is_quarantined = 1 AND c.is_deleted = 0 AND p.is_deleted = 0 AND c.id < $1
             AND ($3::int8[] IS NULL OR p.submolt_id = ANY($3))
         ORDER BY c.id DESC LIMIT $2"
    ),
    &[Type::INT8, Type::INT8, Type::INT8_ARRAY],
);

pub(crate) async fn queued_posts(
    db: &PgPool,
    scope: QueueScope,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Post>> {
    db.query(
        &QUEUED_POSTS,
        &[
            &before.unwrap_or(i64::MAX),
            &limit.clamp(1, MAX_PAGE),
            &submolts(&scope),
        ],
    )
    .await?
    .iter()
    .map(post_from_row)
    .collect()
}

pub(crate) async fn queued_comments(
    db: &PgPool,
    scope: QueueScope,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Comment>> {
    db.query(
        &QUEUED_COMMENTS,
        &[
            &before.unwrap_or(i64::MAX),
            &limit.clamp(1, MAX_PAGE),
            &submolts(&scope),
        ],
    )
    .await?
    .iter()
    .map(comment_from_row)
    .collect()
}

/// Lets a quarantined item back (`$2`: 0 everywhere, 2 its submolt only); its labels stay
/// visible. An administrator's release also widens a submolt moderator's earlier one.
/// The WHERE clause is the check: of two moderators releasing at once, one changes it.
const RELEASE_POST: Sql = Sql::new(
    "UPDATE posts SET is_quarantined = $2, safety_verdict = 'label'
     WHERE id = $1 AND (is_quarantined = 1 OR (is_quarantined = 2 AND $2 = 0))",
    &[Type::INT8, Type::INT2],
);

const RELEASE_COMMENT: Sql = Sql::new(
    "UPDATE comments SET is_quarantined = $2, safety_verdict = 'label'
     WHERE id = $1 AND (is_quarantined = 1 OR (is_quarantined = 2 AND $2 = 0))",
    &[Type::INT8, Type::INT2],
);

const LOG: Sql = Sql::new(
    "INSERT INTO mod_log(at, actor, action, target_kind, target, reason)
     VALUES ($1, $2, $3, $4, $5, $6)",
    &[
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ],
);

/// The stored visibility of a release.
fn visibility(to: Release) -> i16 {
    match to {
        Release::Global => 0,
        Release::Submolt => 2,
    }
}

/// The item's visibility, locked (the row lock comes first, as in every delete): only
/// what is still held back (quarantined, or released to its submolt only) is removed.
const POST_HELD: Sql = Sql::new(
    "SELECT is_quarantined FROM posts WHERE id = $1 AND is_deleted = 0 FOR UPDATE",
    &[Type::INT8],
);
const COMMENT_HELD: Sql = Sql::new(
    "SELECT is_quarantined, is_deleted FROM comments WHERE id = $1 FOR UPDATE",
    &[Type::INT8],
);

pub(crate) async fn moderate_item(
    db: &PgPool,
    kind: TargetKind,
    id: i64,
    action: QueueAction,
    log: ModerationRecord,
) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let changed = match (kind, action) {
        (TargetKind::Post, QueueAction::Release(to)) => {
            tx.execute(&RELEASE_POST, &[&id, &visibility(to)]).await? == 1
        }
        (TargetKind::Comment, QueueAction::Release(to)) => {
            tx.execute(&RELEASE_COMMENT, &[&id, &visibility(to)])
                .await?
                == 1
        }
        // Only what is still held back: a release that won the race stands.
        (TargetKind::Post, QueueAction::Remove) => {
            let row = tx
                .query_opt(&POST_HELD, &[&id])
                .await?
                .ok_or(StoreError::NotFound("Post"))?;
            let held = row.try_get::<_, i16>(0).map_err(StoreError::internal)? != 0;
            if held {
                delete_post_in(&tx, id).await?;
            }
            held
        }
        (TargetKind::Comment, QueueAction::Remove) => {
            let row = tx
                .query_opt(&COMMENT_HELD, &[&id])
                .await?
                .ok_or(StoreError::NotFound("Comment"))?;
            let visibility: i16 = row.try_get(0).map_err(StoreError::internal)?;
            let deleted: i16 = row.try_get(1).map_err(StoreError::internal)?;
            let held = deleted == 0 && visibility != 0;
            if held {
                delete_comment_in(&tx, id).await?;
            }
            held
        }
    };
    if !changed {
        return Err(StoreError::Refused(
            "This item is no longer quarantined".into(),
        ));
    }
    tx.execute(
        &LOG,
        &[
            &log.now,
            &log.actor,
            &log.action,
            &log.target_kind,
            &log.target,
            &log.reason,
        ],
    )
    .await?;
    // Released or removed, the item's place in public listings changed.
    notify(&tx, Invalidation::Pages).await?;
    tx.commit().await?;
    Ok(())
}

const LOG_ENTRIES: Sql = Sql::new(
    "SELECT id, at, actor, action, target_kind, target, reason FROM mod_log
     WHERE id < $1 ORDER BY id DESC LIMIT $2",
    &[Type::INT8, Type::INT8],
);

pub(crate) async fn moderation_log(
    db: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<LogEntry>> {
    db.query(
        &LOG_ENTRIES,
        &[&before.unwrap_or(i64::MAX), &limit.clamp(1, MAX_PAGE)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(LogEntry {
            id: get(r, 0)?,
            at: get(r, 1)?,
            actor: get(r, 2)?,
            action: get(r, 3)?,
            target_kind: get(r, 4)?,
            target: get(r, 5)?,
            reason: get(r, 6)?,
        })
    })
    .collect()
}

// ---- reports ----
//
// A report is one row per agent and post; a moderator's decision deletes the post's rows
// (the decision stays in mod_log). Reports of a deleted post are never listed.

/// A second report by the same agent changes nothing. Against a resolve deleting the same
/// row at once, PostgreSQL waits for it: a committed resolve lets this report in as a new
/// one, a rolled back one leaves the old report standing (false).
const REPORT: Sql = Sql::new(
    "INSERT INTO post_reports(post_id, reporter_id, reason, created_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (post_id, reporter_id) DO NOTHING",
    &[Type::INT8, Type::INT8, Type::TEXT, Type::INT8],
);

pub(crate) async fn report_post(
    db: &PgPool,
    post_id: i64,
    reporter_id: i64,
    reason: String,
    now: i64,
) -> Result<bool> {
    Ok(db
        .execute(&REPORT, &[&post_id, &reporter_id, &reason, &now])
        .await?
        == 1)
}

/// The live reported posts in scope (`$2`, NULL: all), most recently reported first, at
/// most `$1`, each with how many agents reported it, when the latest did and its newest
/// `$3` reasons. Reports are walked newest first through `post_reports_created`, keeping
/// each post's newest report only (the anti-join probes that post's reports by primary
/// key), so a page reads the reports down to its last post, never all of them, and the
/// posts by primary key.
const REPORTED: Sql = Sql::new(
    concat!(
        "SELECT ",
        post_columns!(),
        ", (SELECT count(*) FROM post_reports c WHERE c.post_id = r.post_id), r.created_at,
             ARRAY(SELECT x.reason FROM post_reports x WHERE x.post_id = r.post_id
                   ORDER BY x.created_at DESC, x.reporter_id DESC LIMIT $3)
         FROM post_reports r JOIN (",
        post_joins!(),
        ") ON p.id = r.post_id
         WHERE p.is_deleted = 0 AND ($2::int8[] IS NULL OR p.submolt_id = ANY($2))
           AND NOT EXISTS (
               SELECT 1 FROM post_reports n
               WHERE n.post_id = r.post_id
                 AND (n.created_at, n.reporter_id) > (r.created_at, r.reporter_id))
         ORDER BY r.created_at DESC, r.post_id DESC LIMIT $1"
    ),
    &[Type::INT8, Type::INT8_ARRAY, Type::INT8],
);

/// Where [`REPORTED`]'s own columns start, after [`post_columns`]'.
const POST_WIDTH: usize = 30;

pub(crate) async fn reported_posts(
    db: &PgPool,
    scope: QueueScope,
    limit: i64,
) -> Result<Vec<ReportedPost>> {
    db.query(
        &REPORTED,
        &[
            &limit.clamp(1, MAX_PAGE),
            &submolts(&scope),
            &(REPORT_REASONS_SHOWN as i64),
        ],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(ReportedPost {
            post: post_from_row(r)?,
            reports: get(r, POST_WIDTH)?,
            latest_at: get(r, POST_WIDTH + 1)?,
            reasons: get(r, POST_WIDTH + 2)?,
        })
    })
    .collect()
}

/// The live post, locked first (as in every delete): two decisions on one post queue here,
/// and the second finds no open report; a decision behind the post's deletion finds it
/// gone.
const LOCK_LIVE_POST: Sql = Sql::new(
    "SELECT 1 FROM posts WHERE id = $1 AND is_deleted = 0 FOR NO KEY UPDATE",
    &[Type::INT8],
);

const CLOSE_REPORTS: Sql = Sql::new("DELETE FROM post_reports WHERE post_id = $1", &[Type::INT8]);

pub(crate) async fn resolve_reports(
    db: &PgPool,
    post_id: i64,
    remove: bool,
    log: ModerationRecord,
) -> Result<i64> {
    let no_report = || StoreError::Refused("This post has no open report".into());
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    tx.query_opt(&LOCK_LIVE_POST, &[&post_id])
        .await?
        .ok_or_else(no_report)?;
    // Reports filed while this runs and committed after the DELETE began stay open: a
    // moderator sees them next time (or never, if the post is removed: it is not listed).
    let closed = tx.execute(&CLOSE_REPORTS, &[&post_id]).await?;
    if closed == 0 {
        return Err(no_report());
    }
    if remove {
        delete_post_in(&tx, post_id).await?;
    }
    tx.execute(
        &LOG,
        &[
            &log.now,
            &log.actor,
            &log.action,
            &log.target_kind,
            &log.target,
            &log.reason,
        ],
    )
    .await?;
    if remove {
        notify(&tx, Invalidation::Pages).await?;
    }
    tx.commit().await?;
    Ok(closed as i64)
}

#[cfg(test)]
mod tests {
    //! What the conformance suite cannot show on PostgreSQL: a decision or a report racing
    //! another transaction's change of the same rows, staged with the test's own
    //! transaction held open; and the reported posts' listing on many reports.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tidepool_store::Store;

    use super::*;
    use crate::store::test_support::{
        NOW, agent, assert_walks_indexes_typed, open, until_one_waits,
    };

    /// 400 agents, 40 submolts, 20,000 posts (one in ten deleted); one post in eight
    /// reported by one to five agents (about 7,500 open reports).
    async fn seed(client: &tokio_postgres::Client) {
        client
            .batch_execute(&format!(
                "INSERT INTO agents(uuid, name, name_key, created_at, last_active)
                     SELECT 'a' || g, 'a' || g, 'a' || g, 0, 0 FROM generate_series(1, 400) g;
                 INSERT INTO submolts(uuid, name, display_name, created_at, last_activity_at)
                     SELECT 's' || g, 's' || g, 's' || g, 0, 0 FROM generate_series(1, 40) g;
                 WITH a AS (SELECT array_agg(id ORDER BY id) ids FROM agents),
                      s AS (SELECT array_agg(id ORDER BY id) ids FROM submolts
                            WHERE name LIKE 's%')
                 INSERT INTO posts(uuid, author_id, submolt_id, title, post_type, hot_rank,
                         created_at, updated_at, is_deleted)
                     SELECT 'p' || g, a.ids[1 + g % 400], s.ids[1 + g % 40], 'post ' || g,
                            'text', 0, {NOW} + g, {NOW} + g, CASE WHEN g % 10 = 0 THEN 1 ELSE 0 END
                     FROM generate_series(1, 20000) g, a, s;
                 WITH a AS (SELECT array_agg(id ORDER BY id) ids FROM agents)
                 INSERT INTO post_reports(post_id, reporter_id, reason, created_at)
                     SELECT p.id, a.ids[k], 'reason ' || k, {NOW} + p.id * 10 + k
                     FROM posts p, a, generate_series(1, 5) k
                     WHERE p.id % 8 = 0 AND k <= p.id % 5 + 1;
                 ANALYZE;"
            ))
            .await
            .unwrap();
    }

    async fn reported_post(store: &crate::PgStore, name: &str) -> (i64, i64, i64) {
        let author = agent(store, &format!("{name}Author")).await;
        let reporter = agent(store, &format!("{name}Reporter")).await;
        let g = store.submolt_by_name("general").await.unwrap().unwrap().id;
        let post = store
            .create_post(tidepool_core::model::posts::NewPost {
                author_id: author,
                submolt_id: g,
                title: format!("{name} post"),
                content: None,
                url: None,
                post_type: tidepool_core::model::posts::PostType::Text,
                safety: tidepool_core::model::posts::Safety::allow(),
                now: NOW,
            })
            .await
            .unwrap();
        assert!(
            store
                .report_post(post.id, reporter, "first".into(), NOW)
                .await
                .unwrap()
        );
        (post.id, reporter, author)
    }

    fn record(action: &str) -> ModerationRecord {
        ModerationRecord {
            actor: "mod".into(),
            action: action.into(),
            target_kind: "post".into(),
            target: "x".into(),
            reason: "r".into(),
            now: NOW,
        }
    }

    async fn post_count(store: &crate::PgStore) -> i64 {
        store
            .stats()
            .await
            .unwrap()
            .into_iter()
            .find(|(k, _)| k == "posts")
            .map_or(0, |(_, v)| v)
    }

    /// A decision waits for a transaction deleting the post: after its commit the post has
    /// no open report (Refused, not deleted or counted again); after its rollback the
    /// decision goes through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_decision_behind_the_posts_deletion_finds_no_report() {
        let (_db, store) = open().await;
        for ending in ["commit", "rollback"] {
            let (post, _, _) = reported_post(&store, &format!("Gone{ending}")).await;
            let posts = post_count(&store).await;
            let mut conn = store.pool().get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.batch_execute(&format!(
                "UPDATE posts SET is_deleted = 1 WHERE id = {post}"
            ))
            .await
            .unwrap();
            let racing = {
                let store = store.clone();
                tokio::spawn(
                    async move { store.resolve_reports(post, true, record("remove")).await },
                )
            };
            until_one_waits(&store).await;
            if ending == "commit" {
                tx.commit().await.unwrap();
                let r = racing.await.unwrap();
                assert!(matches!(r, Err(StoreError::Refused(_))), "{r:?}");
                assert_eq!(post_count(&store).await, posts);
            } else {
                tx.rollback().await.unwrap();
                assert_eq!(racing.await.unwrap().unwrap(), 1);
                assert_eq!(post_count(&store).await, posts - 1);
                assert!(store.post_by_id(post).await.unwrap().is_none());
            }
        }
    }

    /// A report by the agent whose report a decision is closing waits for that decision:
    /// after its commit the report is a new open one; after its rollback the old one
    /// stands and this one changes nothing. Either way no report is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_report_behind_a_decision_on_it_is_never_lost() {
        let (_db, store) = open().await;
        for ending in ["commit", "rollback"] {
            let (post, reporter, _) = reported_post(&store, &format!("Again{ending}")).await;
            let mut conn = store.pool().get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.batch_execute(&format!("DELETE FROM post_reports WHERE post_id = {post}"))
                .await
                .unwrap();
            let racing = {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .report_post(post, reporter, "second".into(), NOW + 1)
                        .await
                })
            };
            until_one_waits(&store).await;
            let commit = ending == "commit";
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            assert_eq!(racing.await.unwrap().unwrap(), commit, "{ending}");
            let listed = store.reported_posts(QueueScope::All, 10).await.unwrap();
            let entry = listed.iter().find(|r| r.post.id == post).unwrap();
            let reason = if commit { "second" } else { "first" };
            assert_eq!(
                (entry.reports, entry.reasons.clone()),
                (1, vec![reason.to_owned()])
            );
        }
    }

    /// On 7,500 open reports of 2,500 posts among 20,000, the listing (everything, and
    /// two submolts) walks the reports newest first through `post_reports_created` and
    /// reads posts by primary key (custom and generic plans): no sequential scan, no sort
    /// beyond one post's reports.
    #[tokio::test]
    async fn the_reported_posts_walk_their_indexes() {
        let (_db, store) = open().await;
        let conn = store.pool().get().await.unwrap();
        let client = conn.client();
        seed(client).await;
        let rows: i64 = client
            .query_one("SELECT count(*) FROM post_reports", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 7_500);
        let two: Vec<i64> = client
            .query("SELECT id FROM submolts WHERE name IN ('s9', 's17')", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let shown = (REPORT_REASONS_SHOWN as i64).to_string();
        for (what, scope) in [
            ("all", "NULL".to_owned()),
            ("two submolts", format!("'{{{},{}}}'", two[0], two[1])),
        ] {
            let args = [
                ("int8", "50".to_owned()),
                ("int8[]", scope),
                ("int8", shown.clone()),
            ];
            for tables in [
                (
                    "post_reports",
                    &["post_reports_created", "post_reports_pkey"][..],
                ),
                ("posts", &["posts_pkey"][..]),
            ] {
                assert_walks_indexes_typed(client, what, &REPORTED, &args, tables, 10.0).await;
            }
        }
        // The page is what the grouping of every open report would give.
        let listed = store.reported_posts(QueueScope::All, 50).await.unwrap();
        let expected: Vec<(i64, i64, i64)> = client
            .query(
                "SELECT r.post_id, count(*), max(r.created_at) FROM post_reports r
                 JOIN posts p ON p.id = r.post_id WHERE p.is_deleted = 0
                 GROUP BY r.post_id ORDER BY 3 DESC, 1 DESC LIMIT 50",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let got: Vec<(i64, i64, i64)> = listed
            .iter()
            .map(|r| (r.post.id, r.reports, r.latest_at))
            .collect();
        assert_eq!(got, expected);
        let scoped = store
            .reported_posts(QueueScope::Submolts(two.clone()), 50)
            .await
            .unwrap();
        assert!(!scoped.is_empty());
        assert!(scoped.iter().all(|r| two.contains(&r.post.submolt.id)));
    }
}
