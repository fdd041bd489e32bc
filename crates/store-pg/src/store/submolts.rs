//! Submolts (communities), subscriptions and moderators, on PostgreSQL (the SQLite
//! reference: crates/store-sqlite/src/submolts.rs).
//!
//! Lock order: the submolt's row, then the agent's row (subscription counters); the
//! moderator cap is counted under the submolt's row lock.

use tokio_postgres::types::Type;

use tidepool_core::model::feed::{Page, PageRequest};
use tidepool_core::model::submolts::{
    DEFAULT_SUBMOLTS, MAX_MODERATORS, Moderator, NewSubmolt, Role, SettingsChange, Submolt,
    SubmoltSort,
};
use tidepool_store::{Result, StoreError};

use super::post_rows::{get, parsed};
use super::rows::{bump_counter, is_unique_violation, map_rows, submolt_columns, submolt_from_row};
use crate::{PgError, PgPool, Sql, Tx};

const INSERT_SUBMOLT: Sql = Sql::new(
    "INSERT INTO submolts(uuid, name, display_name, description, allow_crypto, creator_id,
         created_at, last_activity_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
    &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT2,
        Type::INT8,
        Type::INT8,
    ],
);

const INSERT_OWNER_ROLE: Sql = Sql::new(
    "INSERT INTO submolt_moderators(submolt_id, agent_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
    &[Type::INT8, Type::INT8, Type::INT8],
);

const DEFAULTS_PRESENT: Sql = Sql::new(
    "SELECT count(*) FROM submolts WHERE name = ANY($1)",
    &[Type::TEXT_ARRAY],
);

const INSERT_DEFAULT: Sql = Sql::new(
    "INSERT INTO submolts(uuid, name, display_name, description, created_at, last_activity_at)
     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING",
    &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8],
);

const SUBMOLT_BY_ID: Sql = Sql::new(
    concat!(
        "SELECT ",
        submolt_columns!(),
        " FROM submolts s LEFT JOIN agents a ON a.id = s.creator_id WHERE s.id = $1"
    ),
    &[Type::INT8],
);

const SUBMOLT_BY_NAME: Sql = Sql::new(
    concat!(
        "SELECT ",
        submolt_columns!(),
        " FROM submolts s LEFT JOIN agents a ON a.id = s.creator_id WHERE s.name = $1"
    ),
    &[Type::TEXT],
);

/// The listing statements. `$1` limit (with the look-ahead row), `$2` offset, then the
/// keyset position. Names sort bytewise (the column is `COLLATE "C"`), like SQLite's
/// BINARY collation.
macro_rules! list_sql {
    ($where:literal, $order:literal) => {
        concat!(
            "SELECT ",
            submolt_columns!(),
            " FROM submolts s LEFT JOIN agents a ON a.id = s.creator_id ",
            $where,
            " ORDER BY ",
            $order,
            " LIMIT $1 OFFSET $2"
        )
    };
}

const LIST_POPULAR: Sql = Sql::new(
    list_sql!("", "s.subscriber_count DESC, s.id DESC"),
    &[Type::INT8, Type::INT8],
);
const LIST_POPULAR_AFTER: Sql = Sql::new(
    list_sql!(
        "WHERE (s.subscriber_count, s.id) < ($3, $4)",
        "s.subscriber_count DESC, s.id DESC"
    ),
    &[Type::INT8, Type::INT8, Type::INT8, Type::INT8],
);
const LIST_NEW: Sql = Sql::new(
    list_sql!("", "s.created_at DESC, s.id DESC"),
    &[Type::INT8, Type::INT8],
);
const LIST_NEW_AFTER: Sql = Sql::new(
    list_sql!(
        "WHERE (s.created_at, s.id) < ($3, $4)",
        "s.created_at DESC, s.id DESC"
    ),
    &[Type::INT8, Type::INT8, Type::INT8, Type::INT8],
);
const LIST_ALPHABETICAL: Sql = Sql::new(list_sql!("", "s.name ASC"), &[Type::INT8, Type::INT8]);
// Names are unique, so the name alone is a total order; the cursor's id finds it (an
// unknown id: no row, as in SQLite where the comparison with NULL is never true).
const LIST_ALPHABETICAL_AFTER: Sql = Sql::new(
    list_sql!(
        "WHERE s.name > (SELECT x.name FROM submolts x WHERE x.id = $3)",
        "s.name ASC"
    ),
    &[Type::INT8, Type::INT8, Type::INT8],
);

const INSERT_SUBSCRIPTION: Sql = Sql::new(
    "INSERT INTO subscriptions(agent_id, submolt_id, created_at) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING",
    &[Type::INT8, Type::INT8, Type::INT8],
);

