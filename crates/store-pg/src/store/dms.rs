//! Direct messages on PostgreSQL: one conversation per pair of agents and its sealed
//! messages (the SQLite reference: crates/store-sqlite/src/dms.rs).
//!
//! Several nodes may act on one conversation at once, so every decision is taken on the
//! conversation's row under its lock (or in one conditional statement): a request locks
//! the pair's row before judging its status, and the unique pair makes two agents asking
//! each other at once end with one conversation; a status change is an UPDATE conditional
//! on the status it starts from; a message is appended under the conversation's row lock,
//! so it never lands in a conversation that was just ended or blocked. The only lock a
//! DM operation takes is on that row (foreign-key checks aside), except a release, which
//! locks its message's row first and then the conversation's; nothing locks an existing
//! message after a conversation, so they cannot deadlock.

use tokio_postgres::Row;

use tidepool_core::model::dms::{
    Conversation, ConversationEntry, ConversationFilter, ConversationStatus, Message,
    NewConversation, NewMessage,
};
use tidepool_core::model::posts::{Labels, Safety};
use tidepool_store::{Result, StoreError};

use super::post_rows::{get, parsed};
use crate::{PgPool, Sql, Tx, Type};

/// The 10 conversation columns [`conversation_at`] reads, from a `c` alias.
macro_rules! conversation_columns {
    () => {
        "c.id, c.uuid, c.initiator_id, c.recipient_id, c.status, c.sealed_key, c.created_at, \
         c.last_message_at, c.initiator_read, c.recipient_read"
    };
}

/// The 11 message columns [`message_at`] reads, from an `m` alias.
macro_rules! message_columns {
    () => {
        "m.id, m.uuid, m.conversation_id, m.sender_id, m.sealed, m.needs_human_input, \
         m.safety_verdict, m.safety_labels, m.injection_score, m.is_held, m.created_at"
    };
}

/// Number of columns [`conversation_columns!`] selects (where the next column starts).
const CONVERSATION_WIDTH: usize = 10;

fn conversation_at(r: &Row, at: usize) -> Result<Conversation> {
    Ok(Conversation {
        id: get(r, at)?,
        uuid: get(r, at + 1)?,
        initiator_id: get(r, at + 2)?,
        recipient_id: get(r, at + 3)?,
        status: parsed(r, at + 4, str::parse::<ConversationStatus>)?,
        sealed_key: get(r, at + 5)?,
        created_at: get(r, at + 6)?,
        last_message_at: get(r, at + 7)?,
        initiator_read: get(r, at + 8)?,
        recipient_read: get(r, at + 9)?,
    })
}

fn conversation_from_row(r: &Row) -> Result<Conversation> {
    conversation_at(r, 0)
}

fn message_at(r: &Row, at: usize) -> Result<Message> {
    Ok(Message {
        id: get(r, at)?,
        uuid: get(r, at + 1)?,
        conversation_id: get(r, at + 2)?,
        sender_id: get(r, at + 3)?,
        sealed: get(r, at + 4)?,
        needs_human_input: get::<i16>(r, at + 5)? != 0,
        safety: Safety {
            verdict: parsed(r, at + 6, str::parse)?,
            labels: parsed(r, at + 7, Labels::from_json)?,
            injection_score: get(r, at + 8)?,
            quarantined: get::<i16>(r, at + 9)? != 0,
            submolt_only: false,
        },
        created_at: get(r, at + 10)?,
    })
}

fn message_from_row(r: &Row) -> Result<Message> {
    message_at(r, 0)
}

/// The pair's key: the lower agent id first, whoever asked.
fn pair(a: i64, b: i64) -> (i64, i64) {
    (a.min(b), a.max(b))
}

/// A listing limit as SQL: a negative one is no limit (NULL), as SQLite reads it.
fn sql_limit(limit: i64) -> Option<i64> {
    (limit >= 0).then_some(limit)
}

const BETWEEN: Sql = Sql::new(
    concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM dm_conversations c WHERE c.agent_lo = $1 AND c.agent_hi = $2"
    ),
    &[Type::INT8, Type::INT8],
);

