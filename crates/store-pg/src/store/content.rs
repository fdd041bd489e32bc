//! Posts, comments and votes on PostgreSQL.
//!
//! Every operation is one transaction. Counters (post/comment counts of submolts, agents
//! and the site, scores, karma) move by relative updates in the transaction that changes
//! their rows, so they stay exact with any number of nodes writing. Rows are locked in one
//! order everywhere: the item (post or comment), then its submolt, then agents (in id
//! order when there are two), then the site counters.

use serde_json::{Value, json};
use tidepool_core::model::comments::{Comment, NewComment};
use tidepool_core::model::posts::{MAX_PINNED, NewPost, Post, Safety};
use tidepool_core::model::votes::{Ballot, TargetKind, VoteAction};
use tidepool_core::text::COMMENT_DEPTH_MAX;
use tidepool_store::{Result, StoreError};

use super::post_rows::{
    COMMENT_BY_ID, POST_BY_ID, comment_columns, comment_from_row, comment_joins, get, post_columns,
    post_from_row, post_joins,
};
use super::search::{self, Index, Postings};
use crate::notify::{Invalidation, notify};
use crate::{PgPool, Sql, ToSql, Tx, Type};

// ---- shared pieces ----

const BUMP_COUNTER: Sql = Sql::new(
    "UPDATE counters SET value = value + $2 WHERE name = $1 AND shard = pg_backend_pid() % 16",
    &[Type::TEXT, Type::INT8],
);

const AUDIT: Sql = Sql::new(
    "INSERT INTO audit_log(at, event, agent_id, detail) VALUES ($1, $2, $3, $4)",
    &[Type::INT8, Type::TEXT, Type::INT8, Type::TEXT],
);