const DELETE_SUBSCRIPTION: Sql = Sql::new(
    "DELETE FROM subscriptions WHERE agent_id = $1 AND submolt_id = $2",
    &[Type::INT8, Type::INT8],
);

const BUMP_SUBSCRIBERS: Sql = Sql::new(
    "UPDATE submolts SET subscriber_count = subscriber_count + $2 WHERE id = $1",
    &[Type::INT8, Type::INT8],
);

const BUMP_SUBSCRIPTIONS: Sql = Sql::new(
    "UPDATE agents SET subscription_count = subscription_count + $2 WHERE id = $1",
    &[Type::INT8, Type::INT8],
);

const IS_SUBSCRIBED: Sql = Sql::new(
    "SELECT 1 FROM subscriptions WHERE agent_id = $1 AND submolt_id = $2",
    &[Type::INT8, Type::INT8],
);

const ROLE_OF: Sql = Sql::new(
    "SELECT role FROM submolt_moderators WHERE submolt_id = $1 AND agent_id = $2",
    &[Type::INT8, Type::INT8],
);

/// The update and the row it leaves, in one statement.
const UPDATE_SETTINGS: Sql = Sql::new(
    concat!(
        "WITH s AS (
             UPDATE submolts SET display_name = COALESCE($2, display_name),
                 description = COALESCE($3, description),
                 banner_color = COALESCE($4, banner_color), theme_color = COALESCE($5, theme_color),
                 allow_crypto = COALESCE($6, allow_crypto)
             WHERE id = $1 RETURNING *
         )
         SELECT ",
        submolt_columns!(),
        " FROM s LEFT JOIN agents a ON a.id = s.creator_id"
    ),
    &[
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT2,
    ],
);

/// Owner first, then by appointment (agent id breaks ties, as SQLite's index order does).
const MODERATORS: Sql = Sql::new(
    "SELECT a.uuid, a.name, m.role, m.created_at FROM submolt_moderators m
     JOIN agents a ON a.id = m.agent_id
     WHERE m.submolt_id = $1 ORDER BY m.role = 'owner' DESC, m.created_at, m.agent_id LIMIT 100",
    &[Type::INT8],
);

const LOCK_SUBMOLT: Sql = Sql::new(
    "SELECT 1 FROM submolts WHERE id = $1 FOR NO KEY UPDATE",
    &[Type::INT8],
);

const MODERATOR_COUNT: Sql = Sql::new(
    "SELECT count(*) FROM submolt_moderators WHERE submolt_id = $1",
    &[Type::INT8],
);

const INSERT_MODERATOR: Sql = Sql::new(
    "INSERT INTO submolt_moderators(submolt_id, agent_id, role, created_at)
     VALUES ($1, $2, 'moderator', $3) ON CONFLICT DO NOTHING",
    &[Type::INT8, Type::INT8, Type::INT8],
);

/// Deletes a moderator (never the owner) and reports the role the row had before, in
/// one statement: of two concurrent removals only one deletes and answers true.
const DELETE_MODERATOR: Sql = Sql::new(
    "WITH d AS (
         DELETE FROM submolt_moderators WHERE submolt_id = $1 AND agent_id = $2 AND role <> 'owner'
         RETURNING 1
     )
     SELECT (SELECT count(*) FROM d),
            (SELECT role FROM submolt_moderators WHERE submolt_id = $1 AND agent_id = $2)",
    &[Type::INT8, Type::INT8],
);

/// Creates the default submolts if they are missing (cheap: three key look-ups).
///
/// Safe when several nodes start at once: a node inserting a name another node is
/// inserting waits on the unique index, then inserts nothing (`ON CONFLICT DO NOTHING`),
/// and the counter moves by the rows actually inserted.
pub(crate) async fn ensure_defaults(db: &PgPool, now: i64) -> crate::Result<()> {
    let names: Vec<&str> = DEFAULT_SUBMOLTS.iter().map(|(name, _, _)| *name).collect();
    let present: i64 = db
        .query_one(&DEFAULTS_PRESENT, &[&names])
        .await?
        .try_get(0)?;
    if usize::try_from(present).ok() == Some(names.len()) {
        // The usual start: nothing to write (and no identity values burnt by conflicts).
        return Ok(());
    }
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let mut inserted = 0i64;
    for (name, display, description) in DEFAULT_SUBMOLTS {
        let n = tx
            .execute(
                &INSERT_DEFAULT,
                &[
                    &tidepool_store::new_public_id(),
                    name,
                    display,
                    description,
                    &now,
                ],
            )
            .await?;
        inserted += i64::try_from(n).unwrap_or(0);
    }
    bump_counter(&tx, "submolts", inserted).await?;
    tx.commit().await
}

