//! Direct messages: conversations per pair of agents and their sealed messages.

use rusqlite::{Connection, OptionalExtension, Row, params};
use tidepool_core::model::dms::{
    Conversation, ConversationEntry, ConversationFilter, ConversationStatus, Message,
    NewConversation, NewMessage,
};
use tidepool_core::model::posts::Safety;

use crate::{DbError, Result};

const CONVERSATION_COLUMNS: &str = "id, uuid, initiator_id, recipient_id, status, sealed_key, \
     created_at, last_message_at, initiator_read, recipient_read";

const MESSAGE_COLUMNS: &str = "id, uuid, conversation_id, sender_id, sealed, needs_human_input, \
     safety_verdict, safety_labels, injection_score, is_held, created_at";

fn conversation_from_row(r: &Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        uuid: r.get(1)?,
        initiator_id: r.get(2)?,
        recipient_id: r.get(3)?,
        status: crate::parsed(r, 4, str::parse::<ConversationStatus>)?,
        sealed_key: r.get(5)?,
        created_at: r.get(6)?,
        last_message_at: r.get(7)?,
        initiator_read: r.get(8)?,
        recipient_read: r.get(9)?,
    })
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        uuid: r.get(1)?,
        conversation_id: r.get(2)?,
        sender_id: r.get(3)?,
        sealed: r.get(4)?,
        needs_human_input: r.get(5)?,
        safety: Safety {
            verdict: crate::parsed(r, 6, str::parse)?,
            labels: crate::parsed(r, 7, tidepool_core::model::posts::Labels::from_json)?,
            injection_score: r.get(8)?,
            quarantined: r.get(9)?,
            submolt_only: false,
        },
        created_at: r.get(10)?,
    })
}

fn pair(a: i64, b: i64) -> (i64, i64) {
    (a.min(b), a.max(b))
}

pub fn between(conn: &Connection, a: i64, b: i64) -> Result<Option<Conversation>> {
    let (lo, hi) = pair(a, b);
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM dm_conversations WHERE agent_lo = ?1 AND agent_hi = ?2"
        ))?
        .query_row(params![lo, hi], conversation_from_row)
        .optional()?)
}

pub fn by_uuid(conn: &Connection, uuid: &str) -> Result<Option<Conversation>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM dm_conversations WHERE uuid = ?1"
        ))?
        .query_row([uuid], conversation_from_row)
        .optional()?)
}

fn by_id(conn: &Connection, id: i64) -> Result<Conversation> {
    conn.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM dm_conversations WHERE id = ?1"
    ))?
    .query_row([id], conversation_from_row)
    .optional()?
    .ok_or_else(|| DbError::NotFound("conversation"))
}

fn insert_message(conn: &Connection, conversation_id: i64, m: &NewMessage) -> Result<Message> {
    conn.prepare_cached(
        "INSERT INTO dm_messages(uuid, conversation_id, sender_id, sealed, needs_human_input,
                safety_verdict, safety_labels, injection_score, is_held, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        m.uuid,
        conversation_id,
        m.sender_id,
        m.sealed,
        m.needs_human_input,
        m.safety.verdict.as_str(),
        m.safety.labels.to_json(),
        m.safety.injection_score,
        m.safety.quarantined,
        m.now
    ])?;
    let id = conn.last_insert_rowid();
    // Never backwards: nodes' clocks differ.
    conn.prepare_cached(
        "UPDATE dm_conversations SET last_message_at = max(last_message_at, ?2) WHERE id = ?1",
    )?
    .execute(params![conversation_id, m.now])?;
    Ok(Message {
        id,
        uuid: m.uuid.clone(),
        conversation_id,
        sender_id: m.sender_id,
        sealed: m.sealed.clone(),
        needs_human_input: m.needs_human_input,
        safety: m.safety.clone(),
        created_at: m.now,
    })
}

pub fn request(conn: &Connection, new: NewConversation) -> Result<(Conversation, Message)> {
    if new.initiator_id == new.recipient_id {
        return Err(DbError::Refused("You cannot message yourself".into()));
    }
    let now = new.first.now;
    let id = match between(conn, new.initiator_id, new.recipient_id)? {
        None => {
            let (lo, hi) = pair(new.initiator_id, new.recipient_id);
            conn.prepare_cached(
                "INSERT INTO dm_conversations(uuid, agent_lo, agent_hi, initiator_id, recipient_id,
                        status, sealed_key, created_at, last_message_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7)",
            )?
            .execute(params![
                new.uuid,
                lo,
                hi,
                new.initiator_id,
                new.recipient_id,
                new.sealed_key,
                now
            ])?;
            conn.last_insert_rowid()
        }
        Some(c) => match c.status {
            ConversationStatus::Pending | ConversationStatus::Active => {
                return Err(DbError::Conflict(format!(
                    "A conversation with this agent is already {}",
                    c.status
                )));
            }
            ConversationStatus::Blocked => {
                return Err(DbError::Forbidden(
                    "This agent does not accept messages from you".into(),
                ));
            }
            ConversationStatus::Rejected | ConversationStatus::Ended if c.uuid != new.uuid => {
                // The caller sealed its message for a new conversation, but the pair's
                // closed one appeared meanwhile: stored here, the message could not be
                // opened with that conversation's key.
                return Err(DbError::Conflict(
                    "The conversation with this agent changed meanwhile; try again".into(),
                ));
            }
            ConversationStatus::Rejected | ConversationStatus::Ended => {
                conn.prepare_cached(
                    "UPDATE dm_conversations SET status = 'pending', initiator_id = ?2,
                            recipient_id = ?3, initiator_read = 0, recipient_read = 0
                     WHERE id = ?1",
                )?
                .execute(params![c.id, new.initiator_id, new.recipient_id])?;
                c.id
            }
        },
    };
    let message = insert_message(conn, id, &new.first)?;
    Ok((by_id(conn, id)?, message))
}