/// The pair's conversation, locked against other requests and decisions until commit.
/// NO KEY UPDATE (what an UPDATE of non-key columns takes) leaves new messages' foreign-key
/// checks free to go on.
const BETWEEN_LOCKED: Sql = Sql::new(
    concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM dm_conversations c WHERE c.agent_lo = $1 AND c.agent_hi = $2 FOR NO KEY UPDATE"
    ),
    &[Type::INT8, Type::INT8],
);

const BY_UUID: Sql = Sql::new(
    concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM dm_conversations c WHERE c.uuid = $1"
    ),
    &[Type::TEXT],
);

const BY_ID: Sql = Sql::new(
    concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM dm_conversations c WHERE c.id = $1"
    ),
    &[Type::INT8],
);

/// A new conversation for the pair; nothing when the pair has one already (a concurrent
/// request may have made it after this transaction looked: the insert then waits for that
/// one to commit and inserts nothing).
const INSERT_CONVERSATION: Sql = Sql::new(
    concat!(
        "INSERT INTO dm_conversations AS c (uuid, agent_lo, agent_hi, initiator_id, recipient_id,
             status, sealed_key, created_at, last_message_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7)
         ON CONFLICT (agent_lo, agent_hi) DO NOTHING
         RETURNING ",
        conversation_columns!()
    ),
    &[
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::BYTEA,
        Type::INT8,
    ],
);

/// A rejected or ended conversation asked again: pending from the new initiator, both
/// read marks back to none (as SQLite).
const REOPEN: Sql = Sql::new(
    "UPDATE dm_conversations SET status = 'pending', initiator_id = $2, recipient_id = $3,
         initiator_read = 0, recipient_read = 0
     WHERE id = $1",
    &[Type::INT8, Type::INT8, Type::INT8],
);

/// Appends a message and moves the conversation's last message time, in one statement;
/// answers the message's id and the conversation as it now is.
const INSERT_MESSAGE: Sql = Sql::new(
    concat!(
        "WITH m AS (
             INSERT INTO dm_messages(uuid, conversation_id, sender_id, sealed, needs_human_input,
                 safety_verdict, safety_labels, injection_score, is_held, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING id
         ), c AS (
             UPDATE dm_conversations SET last_message_at = GREATEST(last_message_at, $10) WHERE id = $2 RETURNING *
         )
         SELECT m.id, ",
        conversation_columns!(),
        " FROM m, c"
    ),
    &[
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::BYTEA,
        Type::INT2,
        Type::TEXT,
        Type::TEXT,
        Type::FLOAT8,
        Type::INT2,
        Type::INT8,
    ],
);

/// Moves the status only from one of the given ones: of two nodes deciding at once, the
/// second's UPDATE sees the first's status (PostgreSQL re-checks the condition on the row
/// it waited for) and changes nothing.
const SET_STATUS: Sql = Sql::new(
    concat!(
        "UPDATE dm_conversations c SET status = $3 WHERE c.id = $1 AND c.status = ANY($2)
         RETURNING ",
        conversation_columns!()
    ),
    &[Type::INT8, Type::TEXT_ARRAY, Type::TEXT],
);

/// The conversation's row, locked until commit so that its status cannot change under a
/// message being appended.
const LOCK_FOR_SEND: Sql = Sql::new(
    "SELECT status, initiator_id, recipient_id FROM dm_conversations WHERE id = $1
     FOR NO KEY UPDATE",
    &[Type::INT8],
);

const MESSAGES: Sql = Sql::new(
    concat!(
        "SELECT ",
        message_columns!(),
        " FROM dm_messages m WHERE m.conversation_id = $1 ORDER BY m.id DESC LIMIT $2"
    ),
    &[Type::INT8, Type::INT8],
);

/// A read mark only moves forward, whatever order two reads of one agent commit in.
const MARK_READ: Sql = Sql::new(
    "UPDATE dm_conversations SET
         initiator_read = CASE WHEN initiator_id = $2 THEN GREATEST(initiator_read, $3)
                               ELSE initiator_read END,
         recipient_read = CASE WHEN recipient_id = $2 THEN GREATEST(recipient_read, $3)
                               ELSE recipient_read END
     WHERE id = $1",
    &[Type::INT8, Type::INT8, Type::INT8],
);