async fn submolt_in(tx: &Tx<'_>, id: i64) -> Result<Submolt> {
    let row = tx
        .query_opt(&SUBMOLT_BY_ID, &[&id])
        .await?
        .ok_or(StoreError::NotFound("Submolt"))?;
    Ok(submolt_from_row(&row)?)
}

pub(crate) async fn create_submolt(db: &PgPool, new: NewSubmolt) -> Result<Submolt> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let inserted = tx
        .query_one(
            &INSERT_SUBMOLT,
            &[
                &tidepool_store::new_public_id(),
                &new.name,
                &new.display_name,
                &new.description,
                &i16::from(new.allow_crypto),
                &new.creator_id,
                &new.now,
            ],
        )
        .await;
    let id: i64 = match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Conflict("Submolt name already taken".into()));
        }
        other => other?.try_get(0).map_err(PgError::from)?,
    };
    tx.execute(&INSERT_OWNER_ROLE, &[&id, &new.creator_id, &new.now])
        .await?;
    subscribe_in(&tx, new.creator_id, id, new.now).await?;
    bump_counter(&tx, "submolts", 1).await?;
    let submolt = submolt_in(&tx, id).await?;
    tx.commit().await?;
    Ok(submolt)
}

pub(crate) async fn submolt_by_id(db: &PgPool, id: i64) -> Result<Option<Submolt>> {
    let row = db.query_opt(&SUBMOLT_BY_ID, &[&id]).await?;
    Ok(row.as_ref().map(submolt_from_row).transpose()?)
}

pub(crate) async fn submolt_by_name(db: &PgPool, name: &str) -> Result<Option<Submolt>> {
    let row = db.query_opt(&SUBMOLT_BY_NAME, &[&name]).await?;
    Ok(row.as_ref().map(submolt_from_row).transpose()?)
}

/// The keyset position `(key, id)` of a cursor as a position on an integer key: rows
/// with `(int_key, id) < (key, id)` (compared numerically, as SQLite compares an integer
/// column with a real) are exactly those with `(int_key, id) < result`.
fn integer_keyset(key: f64, id: i64) -> (i64, i64) {
    if key.is_nan() {
        // SQLite binds NaN as NULL: the comparison is never true.
        return (i64::MIN, i64::MIN);
    }
    let ceil = key.ceil();
    // i64::MAX as f64 rounds up to 2^63, beyond every i64.
    if ceil >= i64::MAX as f64 {
        return (i64::MAX, i64::MAX);
    }
    if ceil < i64::MIN as f64 {
        return (i64::MIN, i64::MIN);
    }
    // In range, so the cast is exact.
    let whole = ceil as i64;
    if ceil == key {
        (whole, id)
    } else {
        // A fractional key: every row with an integer key up to floor(key), whatever its
        // id, which is every row below (ceil(key), i64::MIN).
        (whole, i64::MIN)
    }
}

pub(crate) async fn list_submolts(
    db: &PgPool,
    sort: SubmoltSort,
    page: PageRequest,
) -> Result<Page<Submolt>> {
    // The look-ahead row decides `has_more`; a negative size or offset means none.
    let limit = page.limit.clamp(0, i64::MAX - 1) + 1;
    let offset = page.offset.max(0);
    let rows = match (sort, page.after) {
        (SubmoltSort::Popular, None) => db.query(&LIST_POPULAR, &[&limit, &offset]).await?,
        (SubmoltSort::Popular, Some((key, id))) => {
            let (k, i) = integer_keyset(key, id);
            db.query(&LIST_POPULAR_AFTER, &[&limit, &offset, &k, &i])
                .await?
        }
        (SubmoltSort::New, None) => db.query(&LIST_NEW, &[&limit, &offset]).await?,
        (SubmoltSort::New, Some((key, id))) => {
            let (k, i) = integer_keyset(key, id);
            db.query(&LIST_NEW_AFTER, &[&limit, &offset, &k, &i])
                .await?
        }
        (SubmoltSort::Alphabetical, None) => {
            db.query(&LIST_ALPHABETICAL, &[&limit, &offset]).await?
        }
        (SubmoltSort::Alphabetical, Some((_, id))) => {
            db.query(&LIST_ALPHABETICAL_AFTER, &[&limit, &offset, &id])
                .await?
        }
    };
    let items = map_rows(&rows, submolt_from_row)?;
    Ok(page.finish(items, sort.cursor_listing(), |s| match sort {
        SubmoltSort::Popular => (s.subscriber_count as f64, s.id),
        SubmoltSort::New => (s.created_at as f64, s.id),
        SubmoltSort::Alphabetical => (0.0, s.id),
    }))
}

