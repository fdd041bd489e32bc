//! Agents, their API keys, follows, the audit log and the operator's claim, on
//! PostgreSQL (the SQLite reference: crates/store-sqlite/src/agents.rs).
//!
//! Lock order: an agent's row is locked (`FOR NO KEY UPDATE`) before any of its `api_keys` rows
//! are changed, so rotations, mints and revocations of one agent's keys queue behind each
//! other and a cap counted under that lock stays exact. When two agent rows are changed
//! (a follow), the lower id goes first.

use serde_json::{Value, json};
use tokio_postgres::types::Type;

use tidepool_core::model::agents::{Agent, AgentStatus, AuditEntry, KeyScope, NewAgent};
use tidepool_core::model::owners::Owner;
use tidepool_store::{AdminClaim, Result, StoreError};

use super::owners::{OWNER_BY_EMAIL, check_owner_cap};
use super::rows::{
    self, agent_columns, agent_from_row, audit_columns, audit_from_row, bump_counter,
    is_unique_violation, map_rows, owner_from_row, touch,
};
use crate::notify::{Invalidation, notify};
use crate::{PgPool, Sql, Tx};

const INSERT_AGENT: Sql = Sql::new(
    "INSERT INTO agents(uuid, name, name_key, description, status, claim_token_hash,
         claim_expires_at, verification_code_hash, created_at, claimed_at, last_active)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9)
     RETURNING id",
    &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::INT8,
        Type::BYTEA,
        Type::INT8,
        Type::INT8,
    ],
);

const INSERT_KEY: Sql = Sql::new(
    "INSERT INTO api_keys(agent_id, key_hash, scope, created_at) VALUES ($1, $2, $3, $4)",
    &[Type::INT8, Type::BYTEA, Type::TEXT, Type::INT8],
);

pub(crate) const AGENT_BY_ID: Sql = Sql::new(
    concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents a WHERE a.id = $1"
    ),
    &[Type::INT8],
);

/// The agent row, locked until the transaction ends.
pub(crate) const LOCK_AGENT_BY_ID: Sql = Sql::new(
    concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents a WHERE a.id = $1 FOR NO KEY UPDATE"
    ),
    &[Type::INT8],
);

const AGENT_BY_NAME: Sql = Sql::new(
    concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents a WHERE a.name_key = $1"
    ),
    &[Type::TEXT],
);

const LOCK_AGENT_BY_NAME: Sql = Sql::new(
    concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents a WHERE a.name_key = $1 FOR NO KEY UPDATE"
    ),
    &[Type::TEXT],
);

const AGENT_BY_KEY_HASH: Sql = Sql::new(
    concat!(
        "SELECT ",
        agent_columns!(),
        ", k.scope FROM api_keys k JOIN agents a ON a.id = k.agent_id
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
    ),
    &[Type::BYTEA],
);

const UPDATE_PROFILE: Sql = Sql::new(
    concat!(
        "UPDATE agents a SET description = COALESCE($2, a.description),
             metadata = COALESCE($3, a.metadata), last_active = $4
         WHERE a.id = $1 RETURNING ",
        agent_columns!()
    ),
    &[Type::INT8, Type::TEXT, Type::TEXT, Type::INT8],
);

const REVOKE_FULL_KEYS: Sql = Sql::new(
    "UPDATE api_keys SET revoked_at = $2
     WHERE agent_id = $1 AND scope = 'full' AND revoked_at IS NULL",
    &[Type::INT8, Type::INT8],
);

const LIVE_READ_KEYS: Sql = Sql::new(
    "SELECT count(*) FROM api_keys WHERE agent_id = $1 AND scope = 'read' AND revoked_at IS NULL",
    &[Type::INT8],
);

/// Locks, lowest id first, the agents owning a live key among the hashes.
const LOCK_KEY_OWNERS: Sql = Sql::new(
    "SELECT a.id FROM agents a
     WHERE a.id IN (SELECT k.agent_id FROM api_keys k
                    WHERE k.key_hash = ANY($1) AND k.revoked_at IS NULL)
     ORDER BY a.id FOR NO KEY UPDATE",
    &[Type::BYTEA_ARRAY],
);