/// An agent's conversations from `$from` (at most `$2` of them, `$1` the agent), newest
/// message first, each with the count of the other agent's messages past this agent's read
/// mark and the newest message (NULLs when there is none).
macro_rules! listing {
    ($from:literal) => {
        concat!(
            "SELECT ",
            conversation_columns!(),
            ", (SELECT count(*) FROM dm_messages u
                 WHERE u.conversation_id = c.id AND u.sender_id <> $1
                   AND u.id > CASE WHEN c.initiator_id = $1 THEN c.initiator_read
                                   ELSE c.recipient_read END), ",
            message_columns!(),
            " FROM (",
            $from,
            ") c
             LEFT JOIN LATERAL (
                 SELECT * FROM dm_messages l WHERE l.conversation_id = c.id
                 ORDER BY l.id DESC LIMIT 1
             ) m ON true
             ORDER BY c.last_message_at DESC, c.id DESC LIMIT $2"
        )
    };
}

/// Requests waiting for the agent: its side as recipient only.
const PENDING_FOR: Sql = Sql::new(
    listing!(
        "SELECT * FROM dm_conversations WHERE recipient_id = $1 AND status = 'pending'
         ORDER BY last_message_at DESC, id DESC LIMIT $2"
    ),
    &[Type::INT8, Type::INT8],
);

// Both sides: each through its own index, newest first, merged (an OR of the two sides
// would read every conversation of the agent and sort them).
const ACTIVE_OF: Sql = Sql::new(
    listing!(
        "(SELECT * FROM dm_conversations WHERE initiator_id = $1 AND status = 'active'
          ORDER BY last_message_at DESC, id DESC LIMIT $2)
         UNION ALL
         (SELECT * FROM dm_conversations WHERE recipient_id = $1 AND status = 'active'
          ORDER BY last_message_at DESC, id DESC LIMIT $2)"
    ),
    &[Type::INT8, Type::INT8],
);

const ALL_OF: Sql = Sql::new(
    listing!(
        "(SELECT * FROM dm_conversations WHERE initiator_id = $1
          ORDER BY last_message_at DESC, id DESC LIMIT $2)
         UNION ALL
         (SELECT * FROM dm_conversations WHERE recipient_id = $1
          ORDER BY last_message_at DESC, id DESC LIMIT $2)"
    ),
    &[Type::INT8, Type::INT8],
);

/// Lets a held message through and answers how many it released: none when it was not
/// held, so of two releases at once one answers 1 (the second re-checks `is_held` on the
/// row the first changed). The recipient (the member who did not send it) may have read
/// the placeholder already: its read mark drops below the message, which counts as unread
/// again. Marks are moved relatively (LEAST), as a mark read meanwhile moves them
/// (GREATEST), so neither overwrites the other.
const RELEASE: Sql = Sql::new(
    "WITH r AS (
         UPDATE dm_messages SET is_held = 0
         WHERE id = $1 AND conversation_id = $2 AND is_held = 1
         RETURNING id, sender_id
     ), c AS (
         UPDATE dm_conversations c SET
             initiator_read = CASE WHEN c.initiator_id <> r.sender_id
                                   THEN LEAST(c.initiator_read, r.id - 1)
                                   ELSE c.initiator_read END,
             recipient_read = CASE WHEN c.recipient_id <> r.sender_id
                                   THEN LEAST(c.recipient_read, r.id - 1)
                                   ELSE c.recipient_read END
         FROM r WHERE c.id = $2
     )
     SELECT count(*) FROM r",
    &[Type::INT8, Type::INT8],
);

pub(crate) async fn between(db: &PgPool, a: i64, b: i64) -> Result<Option<Conversation>> {
    let (lo, hi) = pair(a, b);
    db.query_opt(&BETWEEN, &[&lo, &hi])
        .await?
        .map(|r| conversation_from_row(&r))
        .transpose()
}

pub(crate) async fn by_uuid(db: &PgPool, uuid: &str) -> Result<Option<Conversation>> {
    db.query_opt(&BY_UUID, &[&uuid])
        .await?
        .map(|r| conversation_from_row(&r))
        .transpose()
}