/// Records a quarantine in the audit log, in the transaction that stored the text (same
/// event and detail as SQLite's `audit_quarantine`).
async fn audit_quarantine(
    tx: &Tx<'_>,
    safety: &Safety,
    agent_id: i64,
    what: &str,
    id: &str,
) -> Result<()> {
    if safety.quarantined {
        let labels = Value::from(&safety.labels);
        let detail = json!({what: id, "labels": labels, "injection_score": safety.injection_score});
        tx.execute(
            &AUDIT,
            &[
                &tidepool_core::time::now_ms(),
                &"content_quarantined",
                &Some(agent_id),
                &detail.to_string(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The visibility stored for new text: 1 when quarantined, else 0 (everywhere).
fn visibility(safety: &Safety) -> i16 {
    i16::from(safety.quarantined)
}

// ---- posts ----

const INSERT_POST: Sql = Sql::new(
    "INSERT INTO posts(uuid, author_id, submolt_id, title, content, url, post_type, hot_rank,
         created_at, updated_at, safety_verdict, safety_labels, injection_score, is_quarantined)
     VALUES ($1, $2, $3, $4, $5, $6, $7, tp_hot(0, $8), $8, $8, $9, $10, $11, $12)
     RETURNING id",
    &[
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::FLOAT8,
        Type::INT2,
    ],
);

const SUBMOLT_POSTED: Sql = Sql::new(
    "UPDATE submolts SET post_count = post_count + 1, last_activity_at = $2 WHERE id = $1",
    &[Type::INT8, Type::INT8],
);

/// The author's post count and last activity (SQLite's `touch`: never moves back).
const AUTHOR_POSTED: Sql = Sql::new(
    "UPDATE agents SET post_count = post_count + 1, last_active = GREATEST(last_active, $2)
     WHERE id = $1",
    &[Type::INT8, Type::INT8],
);

pub(crate) async fn create_post(db: &PgPool, new: NewPost) -> Result<Post> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let uuid = tidepool_store::new_public_id();
    let row = tx
        .query_one(
            &INSERT_POST,
            &[
                &uuid,
                &new.author_id,
                &new.submolt_id,
                &new.title,
                &new.content,
                &new.url,
                &new.post_type.as_str(),
                &new.now,
                &new.safety.verdict.as_str(),
                &new.safety.labels.to_json(),
                &new.safety.injection_score,
                &visibility(&new.safety),
            ],
        )
        .await?;
    let id: i64 = get(&row, 0)?;
    let postings = Postings::of_post(&new.title, new.content.as_deref(), new.url.as_deref());
    search::insert(&tx, Index::Posts, id, &postings).await?;
    tx.execute(&SUBMOLT_POSTED, &[&new.submolt_id, &new.now])
        .await?;
    tx.execute(&AUTHOR_POSTED, &[&new.author_id, &new.now])
        .await?;
    tx.execute(&BUMP_COUNTER, &[&"posts", &1i64]).await?;
    audit_quarantine(&tx, &new.safety, new.author_id, "post", &uuid).await?;
    let post = tx
        .query_opt(&POST_BY_ID, &[&id])
        .await?
        .ok_or(StoreError::NotFound("Post"))?;
    let post = post_from_row(&post)?;
    tx.commit().await?;
    Ok(post)
}

pub(crate) async fn post_by_id(db: &PgPool, id: i64) -> Result<Option<Post>> {
    db.query_opt(&POST_BY_ID, &[&id])
        .await?
        .map(|r| post_from_row(&r))
        .transpose()
}

const POST_BY_UUID: Sql = Sql::new(
    concat!(
        "SELECT ",
        post_columns!(),
        " FROM ",
        post_joins!(),
        " WHERE p.uuid = $1 AND p.is_deleted = 0"
    ),
    &[Type::TEXT],
);

pub(crate) async fn post_by_uuid(db: &PgPool, uuid: &str) -> Result<Option<Post>> {
    db.query_opt(&POST_BY_UUID, &[&uuid])
        .await?
        .map(|r| post_from_row(&r))
        .transpose()
}

/// Erases a live post, returning the text it had so its words leave search with it. The
/// row stays, flagged, so votes and comments keep a valid parent and karma stays equal to
/// the votes an author received. The old row is locked first, so of two deletes at once
/// the second finds the post gone.
const ERASE_POST: Sql = Sql::new(
    "WITH old AS (
         SELECT id, title, content, url FROM posts WHERE id = $1 AND is_deleted = 0
         FOR NO KEY UPDATE)
     UPDATE posts p SET is_deleted = 1, is_pinned = 0, title = '[deleted]', content = NULL,
         url = NULL, updated_at = $2
     FROM old WHERE p.id = old.id AND p.is_deleted = 0
     RETURNING p.submolt_id, p.author_id, old.title, old.content, old.url",
    &[Type::INT8, Type::INT8],
);

const SUBMOLT_UNPOSTED: Sql = Sql::new(
    "UPDATE submolts SET post_count = post_count - 1 WHERE id = $1",
    &[Type::INT8],
);

const AUTHOR_UNPOSTED: Sql = Sql::new(
    "UPDATE agents SET post_count = post_count - 1 WHERE id = $1",
    &[Type::INT8],
);

/// Deletes a live post inside `tx` (`NotFound` when there is none): the counters move
/// only if this transaction is the one that flagged it, so a post deleted twice at once
/// is counted once.
pub(crate) async fn delete_post_in(tx: &Tx<'_>, post_id: i64) -> Result<()> {
    let row = tx
        .query_opt(&ERASE_POST, &[&post_id, &tidepool_core::time::now_ms()])
        .await?
        .ok_or(StoreError::NotFound("Post"))?;
    let (submolt_id, author_id): (i64, i64) = (get(&row, 0)?, get(&row, 1)?);
    let (title, content, url): (String, Option<String>, Option<String>) =
        (get(&row, 2)?, get(&row, 3)?, get(&row, 4)?);
    let postings = Postings::of_post(&title, content.as_deref(), url.as_deref());
    search::remove(tx, Index::Posts, post_id, &postings).await?;
    tx.execute(&SUBMOLT_UNPOSTED, &[&submolt_id]).await?;
    tx.execute(&AUTHOR_UNPOSTED, &[&author_id]).await?;
    tx.execute(&BUMP_COUNTER, &[&"posts", &-1i64]).await?;
    Ok(())
}

pub(crate) async fn delete_post(db: &PgPool, post_id: i64) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    delete_post_in(&tx, post_id).await?;
    notify(&tx, Invalidation::Pages).await?;
    tx.commit().await?;
    Ok(())
}

/// The live post, locked: pins of one post are serialised on it.
const LOCK_POST_PIN: Sql = Sql::new(
    "SELECT submolt_id, is_pinned FROM posts WHERE id = $1 AND is_deleted = 0 FOR NO KEY UPDATE",
    &[Type::INT8],
);

/// The submolt row, locked against other pins before its pinned posts are counted, so the
/// cap stays exact whatever the number of concurrent pins. NO KEY UPDATE (what a counter
/// update takes) does not block new posts' foreign-key checks.
const LOCK_SUBMOLT: Sql = Sql::new(
    "SELECT 1 FROM submolts WHERE id = $1 FOR NO KEY UPDATE",
    &[Type::INT8],
);

const COUNT_PINNED: Sql = Sql::new(
    "SELECT count(*) FROM posts WHERE submolt_id = $1 AND is_pinned = 1",
    &[Type::INT8],
);

const SET_PINNED: Sql = Sql::new(
    "UPDATE posts SET is_pinned = $2 WHERE id = $1 AND is_pinned <> $2",
    &[Type::INT8, Type::INT2],
);

pub(crate) async fn set_pinned(db: &PgPool, post_id: i64, pinned: bool) -> Result<bool> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let row = tx
        .query_opt(&LOCK_POST_PIN, &[&post_id])
        .await?
        .ok_or(StoreError::NotFound("Post"))?;
    let submolt_id: i64 = get(&row, 0)?;
    let is_pinned = get::<i16>(&row, 1)? != 0;
    if pinned && !is_pinned {
        tx.query_opt(&LOCK_SUBMOLT, &[&submolt_id]).await?;
        let count: i64 = get(&tx.query_one(&COUNT_PINNED, &[&submolt_id]).await?, 0)?;
        if count >= MAX_PINNED {
            return Err(StoreError::Refused(format!(
                "A submolt can have at most {MAX_PINNED} pinned posts"
            )));
        }
    }
    let changed = tx
        .execute(&SET_PINNED, &[&post_id, &i16::from(pinned)])
        .await?;
    tx.commit().await?;
    Ok(changed == 1)
}

