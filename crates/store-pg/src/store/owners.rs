//! Human owners: accounts, sessions, claims, suspensions and keys as owners see them, on
//! PostgreSQL (the SQLite reference: crates/store-sqlite/src/owners.rs).
//!
//! Lock order: an agent's row before its owner's row (claims), an owner's row before its
//! sessions, an agent's row before its keys (see agents.rs).

use serde_json::json;
use tokio_postgres::types::Type;

use tidepool_core::model::agents::{Agent, AgentStatus, AuditEntry};
use tidepool_core::model::owners::{
    ClaimOutcome, KeyInfo, LISTED_REVOKED_KEYS, MAX_LISTED_AGENTS, MAX_SESSIONS, Owner, Suspension,
    SuspensionLevel,
};
use tidepool_store::{ModerationRecord, Result, StoreError};

use super::agents::{DELETE_AVATAR, agent_in, lock_agent, sql_limit};
use super::rows::{
    self, AGENT_WIDTH, agent_at, agent_columns, agent_from_row, audit_columns, audit_from_row,
    map_rows, owner_columns, owner_from_row,
};
use crate::notify::{Invalidation, notify};
use crate::{PgError, PgPool, Sql, Tx};

const INSERT_OWNER: Sql = Sql::new(
    concat!(
        "INSERT INTO owners AS o (email, email_key, password_hash, is_admin, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email_key) DO NOTHING RETURNING ",
        owner_columns!()
    ),
    &[Type::TEXT, Type::TEXT, Type::TEXT, Type::INT2, Type::INT8],
);

/// By the lower-cased email (`$1` must already be lower-cased).
pub(crate) const OWNER_BY_EMAIL: Sql = Sql::new(
    concat!(
        "SELECT ",
        owner_columns!(),
        " FROM owners o WHERE o.email_key = $1"
    ),
    &[Type::TEXT],
);

const SET_PASSWORD: Sql = Sql::new(
    "UPDATE owners SET password_hash = $2 WHERE id = $1",
    &[Type::INT8, Type::TEXT],
);

const DELETE_OWNER_SESSIONS: Sql =
    Sql::new("DELETE FROM sessions WHERE owner_id = $1", &[Type::INT8]);

const LOCK_OWNER: Sql = Sql::new(
    "SELECT 1 FROM owners WHERE id = $1 FOR NO KEY UPDATE",
    &[Type::INT8],
);

const DELETE_EXPIRED_SESSIONS: Sql = Sql::new(
    "DELETE FROM sessions WHERE owner_id = $1 AND expires_at <= $2",
    &[Type::INT8, Type::INT8],
);

const INSERT_SESSION: Sql = Sql::new(
    "INSERT INTO sessions(token_hash, owner_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    &[Type::BYTEA, Type::INT8, Type::INT8, Type::INT8],
);

const TRIM_SESSIONS: Sql = Sql::new(
    "DELETE FROM sessions WHERE owner_id = $1 AND token_hash NOT IN
         (SELECT token_hash FROM sessions WHERE owner_id = $1 ORDER BY created_at DESC LIMIT $2)",
    &[Type::INT8, Type::INT8],
);

const SESSION_OWNER: Sql = Sql::new(
    concat!(
        "SELECT ",
        owner_columns!(),
        " FROM sessions s JOIN owners o ON o.id = s.owner_id
         WHERE s.token_hash = $1 AND s.expires_at > $2"
    ),
    &[Type::BYTEA, Type::INT8],
);

const DELETE_SESSION: Sql = Sql::new("DELETE FROM sessions WHERE token_hash = $1", &[Type::BYTEA]);

const AGENTS_OF: Sql = Sql::new(
    concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents a WHERE a.owner_id = $1 ORDER BY a.id LIMIT $2"
    ),
    &[Type::INT8, Type::INT8],
);

const OWNER_OF: Sql = Sql::new("SELECT owner_id FROM agents WHERE id = $1", &[Type::INT8]);

const AGENT_BY_CLAIM_TOKEN: Sql = Sql::new(
    concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents a
         WHERE a.claim_token_hash = $1 AND a.claim_expires_at > $2 AND a.owner_id IS NULL
           AND a.status IN ('pending_claim', 'claimed')"
    ),
    &[Type::BYTEA, Type::INT8],
);

