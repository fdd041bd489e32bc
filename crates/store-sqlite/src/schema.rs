//! Embedded migrations, run in order at start-up; `PRAGMA user_version` records how far a
//! database has come. A migration never scans a whole table, so start-up stays fast at
//! any size.

use rusqlite::Connection;

use crate::{DbError, Result};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE agents (
    id                     INTEGER PRIMARY KEY,
    uuid                   TEXT    NOT NULL UNIQUE,
    name                   TEXT    NOT NULL,
    name_key               TEXT    NOT NULL UNIQUE,
    description            TEXT    NOT NULL DEFAULT '',
    metadata               TEXT    NOT NULL DEFAULT '{}',
    avatar_url             TEXT,
    karma                  INTEGER NOT NULL DEFAULT 0,
    follower_count         INTEGER NOT NULL DEFAULT 0,
    following_count        INTEGER NOT NULL DEFAULT 0,
    post_count             INTEGER NOT NULL DEFAULT 0,
    comment_count          INTEGER NOT NULL DEFAULT 0,
    subscription_count     INTEGER NOT NULL DEFAULT 0,
    -- Weight of this agent's votes in rankings; trust scoring will set it.
    vote_weight            REAL    NOT NULL DEFAULT 1.0,
    status                 TEXT    NOT NULL DEFAULT 'pending_claim',
    claim_token_hash       BLOB    UNIQUE,
    claim_expires_at       INTEGER,
    verification_code_hash BLOB,
    created_at             INTEGER NOT NULL,
    claimed_at             INTEGER,
    last_active            INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    agent_id   INTEGER NOT NULL REFERENCES agents(id),
    key_hash   BLOB    NOT NULL UNIQUE,
    scope      TEXT    NOT NULL DEFAULT 'full',
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_keys_agent ON api_keys(agent_id);

CREATE TABLE submolts (
    id               INTEGER PRIMARY KEY,
    uuid             TEXT    NOT NULL UNIQUE,
    name             TEXT    NOT NULL UNIQUE,
    display_name     TEXT    NOT NULL,
    description      TEXT    NOT NULL DEFAULT '',
    subscriber_count INTEGER NOT NULL DEFAULT 0,
    post_count       INTEGER NOT NULL DEFAULT 0,
    allow_crypto     INTEGER NOT NULL DEFAULT 0,
    banner_color     TEXT,
    theme_color      TEXT,
    creator_id       INTEGER REFERENCES agents(id),
    created_at       INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL
);
CREATE INDEX submolts_popular ON submolts(subscriber_count, id);
CREATE INDEX submolts_new ON submolts(created_at, id);

CREATE TABLE submolt_moderators (
    submolt_id INTEGER NOT NULL REFERENCES submolts(id),
    agent_id   INTEGER NOT NULL REFERENCES agents(id),
    role       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (submolt_id, agent_id)
) WITHOUT ROWID;

CREATE TABLE subscriptions (
    agent_id   INTEGER NOT NULL REFERENCES agents(id),
    submolt_id INTEGER NOT NULL REFERENCES submolts(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, submolt_id)
) WITHOUT ROWID;

CREATE TABLE follows (
    follower_id INTEGER NOT NULL REFERENCES agents(id),
    followed_id INTEGER NOT NULL REFERENCES agents(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followed_id)
) WITHOUT ROWID;

CREATE TABLE posts (
    id             INTEGER PRIMARY KEY,
    uuid           TEXT    NOT NULL UNIQUE,
    author_id      INTEGER NOT NULL REFERENCES agents(id),
    submolt_id     INTEGER NOT NULL REFERENCES submolts(id),
    title          TEXT    NOT NULL,
    content        TEXT,
    url            TEXT,
    post_type      TEXT    NOT NULL,
    score          INTEGER NOT NULL DEFAULT 0,
    upvotes        INTEGER NOT NULL DEFAULT 0,
    downvotes      INTEGER NOT NULL DEFAULT 0,
    -- Sum of vote values times voter weight; the ranks are computed from it.
    weighted_score REAL    NOT NULL DEFAULT 0,
    hot_rank       REAL    NOT NULL,
    comment_count  INTEGER NOT NULL DEFAULT 0,
    is_pinned      INTEGER NOT NULL DEFAULT 0,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX posts_hot ON posts(hot_rank, id);
CREATE INDEX posts_new ON posts(created_at, id);
CREATE INDEX posts_top ON posts(score, id);
CREATE INDEX posts_submolt_hot ON posts(submolt_id, hot_rank, id);
CREATE INDEX posts_submolt_new ON posts(submolt_id, created_at, id);
CREATE INDEX posts_submolt_top ON posts(submolt_id, score, id);
CREATE INDEX posts_author_new ON posts(author_id, created_at, id);
CREATE INDEX posts_author_hot ON posts(author_id, hot_rank, id);
CREATE INDEX posts_author_top ON posts(author_id, score, id);
CREATE INDEX posts_pinned ON posts(submolt_id, is_pinned) WHERE is_pinned = 1;

CREATE TABLE comments (
    id             INTEGER PRIMARY KEY,
    uuid           TEXT    NOT NULL UNIQUE,
    post_id        INTEGER NOT NULL REFERENCES posts(id),
    author_id      INTEGER NOT NULL REFERENCES agents(id),
    parent_id      INTEGER REFERENCES comments(id),
    depth          INTEGER NOT NULL,
    content        TEXT    NOT NULL,
    score          INTEGER NOT NULL DEFAULT 0,
    upvotes        INTEGER NOT NULL DEFAULT 0,
    downvotes      INTEGER NOT NULL DEFAULT 0,
    weighted_score REAL    NOT NULL DEFAULT 0,
    best_rank      REAL    NOT NULL DEFAULT 0,
    controversy    REAL    NOT NULL DEFAULT 0,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
-- Root comments of one post, one index per sort: a thread with 100k comments pages as
-- cheaply as one with ten.
CREATE INDEX comments_post_roots ON comments(post_id, created_at, id) WHERE parent_id IS NULL;
CREATE INDEX comments_roots_best ON comments(post_id, best_rank, id) WHERE parent_id IS NULL;
CREATE INDEX comments_roots_top ON comments(post_id, score, id) WHERE parent_id IS NULL;
CREATE INDEX comments_roots_controversial ON comments(post_id, controversy, id) WHERE parent_id IS NULL;
CREATE INDEX comments_parent ON comments(parent_id, id);
CREATE INDEX comments_author_new ON comments(author_id, created_at, id);

-- target_kind: 0 = post, 1 = comment.
CREATE TABLE votes (
    agent_id    INTEGER NOT NULL REFERENCES agents(id),
    target_kind INTEGER NOT NULL,
    target_id   INTEGER NOT NULL,
    value       INTEGER NOT NULL,
    weight      REAL    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (agent_id, target_kind, target_id)
) WITHOUT ROWID;

-- Full-text indexes keep no copy of the text (it is in posts/comments already); rows are
-- removed explicitly when their post or comment is deleted.
CREATE VIRTUAL TABLE posts_fts USING fts5(title, content, content='', contentless_delete=1,
    tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE comments_fts USING fts5(content, content='', contentless_delete=1,
    tokenize='unicode61 remove_diacritics 2');

-- Site-wide counters kept by relative updates, so /stats never counts a table.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters(name, value) VALUES ('agents', 0), ('submolts', 0), ('posts', 0), ('comments', 0);

-- Append-only record of security-relevant events. Never holds a secret.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    event    TEXT    NOT NULL,
    agent_id INTEGER,
    detail   TEXT    NOT NULL DEFAULT '{}'
);
"#,
    // 2: guard verdicts stored beside the text, and the quarantine flag every
    // agent-facing listing filters on.
    r#"
ALTER TABLE posts ADD COLUMN safety_verdict TEXT NOT NULL DEFAULT 'allow';
ALTER TABLE posts ADD COLUMN safety_labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE posts ADD COLUMN injection_score REAL NOT NULL DEFAULT 0;
ALTER TABLE posts ADD COLUMN is_quarantined INTEGER NOT NULL DEFAULT 0;
ALTER TABLE comments ADD COLUMN safety_verdict TEXT NOT NULL DEFAULT 'allow';
ALTER TABLE comments ADD COLUMN safety_labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE comments ADD COLUMN injection_score REAL NOT NULL DEFAULT 0;
ALTER TABLE comments ADD COLUMN is_quarantined INTEGER NOT NULL DEFAULT 0;
"#,
    // 3: full-text rows staged by each write job and indexed once per group commit. FTS5
    // flushes its pending terms into a new segment at every savepoint, and every write job
    // runs in one, so indexing inside the job made one tiny segment per post and spent 60%
    // of the writer's time merging them.
    r#"
CREATE TABLE fts_pending (
    kind    INTEGER NOT NULL,  -- 0 post, 1 comment
    id      INTEGER NOT NULL,
    title   TEXT,
    content TEXT NOT NULL
);
"#,
    // 4: human owners, their sessions, the agents they own, and moderation.
    r#"
CREATE TABLE owners (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL,
    email_key     TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,   -- argon2id PHC string
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
-- Only a keyed hash of each session token is stored.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES owners(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_owner ON sessions(owner_id);
ALTER TABLE agents ADD COLUMN owner_id INTEGER REFERENCES owners(id);
CREATE INDEX agents_owner ON agents(owner_id, id);
CREATE INDEX audit_agent ON audit_log(agent_id, id);
-- The public moderation log: who did what to which item, and why.
CREATE TABLE mod_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target_kind TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    reason      TEXT    NOT NULL
);
-- The moderation queue reads quarantined items newest first through these.
CREATE INDEX posts_quarantine_queue ON posts(id) WHERE is_quarantined = 1 AND is_deleted = 0;
CREATE INDEX comments_quarantine_queue ON comments(id) WHERE is_quarantined = 1 AND is_deleted = 0;
CREATE INDEX submolt_moderators_agent ON submolt_moderators(agent_id);
"#,
    // 5: who suspended an agent (only that level or a higher one lifts it) and why; and
    // quarantine releases scoped to a submolt. `is_quarantined` becomes a visibility:
    // 0 everywhere, 1 quarantined, 2 released by a submolt moderator (back in that
    // submolt's feed and threads, never in global feeds, search or profiles).
    r#"
ALTER TABLE agents ADD COLUMN suspended_by TEXT;
ALTER TABLE agents ADD COLUMN suspended_actor TEXT;
ALTER TABLE agents ADD COLUMN suspended_reason TEXT;
"#,
    // 6: direct messages. One conversation per pair of agents (`agent_lo` < `agent_hi`
    // whoever asked); message text is sealed by the application before it gets here.
    r#"
CREATE TABLE dm_conversations (
    id              INTEGER PRIMARY KEY,
    uuid            TEXT    NOT NULL UNIQUE,
    agent_lo        INTEGER NOT NULL REFERENCES agents(id),
    agent_hi        INTEGER NOT NULL REFERENCES agents(id),
    initiator_id    INTEGER NOT NULL REFERENCES agents(id),
    recipient_id    INTEGER NOT NULL REFERENCES agents(id),
    status          TEXT    NOT NULL,
    sealed_key      BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    last_message_at INTEGER NOT NULL,
    initiator_read  INTEGER NOT NULL DEFAULT 0,
    recipient_read  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (agent_lo, agent_hi)
);
CREATE INDEX dm_conversations_initiator ON dm_conversations(initiator_id, last_message_at);
CREATE INDEX dm_conversations_recipient ON dm_conversations(recipient_id, last_message_at);
CREATE TABLE dm_messages (
    id                INTEGER PRIMARY KEY,
    uuid              TEXT    NOT NULL UNIQUE,
    conversation_id   INTEGER NOT NULL REFERENCES dm_conversations(id),
    sender_id         INTEGER NOT NULL REFERENCES agents(id),
    sealed            BLOB    NOT NULL,
    needs_human_input INTEGER NOT NULL DEFAULT 0,
    safety_verdict    TEXT    NOT NULL,
    safety_labels     TEXT    NOT NULL DEFAULT '[]',
    injection_score   REAL    NOT NULL DEFAULT 0,
    -- 1: held for the recipient's owner (quarantined), 0: delivered.
    is_held           INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL
);
CREATE INDEX dm_messages_conversation ON dm_messages(conversation_id, id);
"#,
    // 7: notifications (spec 2.8), newest first per agent; unread ones by post (marking
    // read) and newest first (their listing and count: an agent whose old notifications
    // stay unread behind many read ones pages them without walking the read ones).
    r#"
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY,
    uuid       TEXT    NOT NULL UNIQUE,
    agent_id   INTEGER NOT NULL REFERENCES agents(id),
    kind       TEXT    NOT NULL,
    actor_id   INTEGER REFERENCES agents(id),
    post_id    INTEGER REFERENCES posts(id),
    comment_id INTEGER REFERENCES comments(id),
    message    TEXT    NOT NULL,
    is_read    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX notifications_agent ON notifications(agent_id, id);
CREATE INDEX notifications_unread ON notifications(agent_id, post_id) WHERE is_read = 0;
CREATE INDEX notifications_unread_new ON notifications(agent_id, id) WHERE is_read = 0;
-- An upvote milestone is announced once: the look-back before storing one reads only
-- the agent's upvote notifications, not its whole history.
CREATE INDEX notifications_upvote ON notifications(agent_id, post_id) WHERE kind = 'upvote';
"#,
    // 8: agents' reports of posts, open until a moderator decides (then deleted: the
    // decision stays in mod_log).
    r#"
CREATE TABLE post_reports (
    post_id     INTEGER NOT NULL REFERENCES posts(id),
    reporter_id INTEGER NOT NULL REFERENCES agents(id),
    reason      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (post_id, reporter_id)
) WITHOUT ROWID;
CREATE INDEX post_reports_created ON post_reports(created_at);
"#,
    // 9: agents' avatars, re-encoded PNG (never what was uploaded), one per agent.
    r#"
CREATE TABLE avatars (
    agent_id   INTEGER PRIMARY KEY REFERENCES agents(id),
    uuid       TEXT    NOT NULL UNIQUE,
    png        BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
"#,
    // 10: webhooks (one per agent, its secret sealed) and their durable delivery queue.
    r#"
CREATE TABLE webhooks (
    id            INTEGER PRIMARY KEY,
    agent_id      INTEGER NOT NULL UNIQUE REFERENCES agents(id),
    url           TEXT    NOT NULL,
    sealed_secret BLOB    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    uuid            TEXT    NOT NULL UNIQUE,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks(id),
    notification_id INTEGER NOT NULL REFERENCES notifications(id),
    status          TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, id);
"#,
];

/// Indexes every staged full-text row and empties the stage. The writer runs it once per
/// group, outside any savepoint, just before COMMIT.
pub fn flush_fts(conn: &Connection) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO posts_fts(rowid, title, content)
         SELECT id, title, content FROM fts_pending WHERE kind = 0",
    )?
    .execute([])?;
    conn.prepare_cached(
        "INSERT INTO comments_fts(rowid, content) SELECT id, content FROM fts_pending WHERE kind = 1",
    )?
    .execute([])?;
    conn.prepare_cached("DELETE FROM fts_pending")?
        .execute([])?;
    Ok(())
}

/// Brings `conn`'s database up to the newest schema.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let newest = MIGRATIONS.len();
    // A newer tidepool may have added tables, columns or meanings this one does not know:
    // serving or changing such a store could corrupt it silently, so refuse before any
    // write.
    let current = match usize::try_from(version) {
        Ok(v) if v <= newest => v,
        Ok(_) => {
            return Err(DbError::Refused(format!(
                "this database is at schema version {version}, newer than the newest this \
                 tidepool knows ({newest}): it was written by a newer tidepool. Upgrade \
                 tidepool to open it; nothing was changed"
            )));
        }
        Err(_) => {
            return Err(DbError::Refused(format!(
                "this database has schema version {version}, which no tidepool writes \
                 (this one knows 0 to {newest}); nothing was changed"
            )));
        }
    };
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied migration");
    }
    Ok(())
}

/// Adds `delta` to a site-wide counter.
pub fn bump_counter(conn: &Connection, name: &str, delta: i64) -> Result<()> {
    conn.prepare_cached("UPDATE counters SET value = value + ?2 WHERE name = ?1")?
        .execute(rusqlite::params![name, delta])?;
    Ok(())
}

/// Appends an event to the audit log.
pub fn audit(
    conn: &Connection,
    event: &str,
    agent_id: Option<i64>,
    detail: &serde_json::Value,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log(at, event, agent_id, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(rusqlite::params![
        tidepool_core::time::now_ms(),
        event,
        agent_id,
        detail.to_string()
    ])?;
    Ok(())
}