const PINNED: Sql = Sql::new(
    concat!(
        "SELECT ",
        post_columns!(),
        " FROM ",
        post_joins!(),
        " WHERE p.submolt_id = $1 AND p.is_pinned = 1 AND p.is_deleted = 0
         ORDER BY p.id DESC LIMIT $2"
    ),
    &[Type::INT8, Type::INT8],
);

pub(crate) async fn pinned(db: &PgPool, submolt_id: i64) -> Result<Vec<Post>> {
    db.query(&PINNED, &[&submolt_id, &MAX_PINNED])
        .await?
        .iter()
        .map(post_from_row)
        .collect()
}

/// In the order SQLite's counters table (keyed by name) returns them.
const STATS: Sql = Sql::new(
    "SELECT name, sum(value)::bigint FROM counters GROUP BY name ORDER BY name",
    &[],
);

pub(crate) async fn stats(db: &PgPool) -> Result<Vec<(String, i64)>> {
    db.query(&STATS, &[])
        .await?
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
        .collect()
}

// ---- comments ----

const PARENT: Sql = Sql::new(
    "SELECT id, post_id, depth FROM comments WHERE uuid = $1",
    &[Type::TEXT],
);

const INSERT_COMMENT: Sql = Sql::new(
    "INSERT INTO comments(uuid, post_id, author_id, parent_id, depth, content, created_at,
         updated_at, safety_verdict, safety_labels, injection_score, is_quarantined)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11)
     RETURNING id",
    &[
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT4,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::FLOAT8,
        Type::INT2,
    ],
);

const POST_COMMENTED: Sql = Sql::new(
    "UPDATE posts SET comment_count = comment_count + 1 WHERE id = $1",
    &[Type::INT8],
);

const AUTHOR_COMMENTED: Sql = Sql::new(
    "UPDATE agents SET comment_count = comment_count + 1, last_active = GREATEST(last_active, $2)
     WHERE id = $1",
    &[Type::INT8, Type::INT8],
);

