//! Row mapping and small statements shared by the store modules: agents, owners,
//! submolts and audit entries read the same columns in every query, and the audit log,
//! the site counters and `last_active` are written from many operations.
//!
//! Column lists are macros (not `const &str`) so they can be spliced into the
//! `&'static str` of a `Sql` constant with `concat!`.

use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use tidepool_core::model::agents::{Agent, AgentStatus, AuditEntry};
use tidepool_core::model::owners::Owner;
use tidepool_core::model::submolts::Submolt;

use crate::{PgError, Sql, Tx};

/// The 18 agent columns [`agent_from_row`] reads, from an `agents a` alias.
macro_rules! agent_columns {
    () => {
        "a.id, a.uuid, a.name, a.description, a.metadata, a.avatar_url, a.karma, \
         a.follower_count, a.following_count, a.post_count, a.comment_count, \
         a.subscription_count, a.vote_weight, a.status, a.created_at, a.claimed_at, \
         a.last_active, a.owner_id"
    };
}
pub(crate) use agent_columns;

/// The 5 owner columns [`owner_from_row`] reads, from an `owners o` alias.
macro_rules! owner_columns {
    () => {
        "o.id, o.email, o.password_hash, o.is_admin, o.created_at"
    };
}
pub(crate) use owner_columns;

/// The 14 submolt columns [`submolt_from_row`] reads, from `submolts s LEFT JOIN agents
/// a ON a.id = s.creator_id` (the creator's uuid and name).
macro_rules! submolt_columns {
    () => {
        "s.id, s.uuid, s.name, s.display_name, s.description, s.subscriber_count, \
         s.post_count, s.allow_crypto, s.banner_color, s.theme_color, a.uuid, a.name, \
         s.created_at, s.last_activity_at"
    };
}
pub(crate) use submolt_columns;

/// The 5 audit columns [`audit_from_row`] reads: `l.id, l.at, l.event, <agent name>,
/// l.detail`, from `audit_log l` joined to `agents a`.
macro_rules! audit_columns {
    () => {
        "l.id, l.at, l.event, a.name, l.detail"
    };
}
pub(crate) use audit_columns;

/// Number of columns [`agent_columns!`] selects (where the next column starts).
pub(crate) const AGENT_WIDTH: usize = 18;

/// Reads an agent from the [`agent_columns!`] starting at column `at`.
pub(crate) fn agent_at(r: &Row, at: usize) -> crate::Result<Agent> {
    let status: String = r.try_get(at + 13)?;
    Ok(Agent {
        id: r.try_get(at)?,
        uuid: r.try_get(at + 1)?,
        name: r.try_get(at + 2)?,
        description: r.try_get(at + 3)?,
        metadata: r.try_get(at + 4)?,
        avatar_url: r.try_get(at + 5)?,
        karma: r.try_get(at + 6)?,
        follower_count: r.try_get(at + 7)?,
        following_count: r.try_get(at + 8)?,
        post_count: r.try_get(at + 9)?,
        comment_count: r.try_get(at + 10)?,
        subscription_count: r.try_get(at + 11)?,
        vote_weight: r.try_get(at + 12)?,
        status: AgentStatus::parse(&status),
        created_at: r.try_get(at + 14)?,
        claimed_at: r.try_get(at + 15)?,
        last_active: r.try_get(at + 16)?,
        owner_id: r.try_get(at + 17)?,
    })
}

/// Reads an agent from a row that starts with the [`agent_columns!`].
pub(crate) fn agent_from_row(r: &Row) -> crate::Result<Agent> {
    agent_at(r, 0)
}

/// Reads an owner from a row that starts with the [`owner_columns!`].
pub(crate) fn owner_from_row(r: &Row) -> crate::Result<Owner> {
    Ok(Owner {
        id: r.try_get(0)?,
        email: r.try_get(1)?,
        password_hash: r.try_get(2)?,
        is_admin: r.try_get::<_, i16>(3)? != 0,
        created_at: r.try_get(4)?,
    })
}

/// Reads a submolt from a row that starts with the [`submolt_columns!`].
pub(crate) fn submolt_from_row(r: &Row) -> crate::Result<Submolt> {
    let creator_uuid: Option<String> = r.try_get(10)?;
    let creator_name: Option<String> = r.try_get(11)?;
    Ok(Submolt {
        id: r.try_get(0)?,
        uuid: r.try_get(1)?,
        name: r.try_get(2)?,
        display_name: r.try_get(3)?,
        description: r.try_get(4)?,
        subscriber_count: r.try_get(5)?,
        post_count: r.try_get(6)?,
        allow_crypto: r.try_get::<_, i16>(7)? != 0,
        banner_color: r.try_get(8)?,
        theme_color: r.try_get(9)?,
        created_by: creator_uuid.zip(creator_name),
        created_at: r.try_get(12)?,
        last_activity_at: r.try_get(13)?,
    })
}

/// Reads an audit entry from a row that starts with the [`audit_columns!`].
pub(crate) fn audit_from_row(r: &Row) -> crate::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        event: r.try_get(2)?,
        agent_name: r.try_get(3)?,
        detail: r.try_get(4)?,
    })
}

/// Maps every row with `f`.
pub(crate) fn map_rows<T>(
    rows: &[Row],
    f: impl Fn(&Row) -> crate::Result<T>,
) -> crate::Result<Vec<T>> {
    rows.iter().map(f).collect()
}

/// True if `e` is PostgreSQL refusing a row because of a unique constraint.
pub(crate) fn is_unique_violation(e: &PgError) -> bool {
    matches!(e, PgError::Db(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION))
}

/// Appends to the audit log (the `at` is the database node's clock, as in SQLite).
pub(crate) const AUDIT_INSERT: Sql = Sql::new(
    "INSERT INTO audit_log(at, event, agent_id, detail) VALUES ($1, $2, $3, $4)",
    &[Type::INT8, Type::TEXT, Type::INT8, Type::TEXT],
);

/// Appends an event to the audit log inside `tx`; `detail` is stored as JSON text.
pub(crate) async fn audit(
    tx: &Tx<'_>,
    event: &str,
    agent_id: Option<i64>,
    detail: &Value,
) -> crate::Result<()> {
    let at = tidepool_core::time::now_ms();
    tx.execute(
        &AUDIT_INSERT,
        &[&at, &event, &agent_id, &detail.to_string()],
    )
    .await?;
    Ok(())
}

const BUMP_COUNTER: Sql = Sql::new(
    "UPDATE counters SET value = value + $2 WHERE name = $1 AND shard = pg_backend_pid() % 16",
    &[Type::TEXT, Type::INT8],
);

/// Moves a site counter (`agents`, `posts`, ...) by `delta`, relatively.
pub(crate) async fn bump_counter(tx: &Tx<'_>, name: &str, delta: i64) -> crate::Result<()> {
    if delta != 0 {
        tx.execute(&BUMP_COUNTER, &[&name, &delta]).await?;
    }
    Ok(())
}

const TOUCH: Sql = Sql::new(
    "UPDATE agents SET last_active = $2 WHERE id = $1 AND last_active < $2",
    &[Type::INT8, Type::INT8],
);

/// Records activity of the agent (inside writes that act for it); never moves it back.
pub(crate) async fn touch(tx: &Tx<'_>, agent_id: i64, now: i64) -> crate::Result<()> {
    tx.execute(&TOUCH, &[&agent_id, &now]).await?;
    Ok(())
}