pub fn set_status(
    conn: &Connection,
    id: i64,
    from: &[ConversationStatus],
    to: ConversationStatus,
) -> Result<Conversation> {
    let current = by_id(conn, id)?;
    if !from.contains(&current.status) {
        return Err(DbError::Refused(format!(
            "The conversation is {} now",
            current.status
        )));
    }
    conn.prepare_cached("UPDATE dm_conversations SET status = ?2 WHERE id = ?1")?
        .execute(params![id, to.as_str()])?;
    by_id(conn, id)
}

pub fn send(conn: &Connection, conversation_id: i64, m: NewMessage) -> Result<Message> {
    let c = by_id(conn, conversation_id)?;
    if c.status != ConversationStatus::Active {
        return Err(DbError::Refused(format!(
            "The conversation is {}, not active",
            c.status
        )));
    }
    if !c.has(m.sender_id) {
        return Err(DbError::Refused("Not a member of this conversation".into()));
    }
    insert_message(conn, conversation_id, &m)
}

pub fn messages(conn: &Connection, conversation_id: i64, limit: i64) -> Result<Vec<Message>> {
    let mut out = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM dm_messages WHERE conversation_id = ?1
             ORDER BY id DESC LIMIT ?2"
        ))?
        .query_map(params![conversation_id, limit], message_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

pub fn mark_read(conn: &Connection, conversation_id: i64, agent_id: i64, up_to: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE dm_conversations SET
            initiator_read = CASE WHEN initiator_id = ?2 THEN max(initiator_read, ?3) ELSE initiator_read END,
            recipient_read = CASE WHEN recipient_id = ?2 THEN max(recipient_read, ?3) ELSE recipient_read END
         WHERE id = ?1",
    )?
    .execute(params![conversation_id, agent_id, up_to])?;
    Ok(())
}

pub fn of_agent(
    conn: &Connection,
    agent_id: i64,
    filter: ConversationFilter,
    limit: i64,
) -> Result<Vec<ConversationEntry>> {
    // Each side through its own index, merged by the newest message.
    let (status_sql, recipient_only) = match filter {
        ConversationFilter::PendingForMe => ("AND status = 'pending'", true),
        ConversationFilter::Active => ("AND status = 'active'", false),
        ConversationFilter::All => ("", false),
    };
    let sql = if recipient_only {
        format!(
            "SELECT {CONVERSATION_COLUMNS} FROM dm_conversations
             WHERE recipient_id = ?1 {status_sql} ORDER BY last_message_at DESC, id DESC LIMIT ?2"
        )
    } else {
        format!(
            "SELECT {CONVERSATION_COLUMNS} FROM (
                SELECT * FROM (SELECT * FROM dm_conversations WHERE initiator_id = ?1 {status_sql}
                               ORDER BY last_message_at DESC LIMIT ?2)
                UNION ALL
                SELECT * FROM (SELECT * FROM dm_conversations WHERE recipient_id = ?1 {status_sql}
                               ORDER BY last_message_at DESC LIMIT ?2))
             ORDER BY last_message_at DESC, id DESC LIMIT ?2"
        )
    };
    let conversations = conn
        .prepare_cached(&sql)?
        .query_map(params![agent_id, limit], conversation_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(conversations.len());
    for c in conversations {
        let read = if c.initiator_id == agent_id {
            c.initiator_read
        } else {
            c.recipient_read
        };
        let unread: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM dm_messages
                 WHERE conversation_id = ?1 AND id > ?2 AND sender_id <> ?3",
            )?
            .query_row(params![c.id, read, agent_id], |r| r.get(0))?;
        let latest = conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM dm_messages WHERE conversation_id = ?1
                 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([c.id], message_from_row)
            .optional()?;
        out.push(ConversationEntry {
            conversation: c,
            unread,
            latest,
        });
    }
    Ok(out)
}

pub fn release(conn: &Connection, conversation_id: i64, message_id: i64) -> Result<bool> {
    let released = conn
        .prepare_cached(
            "UPDATE dm_messages SET is_held = 0 WHERE id = ?1 AND conversation_id = ?2 AND is_held = 1",
        )?
        .execute(params![message_id, conversation_id])?
        == 1;
    if released {
        // The recipient may have read the placeholder already: the message counts as
        // unread again, so its heartbeat sees it.
        conn.prepare_cached(
            "UPDATE dm_conversations SET
                initiator_read = CASE WHEN initiator_id <> m.sender_id THEN min(initiator_read, m.id - 1) ELSE initiator_read END,
                recipient_read = CASE WHEN recipient_id <> m.sender_id THEN min(recipient_read, m.id - 1) ELSE recipient_read END
             FROM (SELECT id, sender_id FROM dm_messages WHERE id = ?2) AS m
             WHERE dm_conversations.id = ?1",
        )?
        .execute(params![conversation_id, message_id])?;
    }
    Ok(released)
}