const REVOKE_BY_HASH: Sql = Sql::new(
    "UPDATE api_keys SET revoked_at = $2 WHERE key_hash = $1 AND revoked_at IS NULL
     RETURNING agent_id",
    &[Type::BYTEA, Type::INT8],
);

const AUDIT_LOG: Sql = Sql::new(
    concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_log l LEFT JOIN agents a ON a.id = l.agent_id ORDER BY l.id DESC LIMIT $1"
    ),
    &[Type::INT8],
);

const INSERT_FOLLOW: Sql = Sql::new(
    "INSERT INTO follows(follower_id, followed_id, created_at) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING",
    &[Type::INT8, Type::INT8, Type::INT8],
);

const DELETE_FOLLOW: Sql = Sql::new(
    "DELETE FROM follows WHERE follower_id = $1 AND followed_id = $2",
    &[Type::INT8, Type::INT8],
);

const IS_FOLLOWING: Sql = Sql::new(
    "SELECT 1 FROM follows WHERE follower_id = $1 AND followed_id = $2",
    &[Type::INT8, Type::INT8],
);

const BUMP_FOLLOWING: Sql = Sql::new(
    "UPDATE agents SET following_count = following_count + $2 WHERE id = $1",
    &[Type::INT8, Type::INT8],
);

const BUMP_FOLLOWERS: Sql = Sql::new(
    "UPDATE agents SET follower_count = follower_count + $2 WHERE id = $1",
    &[Type::INT8, Type::INT8],
);

const CLAIM_WITHOUT_OWNER: Sql = Sql::new(
    "UPDATE agents SET status = 'claimed', claimed_at = $2,
         claim_expires_at = greatest(coalesce(claim_expires_at, 0), $3)
     WHERE id = $1",
    &[Type::INT8, Type::INT8, Type::INT8],
);

const CLAIM_FOR_OWNER: Sql = Sql::new(
    "UPDATE agents SET status = 'claimed', claimed_at = coalesce(claimed_at, $2), owner_id = $3,
         claim_token_hash = NULL, claim_expires_at = NULL, verification_code_hash = NULL
     WHERE id = $1",
    &[Type::INT8, Type::INT8, Type::INT8],
);

/// SQLite reads a negative LIMIT as "no limit"; PostgreSQL refuses it, and reads NULL as
/// "no limit".
pub(crate) fn sql_limit(limit: i64) -> Option<i64> {
    (limit >= 0).then_some(limit)
}

/// Re-reads an agent inside `tx` (after changing it).
pub(crate) async fn agent_in(tx: &Tx<'_>, id: i64) -> Result<Agent> {
    let row = tx
        .query_opt(&AGENT_BY_ID, &[&id])
        .await?
        .ok_or(StoreError::NotFound("Agent"))?;
    Ok(agent_from_row(&row)?)
}

pub(crate) async fn register_agent(db: &PgPool, new: NewAgent) -> Result<Agent> {
    let status = if new.auto_claim {
        AgentStatus::Claimed
    } else {
        AgentStatus::PendingClaim
    };
    let claimed_at = new.auto_claim.then_some(new.now);
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let inserted = tx
        .query_one(
            &INSERT_AGENT,
            &[
                &tidepool_store::new_public_id(),
                &new.name,
                &new.name_key,
                &new.description,
                &status.as_str(),
                &new.claim_token_hash,
                &new.claim_expires_at,
                &new.verification_code_hash,
                &new.now,
                &claimed_at,
            ],
        )
        .await;
    // A concurrent registration of the same name waits on the unique index and fails
    // here once the first commits: the same answer as SQLite's single writer gives.
    let id: i64 = match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Conflict("Name already taken".into()));
        }
        other => other?.try_get(0).map_err(crate::PgError::from)?,
    };
    tx.execute(
        &INSERT_KEY,
        &[&id, &new.key_hash, &KeyScope::Full.as_str(), &new.now],
    )
    .await?;
    bump_counter(&tx, "agents", 1).await?;
    rows::audit(
        &tx,
        "key_issued",
        Some(id),
        &json!({"scope": "full", "reason": "registration"}),
    )
    .await?;
    if new.auto_claim {
        rows::audit(&tx, "agent_claimed", Some(id), &json!({"by": "auto-claim"})).await?;
    }
    let agent = agent_in(&tx, id).await?;
    tx.commit().await?;
    Ok(agent)
}

