//! Human owners: accounts, sessions, the agents they own, and what they may do to them.
//! Passwords arrive here already hashed (argon2id, done off the writer thread) and session
//! tokens as keyed hashes: no secret is ever stored.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;
pub use tidepool_core::model::owners::*;

use crate::agents::{AGENT_COLUMNS, Agent, AgentStatus, agent_from_row, by_id};
use crate::schema::audit;
use crate::{DbError, Result};

const OWNER_COLUMNS: &str = "o.id, o.email, o.password_hash, o.is_admin, o.created_at";

fn owner_from_row(r: &Row<'_>) -> rusqlite::Result<Owner> {
    Ok(Owner {
        id: r.get(0)?,
        email: r.get(1)?,
        password_hash: r.get(2)?,
        is_admin: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// Creates an owner; the email (compared case-insensitively) must be new.
pub fn create(
    conn: &Connection,
    email: &str,
    password_hash: &str,
    is_admin: bool,
    now: i64,
) -> Result<Owner> {
    let key = email.to_lowercase();
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO owners(email, email_key, password_hash, is_admin, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![email, key, password_hash, is_admin, now])?;
    if inserted == 0 {
        return Err(DbError::Conflict(
            "An account with this email already exists".into(),
        ));
    }
    by_email(conn, &key)?.ok_or(DbError::NotFound("Owner"))
}

pub fn by_email(conn: &Connection, email: &str) -> Result<Option<Owner>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {OWNER_COLUMNS} FROM owners o WHERE o.email_key = ?1"
        ))?
        .query_row([email.to_lowercase()], owner_from_row)
        .optional()?)
}

/// Replaces the password and ends every session of the owner.
pub fn set_password(conn: &Connection, owner_id: i64, password_hash: &str) -> Result<()> {
    conn.prepare_cached("UPDATE owners SET password_hash = ?2 WHERE id = ?1")?
        .execute(params![owner_id, password_hash])?;
    conn.prepare_cached("DELETE FROM sessions WHERE owner_id = ?1")?
        .execute([owner_id])?;
    Ok(())
}

pub fn set_admin(conn: &Connection, owner_id: i64, is_admin: bool) -> Result<()> {
    conn.prepare_cached("UPDATE owners SET is_admin = ?2 WHERE id = ?1")?
        .execute(params![owner_id, is_admin])?;
    Ok(())
}

pub fn create_session(
    conn: &Connection,
    token_hash: &[u8],
    owner_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    // Expired sessions of this owner go when a new one starts (bounded by the owner).
    conn.prepare_cached("DELETE FROM sessions WHERE owner_id = ?1 AND expires_at <= ?2")?
        .execute(params![owner_id, now])?;
    conn.prepare_cached(
        "INSERT INTO sessions(token_hash, owner_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![token_hash, owner_id, now, expires_at])?;
    // At most MAX_SESSIONS live sessions per owner: the oldest end first, so logging in in
    // a loop cannot grow the table without bound.
    conn.prepare_cached(
        "DELETE FROM sessions WHERE owner_id = ?1 AND token_hash NOT IN
             (SELECT token_hash FROM sessions WHERE owner_id = ?1 ORDER BY created_at DESC LIMIT ?2)",
    )?
    .execute(params![owner_id, MAX_SESSIONS])?;
    Ok(())
}

/// The owner behind a live session.
pub fn session_owner(conn: &Connection, token_hash: &[u8], now: i64) -> Result<Option<Owner>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {OWNER_COLUMNS} FROM sessions s JOIN owners o ON o.id = s.owner_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2"
        ))?
        .query_row(params![token_hash, now], owner_from_row)
        .optional()?)
}

pub fn delete_session(conn: &Connection, token_hash: &[u8]) -> Result<()> {
    conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
        .execute([token_hash])?;
    Ok(())
}

/// The owner's agents, oldest first.
pub fn agents_of(conn: &Connection, owner_id: i64) -> Result<Vec<Agent>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.owner_id = ?1 ORDER BY a.id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![owner_id, MAX_LISTED_AGENTS], agent_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The owner of an agent, if any.
pub fn owner_of(conn: &Connection, agent_id: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT owner_id FROM agents WHERE id = ?1")?
        .query_row([agent_id], |r| r.get::<_, Option<i64>>(0))
        .optional()?
        .flatten())
}

/// The agent a live claim token belongs to: unclaimed, or claimed with no owner (by an
/// operator or at registration in auto-claim mode), which a human may still claim.
pub fn agent_by_claim_token(
    conn: &Connection,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<Agent>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents a
             WHERE a.claim_token_hash = ?1 AND a.claim_expires_at > ?2 AND a.owner_id IS NULL
               AND a.status IN ('pending_claim', 'claimed')"
        ))?
        .query_row(params![token_hash, now], agent_from_row)
        .optional()?)
}

/// Counts the owner's agents toward `cap` (deleted agents no longer count); refuses when
/// the owner is at the cap.
pub fn check_owner_cap(conn: &Connection, owner_id: i64, cap: i64) -> Result<()> {
    let owned: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM agents WHERE owner_id = ?1 AND status != 'deleted' LIMIT ?2)",
        )?
        .query_row(params![owner_id, cap], |r| r.get(0))?;
    if owned >= cap {
        return Err(DbError::Refused(format!(
            "You already own {cap} agents, the most one owner may have"
        )));
    }
    Ok(())
}