pub(crate) async fn create_comment(db: &PgPool, new: NewComment) -> Result<Comment> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let (parent_id, depth) = match &new.parent_uuid {
        None => (None, 0i64),
        Some(uuid) => match tx.query_opt(&PARENT, &[uuid]).await? {
            Some(r) if get::<i64>(&r, 1)? == new.post_id => {
                (Some(get::<i64>(&r, 0)?), i64::from(get::<i32>(&r, 2)?) + 1)
            }
            _ => return Err(StoreError::NotFound("Parent comment")),
        },
    };
    if depth > COMMENT_DEPTH_MAX {
        return Err(StoreError::Refused("Maximum comment depth exceeded".into()));
    }
    // depth <= COMMENT_DEPTH_MAX here, so it fits the integer column.
    let depth = i32::try_from(depth).map_err(StoreError::internal)?;
    let uuid = tidepool_store::new_public_id();
    let row = tx
        .query_one(
            &INSERT_COMMENT,
            &[
                &uuid,
                &new.post_id,
                &new.author_id,
                &parent_id,
                &depth,
                &new.content,
                &new.now,
                &new.safety.verdict.as_str(),
                &new.safety.labels.to_json(),
                &new.safety.injection_score,
                &visibility(&new.safety),
            ],
        )
        .await?;
    let id: i64 = get(&row, 0)?;
    search::insert(
        &tx,
        Index::Comments,
        id,
        &Postings::of_comment(&new.content),
    )
    .await?;
    tx.execute(&POST_COMMENTED, &[&new.post_id]).await?;
    tx.execute(&AUTHOR_COMMENTED, &[&new.author_id, &new.now])
        .await?;
    tx.execute(&BUMP_COUNTER, &[&"comments", &1i64]).await?;
    audit_quarantine(&tx, &new.safety, new.author_id, "comment", &uuid).await?;
    let comment = tx
        .query_opt(&COMMENT_BY_ID, &[&id])
        .await?
        .ok_or(StoreError::NotFound("Comment"))?;
    let comment = comment_from_row(&comment)?;
    tx.commit().await?;
    Ok(comment)
}

pub(crate) async fn comment_by_id(db: &PgPool, id: i64) -> Result<Option<Comment>> {
    db.query_opt(&COMMENT_BY_ID, &[&id])
        .await?
        .map(|r| comment_from_row(&r))
        .transpose()
}

const COMMENT_BY_UUID: Sql = Sql::new(
    concat!(
        "SELECT ",
        comment_columns!(),
        " FROM ",
        comment_joins!(),
        " WHERE c.uuid = $1 AND p.is_deleted = 0"
    ),
    &[Type::TEXT],
);

pub(crate) async fn comment_by_uuid(db: &PgPool, uuid: &str) -> Result<Option<Comment>> {
    db.query_opt(&COMMENT_BY_UUID, &[&uuid])
        .await?
        .map(|r| comment_from_row(&r))
        .transpose()
}

/// Soft delete of a comment whose post still exists: it keeps its place in the tree (its
/// replies still hang off it) but its text is erased (and so leaves search).
/// `comment_count` is not decremented, as in SQLite (and on Moltbook).
const ERASE_COMMENT: Sql = Sql::new(
    "WITH old AS (SELECT id, content FROM comments WHERE id = $1 FOR NO KEY UPDATE)
     UPDATE comments c SET is_deleted = 1, content = '', updated_at = $2
     FROM posts p, old WHERE c.id = old.id AND p.id = c.post_id AND p.is_deleted = 0
     RETURNING old.content",
    &[Type::INT8, Type::INT8],
);

/// Deletes a comment inside `tx` (`NotFound` when it or its post is gone).
pub(crate) async fn delete_comment_in(tx: &Tx<'_>, comment_id: i64) -> Result<()> {
    let old: String = match tx
        .query_opt(
            &ERASE_COMMENT,
            &[&comment_id, &tidepool_core::time::now_ms()],
        )
        .await?
    {
        Some(row) => get(&row, 0)?,
        None => return Err(StoreError::NotFound("Comment")),
    };
    search::remove(tx, Index::Comments, comment_id, &Postings::of_comment(&old)).await?;
    Ok(())
}

pub(crate) async fn delete_comment(db: &PgPool, comment_id: i64) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    delete_comment_in(&tx, comment_id).await?;
    notify(&tx, Invalidation::Pages).await?;
    tx.commit().await?;
    Ok(())
}

// ---- votes ----
//
// Voting the same way twice removes the vote; voting the other way changes it. One
// voter's votes on one target are serialised by a transaction-scoped advisory lock on
// (voter, target), taken first: a row lock cannot do it, since there may be no row yet,
// and under a burst of the same vote from one agent (a retrying client, a double click)
// "read, else insert" raced and gave up (measured: a quarter of upvotes at 64 clients).
// Then the vote row is read and changed, the target's counters and rank move by the
// difference in one relative UPDATE (which locks the target row), then the agents' rows,
// in id order. The advisory lock is the only one a vote takes before its rows, and no
// other operation takes it, so it adds no deadlock; it is gone at commit (never a
// session lock, which a pooler would leak).

/// How one vote change moves the target's counters (the author's karma moves by `score`).
#[derive(Debug, Clone, Copy)]
struct Delta {
    score: i64,
    up: i64,
    down: i64,
    weighted: f64,
}

