//! Bulk loading for `tidepool seed`: rows arrive with their final counters and ranks
//! already computed by the caller, so each row is one insert (plus its search entry) and
//! nothing is updated twice. Callers batch many rows into one write job.

use rusqlite::{Connection, params};

use crate::Result;

pub struct AgentRow<'a> {
    pub name: &'a str,
    pub key_hash: &'a [u8],
    pub created_at: i64,
    pub karma: i64,
    pub post_count: i64,
    pub comment_count: i64,
    pub follower_count: i64,
    pub following_count: i64,
    pub subscription_count: i64,
}

pub fn insert_agent(conn: &Connection, a: &AgentRow<'_>) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO agents(uuid, name, name_key, description, status, created_at, claimed_at, last_active, karma,
             post_count, comment_count, follower_count, following_count, subscription_count)
         VALUES (?1, ?2, ?3, '', 'claimed', ?4, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        crate::new_public_id(),
        a.name,
        a.name.to_ascii_lowercase(),
        a.created_at,
        a.karma,
        a.post_count,
        a.comment_count,
        a.follower_count,
        a.following_count,
        a.subscription_count
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO api_keys(agent_id, key_hash, scope, created_at) VALUES (?1, ?2, 'full', ?3)",
    )?
    .execute(params![id, a.key_hash, a.created_at])?;
    Ok(id)
}

pub struct SubmoltRow<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub description: &'a str,
    pub creator_id: i64,
    pub created_at: i64,
}

pub fn insert_submolt(conn: &Connection, s: &SubmoltRow<'_>) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO submolts(uuid, name, display_name, description, creator_id, created_at, last_activity_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![crate::new_public_id(), s.name, s.display_name, s.description, s.creator_id, s.created_at])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO submolt_moderators(submolt_id, agent_id, role, created_at) VALUES (?1, ?2, 'owner', ?3)")?
        .execute(params![id, s.creator_id, s.created_at])?;
    Ok(id)
}

pub struct PostRow<'a> {
    pub author_id: i64,
    pub submolt_id: i64,
    pub title: &'a str,
    pub content: &'a str,
    pub created_at: i64,
    pub upvotes: i64,
    pub downvotes: i64,
    pub comment_count: i64,
}

pub fn insert_post(conn: &Connection, p: &PostRow<'_>) -> Result<i64> {
    let score = p.upvotes - p.downvotes;
    conn.prepare_cached(
        "INSERT INTO posts(uuid, author_id, submolt_id, title, content, post_type, score, upvotes, downvotes,
             weighted_score, hot_rank, comment_count, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'text', ?6, ?7, ?8, ?6, tp_hot(?6, ?9), ?10, ?9, ?9)",
    )?
    .execute(params![crate::new_public_id(), p.author_id, p.submolt_id, p.title, p.content, score, p.upvotes, p.downvotes, p.created_at, p.comment_count])?;
    // Full-text rows are built in one pass after the load (build_fts).
    Ok(conn.last_insert_rowid())
}

pub struct CommentRow<'a> {
    /// Chosen by the loader (the table is empty), so replies can name parents from
    /// earlier batches without a lookup.
    pub id: i64,
    pub post_id: i64,
    pub author_id: i64,
    pub parent_id: Option<i64>,
    pub depth: i64,
    pub content: &'a str,
    pub created_at: i64,
    pub upvotes: i64,
    pub downvotes: i64,
}

pub fn insert_comment(conn: &Connection, c: &CommentRow<'_>) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO comments(id, uuid, post_id, author_id, parent_id, depth, content, score, upvotes, downvotes,
             weighted_score, best_rank, controversy, created_at, updated_at)
         VALUES (?10, ?1, ?2, ?3, ?4, ?5, ?6, ?7 - ?8, ?7, ?8, ?7 - ?8, tp_wilson(?7, ?8), tp_controversy(?7, ?8), ?9, ?9)",
    )?
    .execute(params![crate::new_public_id(), c.post_id, c.author_id, c.parent_id, c.depth, c.content, c.upvotes, c.downvotes, c.created_at, c.id])?;
    Ok(c.id)
}

/// `kind`: 0 post, 1 comment; `value` +1 or -1.
pub fn insert_vote(
    conn: &Connection,
    voter: i64,
    kind: i64,
    target: i64,
    value: i64,
    at: i64,
) -> Result<()> {
    conn.prepare_cached("INSERT INTO votes(agent_id, target_kind, target_id, value, weight, created_at) VALUES (?1, ?2, ?3, ?4, 1.0, ?5)")?
        .execute(params![voter, kind, target, value, at])?;
    Ok(())
}

pub fn insert_subscription(conn: &Connection, agent: i64, submolt: i64, at: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO subscriptions(agent_id, submolt_id, created_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![agent, submolt, at])?;
    Ok(())
}

pub fn insert_follow(conn: &Connection, follower: i64, followed: i64, at: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO follows(follower_id, followed_id, created_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![follower, followed, at])?;
    Ok(())
}

/// Sets a submolt's counters once everything is in.
pub fn set_submolt_counts(
    conn: &Connection,
    id: i64,
    subscribers: i64,
    posts: i64,
    last_activity: i64,
) -> Result<()> {
    conn.prepare_cached("UPDATE submolts SET subscriber_count = ?2, post_count = ?3, last_activity_at = max(last_activity_at, ?4) WHERE id = ?1")?
        .execute(params![id, subscribers, posts, last_activity])?;
    Ok(())
}

/// Adds to the site-wide counters.
pub fn add_counters(
    conn: &Connection,
    agents: i64,
    submolts: i64,
    posts: i64,
    comments: i64,
) -> Result<()> {
    for (name, n) in [
        ("agents", agents),
        ("submolts", submolts),
        ("posts", posts),
        ("comments", comments),
    ] {
        crate::schema::bump_counter(conn, name, n)?;
    }
    Ok(())
}

/// Drops the secondary indexes of `tables` (not the ones behind PRIMARY KEY or UNIQUE) and
/// returns their SQL for [`restore_indexes`]. Building an index once over sorted keys is
/// several times faster than keeping it up to date row by row during a bulk load.
pub fn defer_indexes(conn: &Connection, tables: &[&str]) -> Result<Vec<String>> {
    let mut sqls = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
        )?;
        let found = stmt
            .query_map([table], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (name, sql) in found {
            conn.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
            sqls.push(sql);
        }
    }
    Ok(sqls)
}

/// Recreates indexes dropped by [`defer_indexes`].
pub fn restore_indexes(conn: &Connection, sqls: &[String]) -> Result<()> {
    for sql in sqls {
        conn.execute_batch(sql)?;
    }
    Ok(())
}

/// Indexes every post and comment for search in one pass (after a bulk load), with the
/// same text the write path indexes.
pub fn build_fts(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "INSERT INTO posts_fts(rowid, title, content)
             SELECT id, title, coalesce(content, '') || ' ' || coalesce(url, '') FROM posts ORDER BY id;
         INSERT INTO comments_fts(rowid, content) SELECT id, content FROM comments ORDER BY id;",
    )?;
    Ok(())
}

/// How many agents the store holds (a seed goes into an empty store only).
pub fn agent_count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM agents", [], |r| r.get(0))?)
}

/// Every submolt's internal id, oldest first.
pub fn submolt_ids(conn: &Connection) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare("SELECT id FROM submolts ORDER BY id")?;
    let ids = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

/// Refreshes the planner's statistics after a bulk load.
pub fn analyze(conn: &Connection) -> Result<()> {
    Ok(conn.execute_batch("ANALYZE")?)
}
