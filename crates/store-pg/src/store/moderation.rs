//! The moderation queue (quarantined posts and comments), releasing and removing items,
//! and the public moderation log, on PostgreSQL.

use tidepool_core::model::comments::Comment;
use tidepool_core::model::moderation::{LogEntry, MAX_PAGE, QueueScope, Release};
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