impl Delta {
    /// What casting `value` with `weight` adds.
    fn of(value: i64, weight: f64) -> Self {
        Self {
            score: value,
            up: i64::from(value > 0),
            down: i64::from(value < 0),
            weighted: value as f64 * weight,
        }
    }

    fn minus(self, other: Delta) -> Self {
        Self {
            score: self.score - other.score,
            up: self.up - other.up,
            down: self.down - other.down,
            weighted: self.weighted - other.weighted,
        }
    }

    /// What removing a vote of `value` with `weight` adds.
    fn undo(value: i64, weight: f64) -> Self {
        Self {
            score: 0,
            up: 0,
            down: 0,
            weighted: 0.0,
        }
        .minus(Self::of(value, weight))
    }
}

const VOTE_LOCK: Sql = Sql::new("SELECT pg_advisory_xact_lock($1)", &[Type::INT8]);

/// The advisory-lock key of one voter's vote on one target. Distinct pairs may share a key
/// (ids beyond 2^31): they then wait for each other, nothing worse.
fn vote_lock_key(voter: i64, kind: i16, target: i64) -> i64 {
    ((voter & 0x7fff_ffff) << 32) | ((target & 0x3fff_ffff) << 1) | i64::from(kind & 1)
}

const VOTE_FOR_UPDATE: Sql = Sql::new(
    "SELECT value, weight FROM votes WHERE agent_id = $1 AND target_kind = $2 AND target_id = $3
     FOR UPDATE",
    &[Type::INT8, Type::INT2, Type::INT8],
);

const INSERT_VOTE: Sql = Sql::new(
    "INSERT INTO votes(agent_id, target_kind, target_id, value, weight, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (agent_id, target_kind, target_id) DO NOTHING",
    &[
        Type::INT8,
        Type::INT2,
        Type::INT8,
        Type::INT2,
        Type::FLOAT8,
        Type::INT8,
    ],
);

const CHANGE_VOTE: Sql = Sql::new(
    "UPDATE votes SET value = $4, weight = $5, created_at = $6
     WHERE agent_id = $1 AND target_kind = $2 AND target_id = $3",
    &[
        Type::INT8,
        Type::INT2,
        Type::INT8,
        Type::INT2,
        Type::FLOAT8,
        Type::INT8,
    ],
);

const DELETE_VOTE: Sql = Sql::new(
    "DELETE FROM votes WHERE agent_id = $1 AND target_kind = $2 AND target_id = $3
     RETURNING value, weight",
    &[Type::INT8, Type::INT2, Type::INT8],
);

/// SET expressions see the old row, so the rank is computed from the new values in the
/// same statement; under concurrency the UPDATE re-reads the newest committed row.
const APPLY_POST: Sql = Sql::new(
    "UPDATE posts SET score = score + $2, upvotes = upvotes + $3, downvotes = downvotes + $4,
         weighted_score = weighted_score + $5,
         hot_rank = tp_hot(weighted_score + $5, created_at)
     WHERE id = $1",
    &[Type::INT8, Type::INT8, Type::INT8, Type::INT8, Type::FLOAT8],
);

const APPLY_COMMENT: Sql = Sql::new(
    "UPDATE comments SET score = score + $2, upvotes = upvotes + $3, downvotes = downvotes + $4,
         weighted_score = weighted_score + $5,
         best_rank = tp_wilson(upvotes + $3, downvotes + $4),
         controversy = tp_controversy(upvotes + $3, downvotes + $4)
     WHERE id = $1",
    &[Type::INT8, Type::INT8, Type::INT8, Type::INT8, Type::FLOAT8],
);

const KARMA: Sql = Sql::new(
    "UPDATE agents SET karma = karma + $2 WHERE id = $1",
    &[Type::INT8, Type::INT8],
);

/// SQLite's `touch`: the voter's last activity, never moved back.
const TOUCH: Sql = Sql::new(
    "UPDATE agents SET last_active = $2 WHERE id = $1 AND last_active < $2",
    &[Type::INT8, Type::INT8],
);

const IS_FOLLOWING: Sql = Sql::new(
    "SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followed_id = $2)",
    &[Type::INT8, Type::INT8],
);

/// A vote value as stored (smallint); a ballot carries +1 or -1.
fn stored_value(value: i64) -> Result<i16> {
    i16::try_from(value).map_err(|_| StoreError::Refused("A vote is +1 or -1".into()))
}

