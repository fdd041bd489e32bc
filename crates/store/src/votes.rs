//! Votes on posts and comments.
//!
//! Voting the same way twice removes the vote; voting the other way changes it (spec 6.3).
//! Every counter (score, upvotes, downvotes, the weighted score, the stored rank and the
//! author's karma) moves by a relative update in the vote's own transaction, so the
//! counters always equal what the votes table says.

use rusqlite::{Connection, OptionalExtension, params};

use crate::agents::touch;
use crate::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Post = 0,
    Comment = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteAction {
    Upvoted,
    Downvoted,
    Removed,
    Changed,
}

impl VoteAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upvoted => "upvoted",
            Self::Downvoted => "downvoted",
            Self::Removed => "removed",
            Self::Changed => "changed",
        }
    }
}

/// A vote about to be cast.
#[derive(Debug, Clone, Copy)]
pub struct Ballot {
    pub voter_id: i64,
    /// The voter's weight in rankings (1.0 until trust scoring sets it).
    pub weight: f64,
    pub kind: TargetKind,
    pub target_id: i64,
    pub author_id: i64,
    /// +1 or -1.
    pub value: i64,
    pub now: i64,
}

pub fn cast(conn: &Connection, b: Ballot) -> Result<VoteAction> {
    if b.voter_id == b.author_id {
        return Err(StoreError::Refused(
            "Cannot vote on your own content".into(),
        ));
    }
    let previous: Option<(i64, f64)> = conn
        .prepare_cached("SELECT value, weight FROM votes WHERE agent_id = ?1 AND target_kind = ?2 AND target_id = ?3")?
        .query_row(params![b.voter_id, b.kind as i64, b.target_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let v = b.value;
    // (action, score delta, upvotes delta, downvotes delta, weighted delta)
    let (action, d_score, d_up, d_down, d_weighted) = match previous {
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
            (
                action,
                v,
                (v > 0) as i64,
                (v < 0) as i64,
                v as f64 * b.weight,
            )
        }
        Some((old, old_weight)) if old == v => {
            conn.prepare_cached(
                "DELETE FROM votes WHERE agent_id = ?1 AND target_kind = ?2 AND target_id = ?3",
            )?
            .execute(params![b.voter_id, b.kind as i64, b.target_id])?;
            (
                VoteAction::Removed,
                -v,
                -((v > 0) as i64),
                -((v < 0) as i64),
                -(v as f64) * old_weight,
            )
        }
        Some((old, old_weight)) => {
            conn.prepare_cached(
                "UPDATE votes SET value = ?4, weight = ?5, created_at = ?6 WHERE agent_id = ?1 AND target_kind = ?2 AND target_id = ?3",
            )?
            .execute(params![b.voter_id, b.kind as i64, b.target_id, v, b.weight, b.now])?;
            let d_up = if v > 0 { 1 } else { -1 };
            (
                VoteAction::Changed,
                v - old,
                d_up,
                -d_up,
                v as f64 * b.weight - old as f64 * old_weight,
            )
        }
    };
    let sql = match b.kind {
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
        .execute(params![b.target_id, d_score, d_up, d_down, d_weighted])?;
    conn.prepare_cached("UPDATE agents SET karma = karma + ?2 WHERE id = ?1")?
        .execute(params![b.author_id, d_score])?;
    touch(conn, b.voter_id, b.now)?;
    Ok(action)
}