pub(crate) async fn agent_by_id(db: &PgPool, id: i64) -> Result<Option<Agent>> {
    let row = db.query_opt(&AGENT_BY_ID, &[&id]).await?;
    Ok(row.as_ref().map(agent_from_row).transpose()?)
}

pub(crate) async fn agent_by_name(db: &PgPool, name_key: &str) -> Result<Option<Agent>> {
    let row = db.query_opt(&AGENT_BY_NAME, &[&name_key]).await?;
    Ok(row.as_ref().map(agent_from_row).transpose()?)
}

pub(crate) async fn agent_by_key_hash(
    db: &PgPool,
    key_hash: &[u8],
) -> Result<Option<(Agent, KeyScope)>> {
    let Some(row) = db.query_opt(&AGENT_BY_KEY_HASH, &[&key_hash]).await? else {
        return Ok(None);
    };
    let scope: String = row.try_get(18).map_err(crate::PgError::from)?;
    let scope = if scope == "read" {
        KeyScope::Read
    } else {
        KeyScope::Full
    };
    Ok(Some((agent_from_row(&row)?, scope)))
}

pub(crate) async fn update_profile(
    db: &PgPool,
    id: i64,
    description: Option<String>,
    metadata: Option<String>,
) -> Result<Agent> {
    // One statement: the update and the row it leaves.
    let now = tidepool_core::time::now_ms();
    let row = db
        .query_opt(&UPDATE_PROFILE, &[&id, &description, &metadata, &now])
        .await?
        .ok_or(StoreError::NotFound("Agent"))?;
    Ok(agent_from_row(&row)?)
}

/// Locks the agent's row (see the module docs); `None` if there is no such agent.
pub(crate) async fn lock_agent(tx: &Tx<'_>, agent_id: i64) -> Result<Option<Agent>> {
    let row = tx.query_opt(&LOCK_AGENT_BY_ID, &[&agent_id]).await?;
    Ok(row.as_ref().map(agent_from_row).transpose()?)
}