/// Moves the target's counters and rank by `d`, then the author's karma and the voter's
/// last activity, locking the two agent rows in id order (two agents voting on each
/// other's items at once must not deadlock).
async fn apply(
    tx: &Tx<'_>,
    kind: TargetKind,
    target_id: i64,
    author_id: i64,
    voter_id: i64,
    now: i64,
    d: Delta,
) -> Result<()> {
    let sql = match kind {
        TargetKind::Post => &APPLY_POST,
        TargetKind::Comment => &APPLY_COMMENT,
    };
    tx.execute(sql, &[&target_id, &d.score, &d.up, &d.down, &d.weighted])
        .await?;
    if author_id < voter_id {
        tx.execute(&KARMA, &[&author_id, &d.score]).await?;
        tx.execute(&TOUCH, &[&voter_id, &now]).await?;
    } else {
        tx.execute(&TOUCH, &[&voter_id, &now]).await?;
        tx.execute(&KARMA, &[&author_id, &d.score]).await?;
    }
    Ok(())
}

pub(crate) async fn cast_vote(db: &PgPool, b: Ballot) -> Result<(VoteAction, bool)> {
    if b.voter_id == b.author_id {
        return Err(StoreError::Refused(
            "Cannot vote on your own content".into(),
        ));
    }
    let value = stored_value(b.value)?;
    let kind = b.kind as i16;
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    tx.execute(&VOTE_LOCK, &[&vote_lock_key(b.voter_id, kind, b.target_id)])
        .await?;
    let key: [&(dyn ToSql + Sync); 3] = [&b.voter_id, &kind, &b.target_id];
    // The previous vote, or none and ours is inserted. Under the lock nobody else changes
    // this pair, so the insert always lands; the loop only guards against a lock-key
    // collision letting two pairs' transactions interleave (harmless: read again).
    let mut previous = None;
    let mut inserted = false;
    for _ in 0..3 {
        if let Some(r) = tx.query_opt(&VOTE_FOR_UPDATE, &key).await? {
            previous = Some((i64::from(get::<i16>(&r, 0)?), get::<f64>(&r, 1)?));
            break;
        }
        let n = tx
            .execute(
                &INSERT_VOTE,
                &[&b.voter_id, &kind, &b.target_id, &value, &b.weight, &b.now],
            )
            .await?;
        if n == 1 {
            inserted = true;
            break;
        }
    }
    let (action, delta) = match previous {
        None if inserted => {
            let action = if b.value > 0 {
                VoteAction::Upvoted
            } else {
                VoteAction::Downvoted
            };
            (action, Delta::of(b.value, b.weight))
        }
        None => {
            return Err(StoreError::Unavailable(
                "the vote kept changing concurrently; try again".into(),
            ));
        }
        Some((old, old_weight)) if old == b.value => {
            tx.execute(&DELETE_VOTE, &key).await?;
            (VoteAction::Removed, Delta::undo(old, old_weight))
        }
        Some((old, old_weight)) => {
            tx.execute(
                &CHANGE_VOTE,
                &[&b.voter_id, &kind, &b.target_id, &value, &b.weight, &b.now],
            )
            .await?;
            (
                VoteAction::Changed,
                Delta::of(b.value, b.weight).minus(Delta::of(old, old_weight)),
            )
        }
    };
    apply(
        &tx,
        b.kind,
        b.target_id,
        b.author_id,
        b.voter_id,
        b.now,
        delta,
    )
    .await?;
    let follows: bool = get(
        &tx.query_one(&IS_FOLLOWING, &[&b.voter_id, &b.author_id])
            .await?,
        0,
    )?;
    tx.commit().await?;
    Ok((action, follows))
}

pub(crate) async fn retract_vote(
    db: &PgPool,
    voter_id: i64,
    kind: TargetKind,
    target_id: i64,
    author_id: i64,
    now: i64,
) -> Result<bool> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // DELETE ... RETURNING: the vote removed and its value in one step, so two concurrent
    // retractions undo it once.
    let Some(r) = tx
        .query_opt(&DELETE_VOTE, &[&voter_id, &(kind as i16), &target_id])
        .await?
    else {
        return Ok(false);
    };
    let (value, weight) = (i64::from(get::<i16>(&r, 0)?), get::<f64>(&r, 1)?);
    apply(
        &tx,
        kind,
        target_id,
        author_id,
        voter_id,
        now,
        Delta::undo(value, weight),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
