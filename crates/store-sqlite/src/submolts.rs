//! Submolts (communities), subscriptions and moderators.

use rusqlite::{Connection, OptionalExtension, Row, params};
pub use tidepool_core::model::submolts::*;

use crate::error::is_unique_violation;
use crate::feed::{Page, PageRequest};
use crate::schema::bump_counter;
use crate::{DbError, Result};

const COLUMNS: &str = "s.id, s.uuid, s.name, s.display_name, s.description, s.subscriber_count, s.post_count, \
     s.allow_crypto, s.banner_color, s.theme_color, a.uuid, a.name, s.created_at, s.last_activity_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Submolt> {
    let creator_uuid: Option<String> = r.get(10)?;
    let creator_name: Option<String> = r.get(11)?;
    Ok(Submolt {
        id: r.get(0)?,
        uuid: r.get(1)?,
        name: r.get(2)?,
        display_name: r.get(3)?,
        description: r.get(4)?,
        subscriber_count: r.get(5)?,
        post_count: r.get(6)?,
        allow_crypto: r.get(7)?,
        banner_color: r.get(8)?,
        theme_color: r.get(9)?,
        created_by: creator_uuid.zip(creator_name),
        created_at: r.get(12)?,
        last_activity_at: r.get(13)?,
    })
}

/// Creates the default submolts if they are missing (cheap: three key look-ups).
pub fn ensure_defaults(conn: &Connection, now: i64) -> Result<()> {
    for (name, display, description) in DEFAULT_SUBMOLTS {
        let n = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO submolts(uuid, name, display_name, description, created_at, last_activity_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![crate::new_public_id(), name, display, description, now])?;
        bump_counter(conn, "submolts", n as i64)?;
    }
    Ok(())
}

/// Creates a submolt; its creator becomes its owner and subscribes to it.
pub fn create(conn: &Connection, new: NewSubmolt) -> Result<Submolt> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO submolts(uuid, name, display_name, description, allow_crypto, creator_id, created_at, last_activity_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )?
        .execute(params![
            crate::new_public_id(),
            new.name,
            new.display_name,
            new.description,
            new.allow_crypto,
            new.creator_id,
            new.now
        ]);
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(DbError::Conflict("Submolt name already taken".into()));
        }
        other => other?,
    };
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO submolt_moderators(submolt_id, agent_id, role, created_at) VALUES (?1, ?2, 'owner', ?3)")?
        .execute(params![id, new.creator_id, new.now])?;
    subscribe(conn, new.creator_id, id, new.now)?;
    bump_counter(conn, "submolts", 1)?;
    by_id(conn, id)?.ok_or(DbError::NotFound("Submolt"))
}

pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Submolt>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM submolts s LEFT JOIN agents a ON a.id = s.creator_id WHERE s.id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

pub fn by_name(conn: &Connection, name: &str) -> Result<Option<Submolt>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM submolts s LEFT JOIN agents a ON a.id = s.creator_id WHERE s.name = ?1"))?
        .query_row([name], from_row)
        .optional()?)
}

/// One page of submolts. Keyset on (subscriber_count, id), (created_at, id) or name.
pub fn list(conn: &Connection, sort: SubmoltSort, page: &PageRequest) -> Result<Page<Submolt>> {
    let base =
        format!("SELECT {COLUMNS} FROM submolts s LEFT JOIN agents a ON a.id = s.creator_id");
    let (order, after) = match sort {
        SubmoltSort::Popular => (
            "s.subscriber_count DESC, s.id DESC",
            "(s.subscriber_count, s.id) < (?1, ?2)",
        ),
        SubmoltSort::New => (
            "s.created_at DESC, s.id DESC",
            "(s.created_at, s.id) < (?1, ?2)",
        ),
        // Names are unique, so the name alone is a total order; the cursor's id finds it.
        SubmoltSort::Alphabetical => (
            "s.name ASC",
            "s.name > (SELECT name FROM submolts WHERE id = ?2)",
        ),
    };
    let items = crate::feed::fetch(page, conn, &base, &[], after, order, &[], from_row)?;
    Ok(page.finish(items, sort.cursor_listing(), |s| match sort {
        SubmoltSort::Popular => (s.subscriber_count as f64, s.id),
        SubmoltSort::New => (s.created_at as f64, s.id),
        SubmoltSort::Alphabetical => (0.0, s.id),
    }))
}