pub(crate) async fn rotate_key(
    db: &PgPool,
    agent_id: i64,
    key_hash: Vec<u8>,
    now: i64,
) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // Serialises rotations of one agent: the second one's revocation then sees (and
    // revokes) the first one's new key, so exactly one full key stays live, as in SQLite.
    lock_agent(&tx, agent_id).await?;
    let revoked = tx.execute(&REVOKE_FULL_KEYS, &[&agent_id, &now]).await?;
    tx.execute(
        &INSERT_KEY,
        &[&agent_id, &key_hash, &KeyScope::Full.as_str(), &now],
    )
    .await?;
    rows::audit(
        &tx,
        "key_rotated",
        Some(agent_id),
        &json!({"revoked": revoked}),
    )
    .await?;
    notify(&tx, Invalidation::KeysOf(agent_id)).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn add_read_key(
    db: &PgPool,
    agent_id: i64,
    key_hash: Vec<u8>,
    max_live: i64,
    now: i64,
) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // Counted under the agent's row lock: concurrent mints queue, so the cap is exact.
    lock_agent(&tx, agent_id).await?;
    let live: i64 = tx
        .query_one(&LIVE_READ_KEYS, &[&agent_id])
        .await?
        .try_get(0)
        .map_err(crate::PgError::from)?;
    if live >= max_live {
        return Err(StoreError::Forbidden(format!(
            "This agent already has {max_live} live read-only keys, the most allowed; revoke one first"
        )));
    }
    tx.execute(
        &INSERT_KEY,
        &[&agent_id, &key_hash, &KeyScope::Read.as_str(), &now],
    )
    .await?;
    rows::audit(
        &tx,
        "key_issued",
        Some(agent_id),
        &json!({"scope": KeyScope::Read.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn block_content(
    db: &PgPool,
    key_hashes: Vec<[u8; 32]>,
    agent_id: Option<i64>,
    detail: Value,
    now: i64,
) -> Result<usize> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let mut revoked = 0;
    if !key_hashes.is_empty() {
        let hashes: Vec<&[u8]> = key_hashes.iter().map(|h| h.as_slice()).collect();
        // The owners of the leaked keys first, lowest id first (the module's lock order).
        tx.query(&LOCK_KEY_OWNERS, &[&hashes]).await?;
        // One hash at a time, in the given order, like SQLite: each revoked key gets its
        // own audit row, and a hash listed twice is revoked (and counted) once.
        for hash in &hashes {
            if let Some(row) = tx.query_opt(&REVOKE_BY_HASH, &[hash, &now]).await? {
                let owner: i64 = row.try_get(0).map_err(crate::PgError::from)?;
                rows::audit(
                    &tx,
                    "key_revoked",
                    Some(owner),
                    &json!({"reason": "leaked in content"}),
                )
                .await?;
                notify(&tx, Invalidation::KeysOf(owner)).await?;
                revoked += 1;
            }
        }
    }
    rows::audit(&tx, "content_blocked", agent_id, &detail).await?;
    tx.commit().await?;
    Ok(revoked)
}

pub(crate) async fn audit(
    db: &PgPool,
    event: &str,
    agent_id: Option<i64>,
    detail: Value,
) -> Result<()> {
    // One statement, so no transaction of its own.
    let at = tidepool_core::time::now_ms();
    db.execute(
        &rows::AUDIT_INSERT,
        &[&at, &event, &agent_id, &detail.to_string()],
    )
    .await?;
    Ok(())
}

pub(crate) async fn audit_log(db: &PgPool, limit: i64) -> Result<Vec<AuditEntry>> {
    let rows = db.query(&AUDIT_LOG, &[&sql_limit(limit)]).await?;
    Ok(map_rows(&rows, audit_from_row)?)
}

/// Moves the follow counters of both agents, the lower id's row first.
async fn bump_follow_counts(
    tx: &Tx<'_>,
    follower: i64,
    followed: i64,
    delta: i64,
) -> crate::Result<()> {
    let follower_first = follower < followed;
    if follower_first {
        tx.execute(&BUMP_FOLLOWING, &[&follower, &delta]).await?;
    }
    tx.execute(&BUMP_FOLLOWERS, &[&followed, &delta]).await?;
    if !follower_first {
        tx.execute(&BUMP_FOLLOWING, &[&follower, &delta]).await?;
    }
    Ok(())
}

pub(crate) async fn follow(db: &PgPool, follower: i64, followed: i64, now: i64) -> Result<bool> {
    if follower == followed {
        return Err(StoreError::Refused("You cannot follow yourself".into()));
    }
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // A concurrent identical follow waits on the primary key and then inserts nothing,
    // so the counters move once.
    let inserted = tx
        .execute(&INSERT_FOLLOW, &[&follower, &followed, &now])
        .await?;
    if inserted == 1 {
        bump_follow_counts(&tx, follower, followed, 1).await?;
    }
    touch(&tx, follower, now).await?;
    tx.commit().await?;
    Ok(inserted == 1)
}

pub(crate) async fn unfollow(db: &PgPool, follower: i64, followed: i64) -> Result<bool> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let removed = tx.execute(&DELETE_FOLLOW, &[&follower, &followed]).await?;
    if removed == 1 {
        bump_follow_counts(&tx, follower, followed, -1).await?;
    }
    tx.commit().await?;
    Ok(removed == 1)
}

pub(crate) async fn is_following(db: &PgPool, follower: i64, followed: i64) -> Result<bool> {
    Ok(db
        .query_opt(&IS_FOLLOWING, &[&follower, &followed])
        .await?
        .is_some())
}

/// Refuses an operator claim of a suspended or deleted agent, and of an already claimed
/// one unless `claimed_ok` (SQLite's `operator_claimable`).
fn operator_claimable(agent: &Agent, claimed_ok: bool) -> Result<()> {
    match agent.status {
        AgentStatus::PendingClaim => Ok(()),
        AgentStatus::Claimed if claimed_ok => Ok(()),
        AgentStatus::Claimed => Err(StoreError::Conflict(format!(
            "Agent {} is already claimed",
            agent.name
        ))),
        AgentStatus::Suspended | AgentStatus::Deleted => Err(StoreError::Refused(format!(
            "Agent {} is {}, so it cannot be claimed",
            agent.name,
            agent.status.as_str()
        ))),
    }
}

/// The agent by name, locked: two operator claims (or an operator's and an owner's) of
/// one agent queue, and the second sees what the first did.
async fn lock_agent_by_name(tx: &Tx<'_>, name_key: &str) -> Result<Agent> {
    let row = tx
        .query_opt(&LOCK_AGENT_BY_NAME, &[&name_key])
        .await?
        .ok_or(StoreError::NotFound("Agent"))?;
    Ok(agent_from_row(&row)?)
}

pub(crate) async fn admin_claim(
    db: &PgPool,
    name_key: &str,
    how: AdminClaim,
    now: i64,
) -> Result<(Agent, Option<Owner>)> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let result = match how {
        AdminClaim::ForOwner { email, cap } => {
            let owner = tx
                .query_opt(&OWNER_BY_EMAIL, &[&email.to_lowercase()])
                .await?
                .as_ref()
                .map(owner_from_row)
                .transpose()?
                .ok_or_else(|| {
                    StoreError::Refused(format!(
                        "no owner account {email} (create it with `tidepool admin create-owner`)"
                    ))
                })?;
            let agent = lock_agent_by_name(&tx, name_key).await?;
            operator_claimable(&agent, true)?;
            if agent.owner_id.is_some() {
                return Err(StoreError::Conflict(format!(
                    "Agent {} already has an owner",
                    agent.name
                )));
            }
            // The same cap, counted the same way (under the owner's row lock), as for an
            // owner using the claim link.
            check_owner_cap(&tx, owner.id, cap).await?;
            // An earlier operator claim keeps its time: that is when the agent could first
            // write.
            tx.execute(&CLAIM_FOR_OWNER, &[&agent.id, &now, &owner.id])
                .await?;
            rows::audit(
                &tx,
                "agent_claimed",
                Some(agent.id),
                &json!({"by": "operator", "owner": owner.id}),
            )
            .await?;
            (agent_in(&tx, agent.id).await?, Some(owner))
        }
        AdminClaim::WithoutOwner { link_expires_at } => {
            let agent = lock_agent_by_name(&tx, name_key).await?;
            operator_claimable(&agent, false)?;
            tx.execute(&CLAIM_WITHOUT_OWNER, &[&agent.id, &now, &link_expires_at])
                .await?;
            rows::audit(
                &tx,
                "agent_claimed",
                Some(agent.id),
                &json!({"by": "operator", "owner": null}),
            )
            .await?;
            (agent_in(&tx, agent.id).await?, None)
        }
    };
    notify(&tx, Invalidation::KeysOf(result.0.id)).await?;
    tx.commit().await?;
    Ok(result)
}