/// [`AGENT_BY_CLAIM_TOKEN`] locked, with the verification code hash after the agent.
/// A second claim waiting on the lock re-checks the conditions on the row the first one
/// left (READ COMMITTED), finds the token gone, and gets no row.
const LOCK_AGENT_BY_CLAIM_TOKEN: Sql = Sql::new(
    concat!(
        "SELECT ",
        agent_columns!(),
        ", a.verification_code_hash FROM agents a
         WHERE a.claim_token_hash = $1 AND a.claim_expires_at > $2 AND a.owner_id IS NULL
           AND a.status IN ('pending_claim', 'claimed')
         FOR NO KEY UPDATE"
    ),
    &[Type::BYTEA, Type::INT8],
);

const OWNED_COUNT: Sql = Sql::new(
    "SELECT count(*) FROM (SELECT 1 FROM agents WHERE owner_id = $1 AND status <> 'deleted' LIMIT $2) t",
    &[Type::INT8, Type::INT8],
);

const CLAIM_BY_OWNER: Sql = Sql::new(
    "UPDATE agents SET status = 'claimed', claimed_at = $2, owner_id = $3, claim_token_hash = NULL,
         claim_expires_at = NULL, verification_code_hash = NULL WHERE id = $1",
    &[Type::INT8, Type::INT8, Type::INT8],
);

const SUSPENSION_OF: Sql = Sql::new(
    "SELECT status, suspended_by, suspended_actor, suspended_reason FROM agents WHERE id = $1",
    &[Type::INT8],
);

/// The agent, locked, with its suspension columns after it.
const LOCK_AGENT_SUSPENSION: Sql = Sql::new(
    concat!(
        "SELECT ",
        agent_columns!(),
        ", a.suspended_by, a.suspended_actor, a.suspended_reason
         FROM agents a WHERE a.id = $1 FOR NO KEY UPDATE"
    ),
    &[Type::INT8],
);

const SUSPEND: Sql = Sql::new(
    "UPDATE agents SET status = 'suspended', suspended_by = $2, suspended_actor = $3,
         suspended_reason = $4 WHERE id = $1",
    &[Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT],
);

const RESUME: Sql = Sql::new(
    "UPDATE agents SET status = 'claimed', suspended_by = NULL, suspended_actor = NULL,
         suspended_reason = NULL WHERE id = $1",
    &[Type::INT8],
);

const INSERT_MOD_LOG: Sql = Sql::new(
    "INSERT INTO mod_log(at, actor, action, target_kind, target, reason) VALUES ($1, $2, $3, $4, $5, $6)",
    &[
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ],
);

const REVOKE_ALL_KEYS: Sql = Sql::new(
    "UPDATE api_keys SET revoked_at = $2 WHERE agent_id = $1 AND revoked_at IS NULL",
    &[Type::INT8, Type::INT8],
);

const MARK_DELETED: Sql = Sql::new(
    "UPDATE agents SET status = 'deleted', description = '', metadata = '{}', avatar_url = NULL
     WHERE id = $1",
    &[Type::INT8],
);

/// Every live key and the newest revoked ones, newest first.
const KEYS_OF: Sql = Sql::new(
    "SELECT id, scope, created_at, revoked_at FROM (
         (SELECT id, scope, created_at, revoked_at FROM api_keys
          WHERE agent_id = $1 AND revoked_at IS NULL)
         UNION ALL
         (SELECT id, scope, created_at, revoked_at FROM api_keys
          WHERE agent_id = $1 AND revoked_at IS NOT NULL ORDER BY id DESC LIMIT $2)
     ) k ORDER BY id DESC",
    &[Type::INT8, Type::INT8],
);

const REVOKE_READ_KEY: Sql = Sql::new(
    "UPDATE api_keys SET revoked_at = $3
     WHERE id = $2 AND agent_id = $1 AND scope = 'read' AND revoked_at IS NULL",
    &[Type::INT8, Type::INT8, Type::INT8],
);

/// Each agent's newest events through its own `audit_agent` index range, merged. The
/// join to agents is inner, as in SQLite: events of unknown agents are not listed.
const EVENTS_OF: Sql = Sql::new(
    concat!(
        "SELECT e.* FROM unnest($1::int8[]) AS ids(agent_id)
         CROSS JOIN LATERAL (
             SELECT ",
        audit_columns!(),
        " FROM audit_log l JOIN agents a ON a.id = l.agent_id
             WHERE l.agent_id = ids.agent_id ORDER BY l.id DESC LIMIT $2
         ) e
         ORDER BY e.id DESC LIMIT $2"
    ),
    &[Type::INT8_ARRAY, Type::INT8],
);