/// Claims the agent behind `token_hash` for `owner_id` if `code_hash` matches its
/// verification code. The token and code stop working at once (single use). A wrong code
/// is recorded in the audit log and reported as [`ClaimOutcome::WrongCode`].
pub fn claim_with_token(
    conn: &Connection,
    token_hash: &[u8],
    code_hash: &[u8],
    owner_id: i64,
    cap: i64,
    now: i64,
) -> Result<ClaimOutcome> {
    let agent = agent_by_claim_token(conn, token_hash, now)?
        .ok_or_else(|| DbError::Refused("This claim link is invalid, used or expired".into()))?;
    let expected: Option<Vec<u8>> = conn
        .prepare_cached("SELECT verification_code_hash FROM agents WHERE id = ?1")?
        .query_row([agent.id], |r| r.get(0))?;
    if expected.as_deref() != Some(code_hash) {
        audit(
            conn,
            "claim_code_wrong",
            Some(agent.id),
            &json!({"owner": owner_id}),
        )?;
        return Ok(ClaimOutcome::WrongCode);
    }
    check_owner_cap(conn, owner_id, cap)?;
    conn.prepare_cached(
        "UPDATE agents SET status = 'claimed', claimed_at = ?2, owner_id = ?3, claim_token_hash = NULL,
             claim_expires_at = NULL, verification_code_hash = NULL WHERE id = ?1",
    )?
    .execute(params![agent.id, now, owner_id])?;
    audit(
        conn,
        "agent_claimed",
        Some(agent.id),
        &json!({"by": "owner", "owner": owner_id}),
    )?;
    Ok(ClaimOutcome::Claimed(Box::new(
        by_id(conn, agent.id)?.ok_or(DbError::NotFound("Agent"))?,
    )))
}

/// The suspension in force on an agent, if it is suspended.
pub fn suspension_of(conn: &Connection, agent_id: i64) -> Result<Option<Suspension>> {
    type SuspensionRow = (String, Option<String>, Option<String>, Option<String>);
    let row: Option<SuspensionRow> = conn
        .prepare_cached(
            "SELECT status, suspended_by, suspended_actor, suspended_reason FROM agents WHERE id = ?1",
        )?
        .query_row([agent_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    Ok(row.and_then(|(status, by, actor, reason)| {
        (status == AgentStatus::Suspended.as_str()).then(|| Suspension {
            level: SuspensionLevel::parse(by.as_deref().unwrap_or("")),
            actor: actor.unwrap_or_default(),
            reason: reason.unwrap_or_default(),
        })
    }))
}

/// Suspends (`Some`) or resumes (`None`) an agent, acting at `level`. A suspension can be
/// raised to a higher level (a moderator suspending an agent its owner already
/// suspended); it is lifted only by its own level or a higher one.
pub fn set_suspended(
    conn: &Connection,
    agent_id: i64,
    level: SuspensionLevel,
    suspend: Option<(&str, &str)>,
) -> Result<Agent> {
    let agent = by_id(conn, agent_id)?.ok_or(DbError::NotFound("Agent"))?;
    let current = suspension_of(conn, agent_id)?;
    let refuse = |why: String| Err(DbError::Refused(why));
    match (suspend, &current) {
        (Some(_), None) if agent.status != AgentStatus::Claimed => {
            return refuse(format!(
                "{} is {}, so it cannot be suspended",
                agent.name,
                agent.status.as_str()
            ));
        }
        (Some(_), Some(s)) if s.level >= level => {
            return refuse(format!("{} is already suspended", agent.name));
        }
        (None, None) => {
            return refuse(format!(
                "{} is {}, so it cannot be resumed",
                agent.name,
                agent.status.as_str()
            ));
        }
        (None, Some(s)) if s.level > level => {
            return refuse(format!(
                "{} was suspended by a moderator; only a moderator can lift it",
                agent.name
            ));
        }
        _ => {}
    }
    match suspend {
        Some((actor, reason)) => {
            conn.prepare_cached(
                "UPDATE agents SET status = 'suspended', suspended_by = ?2, suspended_actor = ?3,
                     suspended_reason = ?4 WHERE id = ?1",
            )?
            .execute(params![agent_id, level.as_str(), actor, reason])?;
            audit(
                conn,
                "agent_suspended",
                Some(agent_id),
                &json!({"by": level.as_str(), "actor": actor}),
            )?;
        }
        None => {
            conn.prepare_cached(
                "UPDATE agents SET status = 'claimed', suspended_by = NULL, suspended_actor = NULL,
                     suspended_reason = NULL WHERE id = ?1",
            )?
            .execute([agent_id])?;
            audit(
                conn,
                "agent_resumed",
                Some(agent_id),
                &json!({"by": level.as_str()}),
            )?;
        }
    }
    by_id(conn, agent_id)?.ok_or(DbError::NotFound("Agent"))
}

/// Deletes an agent for good: every key revoked, profile emptied, name kept (so nobody can
/// impersonate it), its posts and comments left in their threads.
pub fn delete_agent(conn: &Connection, agent_id: i64, now: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE api_keys SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![agent_id, now])?;
    conn.prepare_cached(
        "UPDATE agents SET status = 'deleted', description = '', metadata = '{}', avatar_url = NULL
         WHERE id = ?1",
    )?
    .execute([agent_id])?;
    conn.prepare_cached("DELETE FROM avatars WHERE agent_id = ?1")?
        .execute([agent_id])?;
    crate::webhooks::delete(conn, agent_id)?;
    audit(
        conn,
        "agent_deleted",
        Some(agent_id),
        &json!({"by": "owner"}),
    )?;
    Ok(())
}

/// The agent's keys, newest first (never the keys themselves: only hashes are stored):
/// every live key (their number is capped when they are minted, so a stolen key cannot
/// hide extra keys below a listing limit) and the newest revoked ones.
pub fn keys_of(conn: &Connection, agent_id: i64) -> Result<Vec<KeyInfo>> {
    let from_row = |r: &Row<'_>| {
        Ok(KeyInfo {
            id: r.get(0)?,
            scope: r.get(1)?,
            created_at: r.get(2)?,
            revoked_at: r.get(3)?,
        })
    };
    let mut live = conn.prepare_cached(
        "SELECT id, scope, created_at, revoked_at FROM api_keys INDEXED BY api_keys_agent
         WHERE agent_id = ?1 AND revoked_at IS NULL ORDER BY id DESC",
    )?;
    let mut keys = live
        .query_map([agent_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut revoked = conn.prepare_cached(
        "SELECT id, scope, created_at, revoked_at FROM api_keys INDEXED BY api_keys_agent
         WHERE agent_id = ?1 AND revoked_at IS NOT NULL ORDER BY id DESC LIMIT ?2",
    )?;
    keys.extend(
        revoked
            .query_map(params![agent_id, LISTED_REVOKED_KEYS], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    );
    keys.sort_by_key(|k| std::cmp::Reverse(k.id));
    Ok(keys)
}

/// Revokes every live key of the agent (full and read-only), e.g. before a rotation
/// after a compromise; returns how many were revoked.
pub fn revoke_all_keys(conn: &Connection, agent_id: i64, now: i64) -> Result<usize> {
    let n = conn
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![agent_id, now])?;
    if n > 0 {
        audit(
            conn,
            "key_revoked",
            Some(agent_id),
            &json!({"by": "owner", "scope": "all", "count": n}),
        )?;
    }
    Ok(n)
}

/// Live read-only keys of the agent.
pub fn live_read_keys(conn: &Connection, agent_id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM api_keys WHERE agent_id = ?1 AND scope = 'read' AND revoked_at IS NULL",
        )?
        .query_row([agent_id], |r| r.get(0))?)
}