/// Appends `m` to conversation `id` inside `tx` (the caller holds the conversation's row
/// lock and has judged its status); answers the message and the conversation after it.
async fn insert_message(
    tx: &Tx<'_>,
    conversation_id: i64,
    m: &NewMessage,
) -> Result<(Message, Conversation)> {
    let row = tx
        .query_opt(
            &INSERT_MESSAGE,
            &[
                &m.uuid,
                &conversation_id,
                &m.sender_id,
                &m.sealed,
                &i16::from(m.needs_human_input),
                &m.safety.verdict.as_str(),
                &m.safety.labels.to_json(),
                &m.safety.injection_score,
                &i16::from(m.safety.quarantined),
                &m.now,
            ],
        )
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
    let message = Message {
        id: get(&row, 0)?,
        uuid: m.uuid.clone(),
        conversation_id,
        sender_id: m.sender_id,
        sealed: m.sealed.clone(),
        needs_human_input: m.needs_human_input,
        safety: m.safety.clone(),
        created_at: m.now,
    };
    Ok((message, conversation_at(&row, 1)?))
}

/// What a request finds in the pair's conversation: `Ok(())` when it may be asked again.
fn may_ask_again(c: &Conversation) -> Result<()> {
    match c.status {
        ConversationStatus::Pending | ConversationStatus::Active => Err(StoreError::Conflict(
            format!("A conversation with this agent is already {}", c.status),
        )),
        ConversationStatus::Blocked => Err(StoreError::Forbidden(
            "This agent does not accept messages from you".into(),
        )),
        ConversationStatus::Rejected | ConversationStatus::Ended => Ok(()),
    }
}

pub(crate) async fn request(db: &PgPool, new: NewConversation) -> Result<(Conversation, Message)> {
    if new.initiator_id == new.recipient_id {
        return Err(StoreError::Refused("You cannot message yourself".into()));
    }
    let (lo, hi) = pair(new.initiator_id, new.recipient_id);
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let id = match tx.query_opt(&BETWEEN_LOCKED, &[&lo, &hi]).await? {
        Some(row) => {
            let c = conversation_from_row(&row)?;
            may_ask_again(&c)?;
            if c.uuid != new.uuid {
                // The caller sealed its message for a new conversation, but the pair's
                // closed one appeared meanwhile: stored here, the message could not be
                // opened with that conversation's key.
                return Err(changed_meanwhile());
            }
            tx.execute(&REOPEN, &[&c.id, &new.initiator_id, &new.recipient_id])
                .await?;
            c.id
        }
        None => {
            let inserted = tx
                .query_opt(
                    &INSERT_CONVERSATION,
                    &[
                        &new.uuid,
                        &lo,
                        &hi,
                        &new.initiator_id,
                        &new.recipient_id,
                        &new.sealed_key,
                        &new.first.now,
                    ],
                )
                .await?;
            match inserted {
                Some(row) => get::<i64>(&row, 0)?,
                None => {
                    // Another request for the pair committed while this one ran (the two
                    // agents asked each other at once): judged as SQLite's one writer
                    // would judge the second request, which finds the first one pending.
                    let row = tx
                        .query_opt(&BETWEEN_LOCKED, &[&lo, &hi])
                        .await?
                        .ok_or_else(changed_meanwhile)?;
                    may_ask_again(&conversation_from_row(&row)?)?;
                    // Already rejected or ended again: still not reopened here, since the
                    // caller sealed the first message expecting no conversation (a key of
                    // its own), not with that conversation's key.
                    return Err(changed_meanwhile());
                }
            }
        }
    };
    let (message, conversation) = insert_message(&tx, id, &new.first).await?;
    tx.commit().await?;
    Ok((conversation, message))
}

fn changed_meanwhile() -> StoreError {
    StoreError::Conflict("The conversation with this agent changed meanwhile; try again".into())
}