const MODERATED_SUBMOLTS: Sql = Sql::new(
    "SELECT m.submolt_id FROM agents a JOIN submolt_moderators m ON m.agent_id = a.id
     WHERE a.owner_id = $1 LIMIT 1000",
    &[Type::INT8],
);

const OWNED_BY_ADMIN: Sql = Sql::new(
    "SELECT o.is_admin FROM agents a JOIN owners o ON o.id = a.owner_id WHERE a.id = $1",
    &[Type::INT8],
);

pub(crate) async fn create_owner(
    db: &PgPool,
    email: &str,
    password_hash: &str,
    is_admin: bool,
    now: i64,
) -> Result<Owner> {
    let key = email.to_lowercase();
    let admin = i16::from(is_admin);
    // ON CONFLICT: a concurrent sign-up with the same email waits on the unique index and
    // then inserts nothing, without aborting the transaction.
    let row = db
        .query_opt(&INSERT_OWNER, &[&email, &key, &password_hash, &admin, &now])
        .await?
        .ok_or_else(|| StoreError::Conflict("An account with this email already exists".into()))?;
    Ok(owner_from_row(&row)?)
}

pub(crate) async fn owner_by_email(db: &PgPool, email: &str) -> Result<Option<Owner>> {
    let row = db
        .query_opt(&OWNER_BY_EMAIL, &[&email.to_lowercase()])
        .await?;
    Ok(row.as_ref().map(owner_from_row).transpose()?)
}