// ---- avatars ----
//
// Every change locks the agent's row first (the module's lock order), so an upload, a
// removal and the agent's deletion queue behind each other: a deleted agent never gets an
// avatar back from an upload that raced its deletion.

const PUT_AVATAR: Sql = Sql::new(
    "INSERT INTO avatars(agent_id, uuid, png, created_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (agent_id) DO UPDATE
         SET uuid = excluded.uuid, png = excluded.png, created_at = excluded.created_at",
    &[Type::INT8, Type::TEXT, Type::BYTEA, Type::INT8],
);

const SET_AVATAR_URL: Sql = Sql::new(
    "UPDATE agents SET avatar_url = $2 WHERE id = $1",
    &[Type::INT8, Type::TEXT],
);

const AVATAR: Sql = Sql::new("SELECT png FROM avatars WHERE uuid = $1", &[Type::TEXT]);

pub(crate) const DELETE_AVATAR: Sql =
    Sql::new("DELETE FROM avatars WHERE agent_id = $1", &[Type::INT8]);

/// Stores the agent's avatar (replacing the one it had) and points `avatar_url` at it;
/// `NotFound` for an unknown or deleted agent.
pub(crate) async fn put_avatar(
    db: &PgPool,
    agent_id: i64,
    uuid: String,
    png: Vec<u8>,
    url: String,
    now: i64,
) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    match lock_agent(&tx, agent_id).await? {
        Some(agent) if agent.status != AgentStatus::Deleted => {}
        _ => return Err(StoreError::NotFound("Agent")),
    }
    tx.execute(&PUT_AVATAR, &[&agent_id, &uuid, &png, &now])
        .await?;
    tx.execute(&SET_AVATAR_URL, &[&agent_id, &Some(url)])
        .await?;
    // Pages that show the agent show its avatar's address.
    notify(&tx, Invalidation::Pages).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn avatar(db: &PgPool, uuid: &str) -> Result<Option<Vec<u8>>> {
    let row = db.query_opt(&AVATAR, &[&uuid]).await?;
    row.map(|r| r.try_get(0).map_err(StoreError::internal))
        .transpose()
}