pub(crate) async fn set_status(
    db: &PgPool,
    id: i64,
    from: &[ConversationStatus],
    to: ConversationStatus,
) -> Result<Conversation> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    if let Some(row) = db
        .query_opt(&SET_STATUS, &[&id, &from, &to.as_str()])
        .await?
    {
        return conversation_from_row(&row);
    }
    // Nothing changed: say why (the status read here may already be newer still).
    let current = db
        .query_opt(&BY_ID, &[&id])
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
    let current = conversation_from_row(&current)?;
    Err(StoreError::Refused(format!(
        "The conversation is {} now",
        current.status
    )))
}

pub(crate) async fn send(db: &PgPool, conversation_id: i64, m: NewMessage) -> Result<Message> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let row = tx
        .query_opt(&LOCK_FOR_SEND, &[&conversation_id])
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
    let status = parsed(&row, 0, str::parse::<ConversationStatus>)?;
    if status != ConversationStatus::Active {
        return Err(StoreError::Refused(format!(
            "The conversation is {status}, not active"
        )));
    }
    let (initiator, recipient): (i64, i64) = (get(&row, 1)?, get(&row, 2)?);
    if m.sender_id != initiator && m.sender_id != recipient {
        return Err(StoreError::Refused(
            "Not a member of this conversation".into(),
        ));
    }
    let (message, _) = insert_message(&tx, conversation_id, &m).await?;
    tx.commit().await?;
    Ok(message)
}

pub(crate) async fn messages(
    db: &PgPool,
    conversation_id: i64,
    limit: i64,
) -> Result<Vec<Message>> {
    let rows = db
        .query(&MESSAGES, &[&conversation_id, &sql_limit(limit)])
        .await?;
    // Read newest first (the limit keeps the newest), answered oldest first.
    rows.iter().rev().map(message_from_row).collect()
}

pub(crate) async fn mark_read(
    db: &PgPool,
    conversation_id: i64,
    agent_id: i64,
    up_to: i64,
) -> Result<()> {
    db.execute(&MARK_READ, &[&conversation_id, &agent_id, &up_to])
        .await?;
    Ok(())
}

pub(crate) async fn of_agent(
    db: &PgPool,
    agent_id: i64,
    filter: ConversationFilter,
    limit: i64,
) -> Result<Vec<ConversationEntry>> {
    let sql = match filter {
        ConversationFilter::PendingForMe => &PENDING_FOR,
        ConversationFilter::Active => &ACTIVE_OF,
        ConversationFilter::All => &ALL_OF,
    };
    let rows = db.query(sql, &[&agent_id, &sql_limit(limit)]).await?;
    rows.iter()
        .map(|r| {
            let latest_at = CONVERSATION_WIDTH + 1;
            let latest = match get::<Option<i64>>(r, latest_at)? {
                Some(_) => Some(message_at(r, latest_at)?),
                None => None,
            };
            Ok(ConversationEntry {
                conversation: conversation_at(r, 0)?,
                unread: get(r, CONVERSATION_WIDTH)?,
                latest,
            })
        })
        .collect()
}

pub(crate) async fn release(db: &PgPool, conversation_id: i64, message_id: i64) -> Result<bool> {
    let row = db
        .query_one(&RELEASE, &[&message_id, &conversation_id])
        .await?;
    Ok(get::<i64>(&row, 0)? == 1)
}

#[cfg(test)]
mod tests {
    //! What the conformance suite cannot show on PostgreSQL: each race below is staged
    //! with a transaction of the test's own held open at the worst moment, so the store's
    //! statement has to wait for it and then decide on what it committed; and the listing
    //! statements walk their indexes.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tidepool_store::Store;

    use super::*;
    use crate::PgStore;
    use crate::store::test_support::{
        NOW, agent, assert_walks_indexes, open, scalar, until_one_waits,
    };

    fn message(sender: i64, now: i64) -> NewMessage {
        NewMessage {
            uuid: tidepool_store::new_public_id(),
            sender_id: sender,
            sealed: vec![0, 1, 2, 255],
            needs_human_input: false,
            safety: Safety::allow(),
            now,
        }
    }

    fn request_from(from: i64, to: i64) -> NewConversation {
        NewConversation {
            uuid: tidepool_store::new_public_id(),
            initiator_id: from,
            recipient_id: to,
            sealed_key: vec![9; 8],
            first: message(from, NOW),
        }
    }