/// Revokes one read-only key of the agent.
pub fn revoke_read_key(conn: &Connection, agent_id: i64, key_id: i64, now: i64) -> Result<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = ?3
             WHERE id = ?2 AND agent_id = ?1 AND scope = 'read' AND revoked_at IS NULL",
        )?
        .execute(params![agent_id, key_id, now])?;
    if changed == 0 {
        return Err(DbError::NotFound("Read-only key"));
    }
    audit(
        conn,
        "key_revoked",
        Some(agent_id),
        &json!({"by": "owner", "scope": "read"}),
    )?;
    Ok(())
}

/// The newest security events of these agents (blocked writes, quarantines, revoked keys,
/// claims, suspensions), newest first: each agent's own index, merged.
pub fn events_of(
    conn: &Connection,
    agent_ids: &[i64],
    limit: i64,
) -> Result<Vec<crate::agents::AuditEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.id, l.at, l.event, a.name, l.detail FROM audit_log l INDEXED BY audit_agent
         CROSS JOIN agents a ON a.id = l.agent_id
         WHERE l.agent_id = ?1 ORDER BY l.id DESC LIMIT ?2",
    )?;
    let mut all = Vec::new();
    for id in agent_ids {
        let rows = stmt.query_map(params![id, limit], crate::agents::audit_from_row)?;
        all.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.id));
    all.truncate(limit as usize);
    Ok(all)
}

/// Submolts one of the owner's agents moderates (owner or moderator role).
pub fn moderated_submolts(conn: &Connection, owner_id: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.submolt_id FROM agents a CROSS JOIN submolt_moderators m ON m.agent_id = a.id
         WHERE a.owner_id = ?1 LIMIT 1000",
    )?;
    let rows = stmt.query_map([owner_id], |r| r.get(0))?;
    let mut ids: Vec<i64> = rows.collect::<rusqlite::Result<_>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Whether the agent's owner is an administrator (their agents speak for the platform,
/// e.g. in m/announcements).
pub fn owned_by_admin(conn: &Connection, agent_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT o.is_admin FROM agents a JOIN owners o ON o.id = a.owner_id WHERE a.id = ?1",
        )?
        .query_row([agent_id], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}