/// Removes the agent's avatar and clears `avatar_url` (false: it had none).
pub(crate) async fn delete_avatar(db: &PgPool, agent_id: i64) -> Result<bool> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    lock_agent(&tx, agent_id).await?;
    let removed = tx.execute(&DELETE_AVATAR, &[&agent_id]).await?;
    tx.execute(&SET_AVATAR_URL, &[&agent_id, &None::<String>])
        .await?;
    if removed > 0 {
        notify(&tx, Invalidation::Pages).await?;
    }
    tx.commit().await?;
    Ok(removed == 1)
}

#[cfg(test)]
mod tests {
    //! An avatar upload racing the agent's deletion, staged with the test's own
    //! transaction held open (what the conformance suite can only hope to hit).
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tidepool_store::Store;

    use super::*;
    use crate::store::test_support::{NOW, agent, open, until_one_waits};

    /// An upload waits for a transaction deleting the agent: after its commit the upload
    /// is `NotFound` and stores nothing; after its rollback the avatar is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_behind_the_agents_deletion_stores_nothing() {
        let (_db, store) = open().await;
        for ending in ["commit", "rollback"] {
            let me = agent(&store, &format!("Uploader{ending}")).await;
            let mut conn = store.pool().get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.batch_execute(&format!(
                "UPDATE agents SET status = 'deleted', avatar_url = NULL WHERE id = {me};
                 DELETE FROM avatars WHERE agent_id = {me}"
            ))
            .await
            .unwrap();
            let uuid = tidepool_store::new_public_id();
            let racing = {
                let (store, uuid) = (store.clone(), uuid.clone());
                tokio::spawn(async move {
                    store
                        .put_avatar(me, uuid, vec![1, 2, 3], "https://x/a.png".into(), NOW)
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
            let r = racing.await.unwrap();
            let stored = store.avatar(&uuid).await.unwrap();
            let url = store.agent_by_id(me).await.unwrap().unwrap().avatar_url;
            if commit {
                assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
                assert_eq!((stored, url), (None, None));
            } else {
                r.unwrap();
                assert_eq!(
                    (stored, url.as_deref()),
                    (Some(vec![1, 2, 3]), Some("https://x/a.png"))
                );
            }
        }
    }
}
