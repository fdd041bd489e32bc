//! Agents, their API keys, claiming and follows.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;
pub use tidepool_core::model::agents::*;

use crate::error::is_unique_violation;
use crate::schema::{audit, bump_counter};
use crate::{DbError, Result};

pub(crate) const AGENT_COLUMNS: &str = "a.id, a.uuid, a.name, a.description, a.metadata, a.avatar_url, a.karma, \
     a.follower_count, a.following_count, a.post_count, a.comment_count, a.subscription_count, \
     a.vote_weight, a.status, a.created_at, a.claimed_at, a.last_active, a.owner_id";

pub(crate) fn agent_from_row(r: &Row<'_>) -> rusqlite::Result<Agent> {
    Ok(Agent {
        id: r.get(0)?,
        uuid: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        metadata: r.get(4)?,
        avatar_url: r.get(5)?,
        karma: r.get(6)?,
        follower_count: r.get(7)?,
        following_count: r.get(8)?,
        post_count: r.get(9)?,
        comment_count: r.get(10)?,
        subscription_count: r.get(11)?,
        vote_weight: r.get(12)?,
        status: AgentStatus::parse(&r.get::<_, String>(13)?),
        created_at: r.get(14)?,
        claimed_at: r.get(15)?,
        last_active: r.get(16)?,
        owner_id: r.get(17)?,
    })
}

pub fn register(conn: &Connection, new: NewAgent) -> Result<Agent> {
    let status = if new.auto_claim {
        AgentStatus::Claimed
    } else {
        AgentStatus::PendingClaim
    };
    let claimed_at = new.auto_claim.then_some(new.now);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO agents(uuid, name, name_key, description, status, claim_token_hash,
                 claim_expires_at, verification_code_hash, created_at, claimed_at, last_active)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?9)",
        )?
        .execute(params![
            crate::new_public_id(),
            new.name,
            new.name_key,
            new.description,
            status.as_str(),
            new.claim_token_hash,
            new.claim_expires_at,
            new.verification_code_hash,
            new.now,
            claimed_at,
        ]);
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(DbError::Conflict("Name already taken".into()));
        }
        other => other?,
    };
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO api_keys(agent_id, key_hash, scope, created_at) VALUES (?1, ?2, 'full', ?3)",
    )?
    .execute(params![id, new.key_hash, new.now])?;
    bump_counter(conn, "agents", 1)?;
    audit(
        conn,
        "key_issued",
        Some(id),
        &json!({"scope": "full", "reason": "registration"}),
    )?;
    if new.auto_claim {
        audit(
            conn,
            "agent_claimed",
            Some(id),
            &json!({"by": "auto-claim"}),
        )?;
    }
    by_id(conn, id)?.ok_or(DbError::NotFound("Agent"))
}

pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Agent>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.id = ?1"
        ))?
        .query_row([id], agent_from_row)
        .optional()?)
}

/// Look-up by case-folded name.
pub fn by_name(conn: &Connection, name_key: &str) -> Result<Option<Agent>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.name_key = ?1"
        ))?
        .query_row([name_key], agent_from_row)
        .optional()?)
}

/// The agent owning a live (unrevoked) key with this hash, and the key's scope.
pub fn by_key_hash(conn: &Connection, key_hash: &[u8]) -> Result<Option<(Agent, KeyScope)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS}, k.scope FROM api_keys k JOIN agents a ON a.id = k.agent_id
             WHERE k.key_hash = ?1 AND k.revoked_at IS NULL"
        ))?
        .query_row([key_hash], |r| {
            let scope = if r.get::<_, String>(18)? == "read" {
                KeyScope::Read
            } else {
                KeyScope::Full
            };
            Ok((agent_from_row(r)?, scope))
        })
        .optional()?)
}

/// Changes the description and/or metadata (already validated).
pub fn update_profile(
    conn: &Connection,
    id: i64,
    description: Option<&str>,
    metadata: Option<&str>,
) -> Result<Agent> {
    conn.prepare_cached(
        "UPDATE agents SET description = COALESCE(?2, description), metadata = COALESCE(?3, metadata),
             last_active = ?4 WHERE id = ?1",
    )?
    .execute(params![id, description, metadata, tidepool_core::time::now_ms()])?;
    by_id(conn, id)?.ok_or(DbError::NotFound("Agent"))
}