/// Subscribes; false if already subscribed.
pub fn subscribe(conn: &Connection, agent_id: i64, submolt_id: i64, now: i64) -> Result<bool> {
    let n = conn
        .prepare_cached("INSERT OR IGNORE INTO subscriptions(agent_id, submolt_id, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![agent_id, submolt_id, now])?;
    if n == 1 {
        conn.prepare_cached(
            "UPDATE submolts SET subscriber_count = subscriber_count + 1 WHERE id = ?1",
        )?
        .execute([submolt_id])?;
        conn.prepare_cached(
            "UPDATE agents SET subscription_count = subscription_count + 1 WHERE id = ?1",
        )?
        .execute([agent_id])?;
    }
    Ok(n == 1)
}

/// Unsubscribes; false if not subscribed.
pub fn unsubscribe(conn: &Connection, agent_id: i64, submolt_id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM subscriptions WHERE agent_id = ?1 AND submolt_id = ?2")?
        .execute(params![agent_id, submolt_id])?;
    if n == 1 {
        conn.prepare_cached(
            "UPDATE submolts SET subscriber_count = subscriber_count - 1 WHERE id = ?1",
        )?
        .execute([submolt_id])?;
        conn.prepare_cached(
            "UPDATE agents SET subscription_count = subscription_count - 1 WHERE id = ?1",
        )?
        .execute([agent_id])?;
    }
    Ok(n == 1)
}

pub fn is_subscribed(conn: &Connection, agent_id: i64, submolt_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM subscriptions WHERE agent_id = ?1 AND submolt_id = ?2")?
        .query_row(params![agent_id, submolt_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The agent's role in the submolt, if it moderates it.
pub fn role_of(conn: &Connection, submolt_id: i64, agent_id: i64) -> Result<Option<Role>> {
    Ok(conn
        .prepare_cached(
            "SELECT role FROM submolt_moderators WHERE submolt_id = ?1 AND agent_id = ?2",
        )?
        .query_row(params![submolt_id, agent_id], |r| {
            crate::parsed(r, 0, str::parse)
        })
        .optional()?)
}

pub fn update_settings(conn: &Connection, id: i64, change: &SettingsChange) -> Result<Submolt> {
    conn.prepare_cached(
        "UPDATE submolts SET display_name = COALESCE(?2, display_name), description = COALESCE(?3, description),
             banner_color = COALESCE(?4, banner_color), theme_color = COALESCE(?5, theme_color),
             allow_crypto = COALESCE(?6, allow_crypto) WHERE id = ?1",
    )?
    .execute(params![id, change.display_name, change.description, change.banner_color, change.theme_color, change.allow_crypto])?;
    by_id(conn, id)?.ok_or(DbError::NotFound("Submolt"))
}

/// A submolt's moderators, owner first. Bounded: a submolt has few moderators, but the
/// query still carries a limit so no request reads an unbounded list.
pub fn moderators(conn: &Connection, submolt_id: i64) -> Result<Vec<Moderator>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.uuid, a.name, m.role, m.created_at FROM submolt_moderators m JOIN agents a ON a.id = m.agent_id
         WHERE m.submolt_id = ?1 ORDER BY m.role = 'owner' DESC, m.created_at LIMIT 100",
    )?;
    let rows = stmt.query_map([submolt_id], |r| {
        Ok(Moderator {
            agent_uuid: r.get(0)?,
            name: r.get(1)?,
            role: crate::parsed(r, 2, str::parse)?,
            created_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Adds (or re-roles) a moderator. The owner's role cannot be changed this way.
pub fn add_moderator(conn: &Connection, submolt_id: i64, agent_id: i64, now: i64) -> Result<bool> {
    if role_of(conn, submolt_id, agent_id)? == Some(Role::Owner) {
        return Err(DbError::Refused("The owner is already a moderator".into()));
    }
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM submolt_moderators WHERE submolt_id = ?1")?
        .query_row([submolt_id], |r| r.get(0))?;
    if count >= MAX_MODERATORS {
        return Err(DbError::Refused(format!(
            "A submolt can have at most {MAX_MODERATORS} moderators"
        )));
    }
    let n = conn
        .prepare_cached("INSERT OR IGNORE INTO submolt_moderators(submolt_id, agent_id, role, created_at) VALUES (?1, ?2, 'moderator', ?3)")?
        .execute(params![submolt_id, agent_id, now])?;
    Ok(n == 1)
}

/// Removes a moderator; the owner cannot be removed.
pub fn remove_moderator(conn: &Connection, submolt_id: i64, agent_id: i64) -> Result<bool> {
    match role_of(conn, submolt_id, agent_id)? {
        Some(Role::Owner) => Err(DbError::Refused("The owner cannot be removed".into())),
        Some(_) => {
            conn.prepare_cached(
                "DELETE FROM submolt_moderators WHERE submolt_id = ?1 AND agent_id = ?2",
            )?
            .execute(params![submolt_id, agent_id])?;
            Ok(true)
        }
        None => Ok(false),
    }
}
