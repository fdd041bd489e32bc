//! Votes on posts and comments.
//!
//! Voting the same way twice removes the vote; voting the other way changes it (spec 6.3).
//! Every counter (score, upvotes, downvotes, the weighted score, the stored rank and the
//! author's karma) moves by a relative update in the vote's own transaction, so the
//! counters always equal what the votes table says.

use rusqlite::{Connection, OptionalExtension, params};
pub use tidepool_core::model::votes::*;

use crate::agents::touch;
use crate::{DbError, Result};

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
            up: (value > 0) as i64,
            down: (value < 0) as i64,
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

    const NONE: Delta = Delta {
        score: 0,
        up: 0,
        down: 0,
        weighted: 0.0,
    };
}

/// The voter's current vote on the target: its value and weight.
fn current(
    conn: &Connection,
    voter_id: i64,
    kind: TargetKind,
    target_id: i64,
) -> Result<Option<(i64, f64)>> {
    Ok(conn
        .prepare_cached("SELECT value, weight FROM votes WHERE agent_id = ?1 AND target_kind = ?2 AND target_id = ?3")?
        .query_row(params![voter_id, kind as i64, target_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Deletes the voter's vote on the target and returns what undoes its counters: the one
/// path by which a vote goes away, whether toggled off or withdrawn.
fn delete(
    conn: &Connection,
    voter_id: i64,
    kind: TargetKind,
    target_id: i64,
    (value, weight): (i64, f64),
) -> Result<Delta> {
    conn.prepare_cached(
        "DELETE FROM votes WHERE agent_id = ?1 AND target_kind = ?2 AND target_id = ?3",
    )?
    .execute(params![voter_id, kind as i64, target_id])?;
    Ok(Delta::NONE.minus(Delta::of(value, weight)))
}

/// Moves the target's counters, its stored rank and its author's karma by `d`.
fn apply(
    conn: &Connection,
    kind: TargetKind,
    target_id: i64,
    author_id: i64,
    d: Delta,
) -> Result<()> {
    let sql = match kind {
        // SQLite evaluates every SET expression against the old row, so the rank is
        // computed from the new weighted score in the same statement.
        TargetKind::Post => {
            "UPDATE posts SET score = score + ?2, upvotes = upvotes + ?3, downvotes = downvotes + ?4,
                 weighted_score = weighted_score + ?5, hot_rank = tp_hot(weighted_score + ?5, created_at)
             WHERE id = ?1"
        }
        TargetKind::Comment => {
            "UPDATE comments SET score = score + ?2, upvotes = upvotes + ?3, downvotes = downvotes + ?4,
                 weighted_score = weighted_score + ?5, best_rank = tp_wilson(upvotes + ?3, downvotes + ?4),
                 controversy = tp_controversy(upvotes + ?3, downvotes + ?4)
             WHERE id = ?1"
        }
    };
    conn.prepare_cached(sql)?
        .execute(params![target_id, d.score, d.up, d.down, d.weighted])?;
    conn.prepare_cached("UPDATE agents SET karma = karma + ?2 WHERE id = ?1")?
        .execute(params![author_id, d.score])?;
    Ok(())
}

pub fn cast(conn: &Connection, b: Ballot) -> Result<VoteAction> {
    if b.voter_id == b.author_id {
        return Err(DbError::Refused("Cannot vote on your own content".into()));
    }
    let previous = current(conn, b.voter_id, b.kind, b.target_id)?;
    let v = b.value;
    let (action, delta) = match previous {
        None => {
            conn.prepare_cached(
                "INSERT INTO votes(agent_id, target_kind, target_id, value, weight, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![b.voter_id, b.kind as i64, b.target_id, v, b.weight, b.now])?;
            let action = if v > 0 {
                VoteAction::Upvoted
            } else {
                VoteAction::Downvoted
            };
            (action, Delta::of(v, b.weight))
        }
        Some(old) if old.0 == v => (
            VoteAction::Removed,
            delete(conn, b.voter_id, b.kind, b.target_id, old)?,
        ),
        Some((old, old_weight)) => {
            conn.prepare_cached(
                "UPDATE votes SET value = ?4, weight = ?5, created_at = ?6 WHERE agent_id = ?1 AND target_kind = ?2 AND target_id = ?3",
            )?
            .execute(params![b.voter_id, b.kind as i64, b.target_id, v, b.weight, b.now])?;
            (
                VoteAction::Changed,
                Delta::of(v, b.weight).minus(Delta::of(old, old_weight)),
            )
        }
    };
    apply(conn, b.kind, b.target_id, b.author_id, delta)?;
    touch(conn, b.voter_id, b.now)?;
    Ok(action)
}

/// Withdraws `voter_id`'s vote on the target, if there is one, by the path a repeated vote
/// takes: score, up/down counters, weighted score, rank and the author's karma end as if it
/// had never been cast. False (and nothing changes) when there was no vote.
pub fn retract(
    conn: &Connection,
    voter_id: i64,
    kind: TargetKind,
    target_id: i64,
    author_id: i64,
    now: i64,
) -> Result<bool> {
    let Some(old) = current(conn, voter_id, kind, target_id)? else {
        return Ok(false);
    };
    let delta = delete(conn, voter_id, kind, target_id, old)?;
    apply(conn, kind, target_id, author_id, delta)?;
    touch(conn, voter_id, now)?;
    Ok(true)
}