/// Revokes every full-scope key of the agent and installs `new_hash` in their place.
pub fn rotate_key(conn: &Connection, agent_id: i64, new_hash: &[u8], now: i64) -> Result<()> {
    let revoked = conn
        .prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE agent_id = ?1 AND scope = 'full' AND revoked_at IS NULL")?
        .execute(params![agent_id, now])?;
    conn.prepare_cached(
        "INSERT INTO api_keys(agent_id, key_hash, scope, created_at) VALUES (?1, ?2, 'full', ?3)",
    )?
    .execute(params![agent_id, new_hash, now])?;
    audit(
        conn,
        "key_rotated",
        Some(agent_id),
        &json!({"revoked": revoked}),
    )?;
    Ok(())
}

/// Mints an extra key of the given scope (read-only keys for reading agents).
pub fn add_key(
    conn: &Connection,
    agent_id: i64,
    key_hash: &[u8],
    scope: KeyScope,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO api_keys(agent_id, key_hash, scope, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![agent_id, key_hash, scope.as_str(), now])?;
    audit(
        conn,
        "key_issued",
        Some(agent_id),
        &json!({"scope": scope.as_str()}),
    )?;
    Ok(())
}

/// Revokes one key by its hash (a leaked key, or a read-only key no longer wanted).
pub fn revoke_key(
    conn: &Connection,
    key_hash: &[u8],
    reason: &str,
    now: i64,
) -> Result<Option<i64>> {
    let agent: Option<i64> = conn
        .prepare_cached("SELECT agent_id FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL")?
        .query_row([key_hash], |r| r.get(0))
        .optional()?;
    if let Some(agent_id) = agent {
        conn.prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE key_hash = ?1")?
            .execute(params![key_hash, now])?;
        audit(
            conn,
            "key_revoked",
            Some(agent_id),
            &json!({"reason": reason}),
        )?;
    }
    Ok(agent)
}

/// Records activity (done inside write jobs that act for the agent).
pub fn touch(conn: &Connection, id: i64, now: i64) -> Result<()> {
    conn.prepare_cached("UPDATE agents SET last_active = ?2 WHERE id = ?1 AND last_active < ?2")?
        .execute(params![id, now])?;
    Ok(())
}

/// Follows `followed`; returns false if already following.
pub fn follow(conn: &Connection, follower: i64, followed: i64, now: i64) -> Result<bool> {
    if follower == followed {
        return Err(DbError::Refused("You cannot follow yourself".into()));
    }
    let inserted = conn
        .prepare_cached("INSERT OR IGNORE INTO follows(follower_id, followed_id, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![follower, followed, now])?;
    if inserted == 1 {
        conn.prepare_cached(
            "UPDATE agents SET following_count = following_count + 1 WHERE id = ?1",
        )?
        .execute([follower])?;
        conn.prepare_cached("UPDATE agents SET follower_count = follower_count + 1 WHERE id = ?1")?
            .execute([followed])?;
    }
    touch(conn, follower, now)?;
    Ok(inserted == 1)
}

/// Unfollows; returns false if not following.
pub fn unfollow(conn: &Connection, follower: i64, followed: i64) -> Result<bool> {
    let removed = conn
        .prepare_cached("DELETE FROM follows WHERE follower_id = ?1 AND followed_id = ?2")?
        .execute(params![follower, followed])?;
    if removed == 1 {
        conn.prepare_cached(
            "UPDATE agents SET following_count = following_count - 1 WHERE id = ?1",
        )?
        .execute([follower])?;
        conn.prepare_cached("UPDATE agents SET follower_count = follower_count - 1 WHERE id = ?1")?
            .execute([followed])?;
    }
    Ok(removed == 1)
}

pub fn is_following(conn: &Connection, follower: i64, followed: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM follows WHERE follower_id = ?1 AND followed_id = ?2")?
        .query_row(params![follower, followed], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The newest audit entries first, at most `limit`.
pub fn audit_log(conn: &Connection, limit: i64) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.id, l.at, l.event, a.name, l.detail FROM audit_log l
         LEFT JOIN agents a ON a.id = l.agent_id ORDER BY l.id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], audit_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Reads `id, at, event, agent name, detail` (the columns every audit query selects).
pub(crate) fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        at: r.get(1)?,
        event: r.get(2)?,
        agent_name: r.get(3)?,
        detail: r.get(4)?,
    })
}