/// Subscribes inside `tx`; false if already subscribed. A concurrent identical
/// subscription waits on the primary key and inserts nothing, so counters move once.
async fn subscribe_in(tx: &Tx<'_>, agent_id: i64, submolt_id: i64, now: i64) -> Result<bool> {
    let n = tx
        .execute(&INSERT_SUBSCRIPTION, &[&agent_id, &submolt_id, &now])
        .await?;
    if n == 1 {
        tx.execute(&BUMP_SUBSCRIBERS, &[&submolt_id, &1i64]).await?;
        tx.execute(&BUMP_SUBSCRIPTIONS, &[&agent_id, &1i64]).await?;
    }
    Ok(n == 1)
}

pub(crate) async fn subscribe(
    db: &PgPool,
    agent_id: i64,
    submolt_id: i64,
    now: i64,
) -> Result<bool> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let subscribed = subscribe_in(&tx, agent_id, submolt_id, now).await?;
    tx.commit().await?;
    Ok(subscribed)
}

pub(crate) async fn unsubscribe(db: &PgPool, agent_id: i64, submolt_id: i64) -> Result<bool> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let n = tx
        .execute(&DELETE_SUBSCRIPTION, &[&agent_id, &submolt_id])
        .await?;
    if n == 1 {
        tx.execute(&BUMP_SUBSCRIBERS, &[&submolt_id, &-1i64])
            .await?;
        tx.execute(&BUMP_SUBSCRIPTIONS, &[&agent_id, &-1i64])
            .await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

pub(crate) async fn is_subscribed(db: &PgPool, agent_id: i64, submolt_id: i64) -> Result<bool> {
    Ok(db
        .query_opt(&IS_SUBSCRIBED, &[&agent_id, &submolt_id])
        .await?
        .is_some())
}

pub(crate) async fn role_of(db: &PgPool, submolt_id: i64, agent_id: i64) -> Result<Option<Role>> {
    let row = db.query_opt(&ROLE_OF, &[&submolt_id, &agent_id]).await?;
    row.map(|r| parsed(&r, 0, str::parse)).transpose()
}

pub(crate) async fn update_submolt(
    db: &PgPool,
    id: i64,
    change: SettingsChange,
) -> Result<Submolt> {
    let allow_crypto = change.allow_crypto.map(i16::from);
    let row = db
        .query_opt(
            &UPDATE_SETTINGS,
            &[
                &id,
                &change.display_name,
                &change.description,
                &change.banner_color,
                &change.theme_color,
                &allow_crypto,
            ],
        )
        .await?
        .ok_or(StoreError::NotFound("Submolt"))?;
    Ok(submolt_from_row(&row)?)
}

pub(crate) async fn moderators(db: &PgPool, submolt_id: i64) -> Result<Vec<Moderator>> {
    let rows = db.query(&MODERATORS, &[&submolt_id]).await?;
    rows.iter()
        .map(|r| {
            Ok(Moderator {
                agent_uuid: get(r, 0)?,
                name: get(r, 1)?,
                role: parsed(r, 2, str::parse)?,
                created_at: get(r, 3)?,
            })
        })
        .collect()
}

pub(crate) async fn add_moderator(
    db: &PgPool,
    submolt_id: i64,
    agent_id: i64,
    now: i64,
) -> Result<bool> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // Concurrent appointments to one submolt queue here, so the cap is exact.
    tx.query(&LOCK_SUBMOLT, &[&submolt_id]).await?;
    let role: Option<Role> = tx
        .query_opt(&ROLE_OF, &[&submolt_id, &agent_id])
        .await?
        .map(|r| parsed(&r, 0, str::parse))
        .transpose()?;
    if role == Some(Role::Owner) {
        return Err(StoreError::Refused(
            "The owner is already a moderator".into(),
        ));
    }
    let count: i64 = tx
        .query_one(&MODERATOR_COUNT, &[&submolt_id])
        .await?
        .try_get(0)
        .map_err(PgError::from)?;
    if count >= MAX_MODERATORS {
        return Err(StoreError::Refused(format!(
            "A submolt can have at most {MAX_MODERATORS} moderators"
        )));
    }
    let n = tx
        .execute(&INSERT_MODERATOR, &[&submolt_id, &agent_id, &now])
        .await?;
    tx.commit().await?;
    Ok(n == 1)
}

pub(crate) async fn remove_moderator(db: &PgPool, submolt_id: i64, agent_id: i64) -> Result<bool> {
    let row = db
        .query_one(&DELETE_MODERATOR, &[&submolt_id, &agent_id])
        .await?;
    let deleted: i64 = row.try_get(0).map_err(PgError::from)?;
    // The role as of the statement's snapshot (before its own delete).
    let role: Option<&str> = get(&row, 1)?;
    if deleted > 0 {
        return Ok(true);
    }
    if role == Some(Role::Owner.as_str()) {
        return Err(StoreError::Refused("The owner cannot be removed".into()));
    }
    Ok(false)
}