pub(crate) async fn set_password(db: &PgPool, owner_id: i64, password_hash: &str) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // The update locks the owner's row first (the order create_session uses too).
    tx.execute(&SET_PASSWORD, &[&owner_id, &password_hash])
        .await?;
    tx.execute(&DELETE_OWNER_SESSIONS, &[&owner_id]).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn create_session(
    db: &PgPool,
    token_hash: Vec<u8>,
    owner_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // Logins of one owner queue on its row, so each trim sees the sessions the others
    // added and at most MAX_SESSIONS stay live, as with SQLite's single writer.
    tx.query(&LOCK_OWNER, &[&owner_id]).await?;
    // Expired sessions of this owner go when a new one starts (bounded by the owner).
    tx.execute(&DELETE_EXPIRED_SESSIONS, &[&owner_id, &now])
        .await?;
    tx.execute(
        &INSERT_SESSION,
        &[&token_hash, &owner_id, &now, &expires_at],
    )
    .await?;
    tx.execute(&TRIM_SESSIONS, &[&owner_id, &MAX_SESSIONS])
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn session_owner(
    db: &PgPool,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<Owner>> {
    let row = db.query_opt(&SESSION_OWNER, &[&token_hash, &now]).await?;
    Ok(row.as_ref().map(owner_from_row).transpose()?)
}

pub(crate) async fn delete_session(db: &PgPool, token_hash: &[u8]) -> Result<()> {
    db.execute(&DELETE_SESSION, &[&token_hash]).await?;
    Ok(())
}

pub(crate) async fn agents_of(db: &PgPool, owner_id: i64) -> Result<Vec<Agent>> {
    let rows = db
        .query(&AGENTS_OF, &[&owner_id, &MAX_LISTED_AGENTS])
        .await?;
    Ok(map_rows(&rows, agent_from_row)?)
}

pub(crate) async fn owner_of(db: &PgPool, agent_id: i64) -> Result<Option<i64>> {
    let row = db.query_opt(&OWNER_OF, &[&agent_id]).await?;
    Ok(match row {
        Some(r) => r.try_get::<_, Option<i64>>(0).map_err(PgError::from)?,
        None => None,
    })
}

pub(crate) async fn agent_by_claim_token(
    db: &PgPool,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<Agent>> {
    let row = db
        .query_opt(&AGENT_BY_CLAIM_TOKEN, &[&token_hash, &now])
        .await?;
    Ok(row.as_ref().map(agent_from_row).transpose()?)
}

/// Refuses when the owner already has `cap` agents (deleted ones do not count). Counted
/// under the owner's row lock, so concurrent claims for one owner queue and the cap is
/// exact.
pub(crate) async fn check_owner_cap(tx: &Tx<'_>, owner_id: i64, cap: i64) -> Result<()> {
    tx.query(&LOCK_OWNER, &[&owner_id]).await?;
    let owned: i64 = tx
        .query_one(&OWNED_COUNT, &[&owner_id, &sql_limit(cap)])
        .await?
        .try_get(0)
        .map_err(PgError::from)?;
    if owned >= cap {
        return Err(StoreError::Refused(format!(
            "You already own {cap} agents, the most one owner may have"
        )));
    }
    Ok(())
}

pub(crate) async fn claim_with_token(
    db: &PgPool,
    token_hash: Vec<u8>,
    code_hash: Vec<u8>,
    owner_id: i64,
    cap: i64,
    now: i64,
) -> Result<ClaimOutcome> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let row = tx
        .query_opt(&LOCK_AGENT_BY_CLAIM_TOKEN, &[&token_hash, &now])
        .await?
        .ok_or_else(|| StoreError::Refused("This claim link is invalid, used or expired".into()))?;
    let agent = agent_from_row(&row)?;
    let expected: Option<Vec<u8>> = row.try_get(AGENT_WIDTH).map_err(PgError::from)?;
    if expected.as_deref() != Some(code_hash.as_slice()) {
        // An outcome, not an error: the audit row must commit.
        rows::audit(
            &tx,
            "claim_code_wrong",
            Some(agent.id),
            &json!({"owner": owner_id}),
        )
        .await?;
        tx.commit().await?;
        return Ok(ClaimOutcome::WrongCode);
    }
    check_owner_cap(&tx, owner_id, cap).await?;
    tx.execute(&CLAIM_BY_OWNER, &[&agent.id, &now, &owner_id])
        .await?;
    rows::audit(
        &tx,
        "agent_claimed",
        Some(agent.id),
        &json!({"by": "owner", "owner": owner_id}),
    )
    .await?;
    let claimed = agent_in(&tx, agent.id).await?;
    notify(&tx, Invalidation::KeysOf(agent.id)).await?;
    tx.commit().await?;
    Ok(ClaimOutcome::Claimed(Box::new(claimed)))
}

/// The suspension an agent's status and suspension columns describe, if suspended.
fn suspension(
    status: &str,
    by: Option<String>,
    actor: Option<String>,
    reason: Option<String>,
) -> Option<Suspension> {
    (status == AgentStatus::Suspended.as_str()).then(|| Suspension {
        level: SuspensionLevel::parse(by.as_deref().unwrap_or("")),
        actor: actor.unwrap_or_default(),
        reason: reason.unwrap_or_default(),
    })
}

pub(crate) async fn suspension_of(db: &PgPool, agent_id: i64) -> Result<Option<Suspension>> {
    let Some(r) = db.query_opt(&SUSPENSION_OF, &[&agent_id]).await? else {
        return Ok(None);
    };
    let status: String = r.try_get(0).map_err(PgError::from)?;
    Ok(suspension(
        &status,
        r.try_get(1).map_err(PgError::from)?,
        r.try_get(2).map_err(PgError::from)?,
        r.try_get(3).map_err(PgError::from)?,
    ))
}

pub(crate) async fn set_suspended(
    db: &PgPool,
    agent_id: i64,
    level: SuspensionLevel,
    suspend: Option<(String, String)>,
    log: Option<ModerationRecord>,
) -> Result<Agent> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // Locked: a suspension and a resumption at once are decided one after the other.
    let row = tx
        .query_opt(&LOCK_AGENT_SUSPENSION, &[&agent_id])
        .await?
        .ok_or(StoreError::NotFound("Agent"))?;
    let agent = agent_at(&row, 0)?;
    let current = suspension(
        agent.status.as_str(),
        row.try_get(AGENT_WIDTH).map_err(PgError::from)?,
        row.try_get(AGENT_WIDTH + 1).map_err(PgError::from)?,
        row.try_get(AGENT_WIDTH + 2).map_err(PgError::from)?,
    );
    let refuse = |why: String| Err(StoreError::Refused(why));
    match (&suspend, &current) {
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
    match &suspend {
        Some((actor, reason)) => {
            tx.execute(&SUSPEND, &[&agent_id, &level.as_str(), actor, reason])
                .await?;
            rows::audit(
                &tx,
                "agent_suspended",
                Some(agent_id),
                &json!({"by": level.as_str(), "actor": actor}),
            )
            .await?;
        }
        None => {
            tx.execute(&RESUME, &[&agent_id]).await?;
            rows::audit(
                &tx,
                "agent_resumed",
                Some(agent_id),
                &json!({"by": level.as_str()}),
            )
            .await?;
        }
    }
    let agent = agent_in(&tx, agent_id).await?;
    if let Some(r) = &log {
        tx.execute(
            &INSERT_MOD_LOG,
            &[
                &r.now,
                &r.actor,
                &r.action,
                &r.target_kind,
                &r.target,
                &r.reason,
            ],
        )
        .await?;
    }
    notify(&tx, Invalidation::KeysOf(agent_id)).await?;
    notify(&tx, Invalidation::Pages).await?;
    tx.commit().await?;
    Ok(agent)
}

pub(crate) async fn delete_agent(db: &PgPool, agent_id: i64, now: i64) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // The agent's row before its keys (the module's lock order). Like SQLite, an unknown
    // id is not an error (the audit event is still written).
    lock_agent(&tx, agent_id).await?;
    tx.execute(&REVOKE_ALL_KEYS, &[&agent_id, &now]).await?;
    tx.execute(&MARK_DELETED, &[&agent_id]).await?;
    // Its avatar goes with it (under the agent's lock, as every avatar change).
    tx.execute(&DELETE_AVATAR, &[&agent_id]).await?;
    // And its webhook with its queue: nothing more is sent for it.
    super::webhooks::drop_in(&tx, agent_id).await?;
    rows::audit(
        &tx,
        "agent_deleted",
        Some(agent_id),
        &json!({"by": "owner"}),
    )
    .await?;
    notify(&tx, Invalidation::KeysOf(agent_id)).await?;
    notify(&tx, Invalidation::Pages).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn keys_of(db: &PgPool, agent_id: i64) -> Result<Vec<KeyInfo>> {
    let rows = db
        .query(&KEYS_OF, &[&agent_id, &LISTED_REVOKED_KEYS])
        .await?;
    Ok(map_rows(&rows, |r| {
        Ok(KeyInfo {
            id: r.try_get(0)?,
            scope: r.try_get(1)?,
            created_at: r.try_get(2)?,
            revoked_at: r.try_get(3)?,
        })
    })?)
}

pub(crate) async fn revoke_all_keys(db: &PgPool, agent_id: i64, now: i64) -> Result<usize> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    lock_agent(&tx, agent_id).await?;
    let n = tx.execute(&REVOKE_ALL_KEYS, &[&agent_id, &now]).await?;
    if n > 0 {
        rows::audit(
            &tx,
            "key_revoked",
            Some(agent_id),
            &json!({"by": "owner", "scope": "all", "count": n}),
        )
        .await?;
        notify(&tx, Invalidation::KeysOf(agent_id)).await?;
    }
    tx.commit().await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub(crate) async fn revoke_read_key(
    db: &PgPool,
    agent_id: i64,
    key_id: i64,
    now: i64,
) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    lock_agent(&tx, agent_id).await?;
    let changed = tx
        .execute(&REVOKE_READ_KEY, &[&agent_id, &key_id, &now])
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound("Read-only key"));
    }
    rows::audit(
        &tx,
        "key_revoked",
        Some(agent_id),
        &json!({"by": "owner", "scope": "read"}),
    )
    .await?;
    notify(&tx, Invalidation::KeysOf(agent_id)).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn events_of(
    db: &PgPool,
    agent_ids: Vec<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    let rows = db
        .query(&EVENTS_OF, &[&agent_ids, &sql_limit(limit)])
        .await?;
    Ok(map_rows(&rows, audit_from_row)?)
}

pub(crate) async fn moderated_submolts(db: &PgPool, owner_id: i64) -> Result<Vec<i64>> {
    let rows = db.query(&MODERATED_SUBMOLTS, &[&owner_id]).await?;
    let mut ids = map_rows(&rows, |r| Ok(r.try_get::<_, i64>(0)?))?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

pub(crate) async fn owned_by_admin(db: &PgPool, agent_id: i64) -> Result<bool> {
    let row = db.query_opt(&OWNED_BY_ADMIN, &[&agent_id]).await?;
    Ok(match row {
        Some(r) => r.try_get::<_, i16>(0).map_err(PgError::from)? != 0,
        None => false,
    })
}