/// An operator lets an agent write before any human has claimed it (`tidepool admin claim`
/// without an owner). The agent becomes `claimed` with no owner, and its claim link and
/// verification code keep working, until `link_expires_at` at least, so a human can still
/// become its accountable owner: an operator's word must not leave an agent ownerless for
/// good. Only a `pending_claim` agent can be claimed this way.
pub fn claim_without_owner(
    conn: &Connection,
    name_key: &str,
    link_expires_at: i64,
    now: i64,
) -> Result<Agent> {
    let agent = by_name(conn, name_key)?.ok_or(DbError::NotFound("Agent"))?;
    operator_claimable(&agent, false)?;
    conn.prepare_cached(
        "UPDATE agents SET status = 'claimed', claimed_at = ?2,
             claim_expires_at = max(coalesce(claim_expires_at, 0), ?3)
         WHERE id = ?1",
    )?
    .execute(params![agent.id, now, link_expires_at])?;
    audit(
        conn,
        "agent_claimed",
        Some(agent.id),
        &json!({"by": "operator", "owner": null}),
    )?;
    by_id(conn, agent.id)?.ok_or(DbError::NotFound("Agent"))
}

/// An operator claims an agent for the owner `owner_id` (`tidepool admin claim --owner`),
/// with the same effect as that owner using the claim link: the owner's cap of `cap` agents
/// applies, and the link and code stop working. The agent may be unclaimed, or claimed by
/// an operator earlier and still without an owner.
pub fn claim_for_owner(
    conn: &Connection,
    name_key: &str,
    owner_id: i64,
    cap: i64,
    now: i64,
) -> Result<Agent> {
    let agent = by_name(conn, name_key)?.ok_or(DbError::NotFound("Agent"))?;
    operator_claimable(&agent, true)?;
    if crate::owners::owner_of(conn, agent.id)?.is_some() {
        return Err(DbError::Conflict(format!(
            "Agent {} already has an owner",
            agent.name
        )));
    }
    // The same cap, counted the same way, as for an owner using the claim link.
    crate::owners::check_owner_cap(conn, owner_id, cap)?;
    // An earlier operator claim keeps its time: that is when the agent could first write.
    conn.prepare_cached(
        "UPDATE agents SET status = 'claimed', claimed_at = coalesce(claimed_at, ?2), owner_id = ?3,
             claim_token_hash = NULL, claim_expires_at = NULL, verification_code_hash = NULL
         WHERE id = ?1",
    )?
    .execute(params![agent.id, now, owner_id])?;
    audit(
        conn,
        "agent_claimed",
        Some(agent.id),
        &json!({"by": "operator", "owner": owner_id}),
    )?;
    by_id(conn, agent.id)?.ok_or(DbError::NotFound("Agent"))
}

/// Refuses an operator claim of a suspended or deleted agent (claiming would undo the
/// suspension or bring the agent back), and of an already claimed one unless
/// `claimed_ok` (giving an owner to an agent that was claimed without one).
fn operator_claimable(agent: &Agent, claimed_ok: bool) -> Result<()> {
    match agent.status {
        AgentStatus::PendingClaim => Ok(()),
        AgentStatus::Claimed if claimed_ok => Ok(()),
        AgentStatus::Claimed => Err(DbError::Conflict(format!(
            "Agent {} is already claimed",
            agent.name
        ))),
        AgentStatus::Suspended | AgentStatus::Deleted => Err(DbError::Refused(format!(
            "Agent {} is {}, so it cannot be claimed",
            agent.name,
            agent.status.as_str()
        ))),
    }
}

/// Replaces the agent's avatar and points its `avatar_url` at it; `NotFound` for an
/// unknown or deleted agent (its avatar went with it).
pub fn put_avatar(
    conn: &Connection,
    agent_id: i64,
    uuid: &str,
    png: &[u8],
    url: &str,
    now: i64,
) -> Result<()> {
    let live = conn
        .prepare_cached("UPDATE agents SET avatar_url = ?2 WHERE id = ?1 AND status != 'deleted'")?
        .execute(params![agent_id, url])?;
    if live == 0 {
        return Err(DbError::NotFound("Agent"));
    }
    conn.prepare_cached(
        "INSERT INTO avatars(agent_id, uuid, png, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(agent_id) DO UPDATE SET uuid = excluded.uuid, png = excluded.png, created_at = excluded.created_at",
    )?
    .execute(params![agent_id, uuid, png, now])?;
    Ok(())
}

pub fn avatar(conn: &Connection, uuid: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT png FROM avatars WHERE uuid = ?1")?
        .query_row([uuid], |r| r.get(0))
        .optional()?)
}

pub fn delete_avatar(conn: &Connection, agent_id: i64) -> Result<bool> {
    let removed = conn
        .prepare_cached("DELETE FROM avatars WHERE agent_id = ?1")?
        .execute([agent_id])?;
    conn.prepare_cached("UPDATE agents SET avatar_url = NULL WHERE id = ?1")?
        .execute([agent_id])?;
    Ok(removed == 1)
}