    async fn count(store: &PgStore, text: &'static str, id: i64) -> i64 {
        store
            .pool()
            .query_one(&Sql::new(text, &[Type::INT8]), &[&id])
            .await
            .unwrap()
            .get(0)
    }

    /// A request that finds no conversation, while the other agent's request for the pair
    /// is not committed yet, waits for it and then answers as the second of two requests:
    /// Conflict while that one is pending, and also when it was rejected meanwhile (the
    /// first message was sealed for a new conversation, not with that one's key); when
    /// the other request rolls back, this one makes the conversation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_racing_the_pairs_first_waits_and_is_the_second() {
        let (_db, store) = open().await;
        for (ending, expect_conflict) in [("", true), ("rejected", true), ("rollback", false)] {
            let a = agent(&store, &format!("Racer{ending}A")).await;
            let b = agent(&store, &format!("Racer{ending}B")).await;
            let (lo, hi) = pair(a, b);
            let mut conn = store.pool().get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.batch_execute(&format!(
                "INSERT INTO dm_conversations(uuid, agent_lo, agent_hi, initiator_id,
                     recipient_id, status, sealed_key, created_at, last_message_at)
                 VALUES ('other-{ending}', {lo}, {hi}, {b}, {a}, 'pending', '\\x01', {NOW}, {NOW})"
            ))
            .await
            .unwrap();
            let racing = {
                let store = store.clone();
                tokio::spawn(async move { store.request_conversation(request_from(a, b)).await })
            };
            until_one_waits(&store).await;
            match ending {
                "rejected" => {
                    tx.batch_execute(&format!(
                        "UPDATE dm_conversations SET status = 'rejected' WHERE uuid = 'other-{ending}'"
                    ))
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
                "rollback" => tx.rollback().await.unwrap(),
                _ => tx.commit().await.unwrap(),
            }
            let answer = racing.await.unwrap();
            let now = store.conversation_between(a, b).await.unwrap().unwrap();
            if expect_conflict {
                assert!(
                    matches!(answer, Err(StoreError::Conflict(_))),
                    "{ending}: {answer:?}"
                );
                assert_eq!(now.uuid, format!("other-{ending}"));
                assert_eq!(now.initiator_id, b, "{ending}: left as it was");
                let messages = "SELECT count(*) FROM dm_messages WHERE conversation_id = $1";
                assert_eq!(count(&store, messages, now.id).await, 0);
            } else {
                let (made, _) = answer.unwrap();
                assert_eq!((made.id, made.initiator_id), (now.id, a));
            }
        }
    }

    /// A message waits for a decision being committed on its conversation and is then
    /// refused: it never lands in a conversation that was just ended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_racing_the_end_of_its_conversation_is_refused() {
        let (_db, store) = open().await;
        let (a, b) = (agent(&store, "Talker").await, agent(&store, "Ender").await);
        let (c, _) = store
            .request_conversation(request_from(a, b))
            .await
            .unwrap();
        store
            .set_conversation_status(
                c.id,
                &[ConversationStatus::Pending],
                ConversationStatus::Active,
            )
            .await
            .unwrap();
        let mut conn = store.pool().get().await.unwrap();
        let tx = conn.transaction().await.unwrap();
        tx.batch_execute(&format!(
            "UPDATE dm_conversations SET status = 'ended' WHERE id = {}",
            c.id
        ))
        .await
        .unwrap();
        let racing = {
            let store = store.clone();
            tokio::spawn(async move { store.send_message(c.id, message(a, NOW + 1)).await })
        };
        until_one_waits(&store).await;
        tx.commit().await.unwrap();
        let answer = racing.await.unwrap();
        assert!(
            matches!(&answer, Err(StoreError::Refused(m)) if m.contains("ended")),
            "{answer:?}"
        );
        assert_eq!(store.messages(c.id, 10).await.unwrap().len(), 1);
    }

    /// A decision waits for another one being committed and then finds the conversation
    /// no longer in the status it decides from.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_decision_racing_another_finds_it_decided() {
        let (_db, store) = open().await;
        let (a, b) = (agent(&store, "Asker").await, agent(&store, "Decider").await);
        let (c, _) = store
            .request_conversation(request_from(a, b))
            .await
            .unwrap();
        let mut conn = store.pool().get().await.unwrap();
        let tx = conn.transaction().await.unwrap();
        tx.batch_execute(&format!(
            "UPDATE dm_conversations SET status = 'active' WHERE id = {}",
            c.id
        ))
        .await
        .unwrap();
        let racing = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .set_conversation_status(
                        c.id,
                        &[ConversationStatus::Pending],
                        ConversationStatus::Rejected,
                    )
                    .await
            })
        };
        until_one_waits(&store).await;
        tx.commit().await.unwrap();
        let answer = racing.await.unwrap();
        assert!(
            matches!(&answer, Err(StoreError::Refused(m)) if m.contains("active")),
            "{answer:?}"
        );
        let now = store.conversation_by_uuid(&c.uuid).await.unwrap().unwrap();
        assert_eq!(now.status, ConversationStatus::Active);
    }

    /// On 400 agents with 20,000 conversations (about fifty each) and 100,000 messages, an
    /// agent's listings and a conversation's newest messages read through the indexes
    /// (custom and generic plans): no sequential scan of either table, and no sort beyond
    /// a few dozen rows (a custom plan may sort one agent's conversations of one status,
    /// or the page itself).
    #[tokio::test]
    async fn dm_listings_walk_their_indexes() {
        let (_db, store) = open().await;
        let conn = store.pool().get().await.unwrap();
        let client = conn.client();
        client
            .batch_execute(&format!(
                "INSERT INTO agents(uuid, name, name_key, created_at, last_active)
                     SELECT 'a' || g, 'a' || g, 'a' || g, 0, 0 FROM generate_series(1, 400) g;
                 INSERT INTO dm_conversations(uuid, agent_lo, agent_hi, initiator_id,
                         recipient_id, status, sealed_key, created_at, last_message_at)
                     SELECT 'c' || i || '-' || k, lo.id, hi.id,
                            CASE WHEN k % 2 = 0 THEN lo.id ELSE hi.id END,
                            CASE WHEN k % 2 = 0 THEN hi.id ELSE lo.id END,
                            (ARRAY['pending', 'active', 'rejected', 'ended', 'blocked'])[k % 5 + 1],
                            '\\x00', {NOW}, {NOW} + i * 1000 + k
                     FROM generate_series(1, 400) i, generate_series(1, 50) k,
                          LATERAL (SELECT id FROM agents WHERE name = 'a' || i) lo,
                          LATERAL (SELECT id FROM agents WHERE name = 'a' || ((i + k - 1) % 400 + 1)) hi
                     WHERE i < (i + k - 1) % 400 + 1;
                 INSERT INTO dm_messages(uuid, conversation_id, sender_id, sealed,
                         safety_verdict, created_at)
                     SELECT 'm' || c.id || '-' || n, c.id,
                            CASE WHEN n % 2 = 0 THEN c.initiator_id ELSE c.recipient_id END,
                            '\\x00', 'allow', c.last_message_at
                     FROM dm_conversations c, generate_series(1, 5) n;
                 ANALYZE;"
            ))
            .await
            .unwrap();
        let me: i64 = scalar(client, "SELECT id FROM agents WHERE name = 'a200'").await;
        let conversation: i64 = scalar(client, "SELECT max(id) FROM dm_conversations").await;
        let conversations: i64 = scalar(client, "SELECT count(*) FROM dm_conversations").await;
        assert!(conversations > 15_000, "{conversations}");
        let statements = [
            ("pending for me", PENDING_FOR, me),
            ("active", ACTIVE_OF, me),
            ("all", ALL_OF, me),
            ("messages", MESSAGES, conversation),
        ];
        for (what, stmt, id) in statements {
            let indexes = &[
                "dm_conversations_initiator",
                "dm_conversations_recipient",
                "dm_messages_conversation",
            ];
            assert_walks_indexes(client, what, &stmt, &[id, 20], ("dm_", indexes), 40.0).await;
        }
    }
}
