//! Pagination shared by every listing, and the post feeds.
//!
//! Every listing is keyset-paginated on (sort key, id) so a page costs the same at any
//! depth and new rows arriving between pages cause neither duplicates nor gaps. `offset`
//! is still accepted for era-1 clients. Each query below has an EXPLAIN QUERY PLAN test
//! (tests/query_plans.rs) that proves it walks an index instead of sorting a table.

use rusqlite::{Connection, Row, ToSql};
pub use tidepool_core::model::feed::*;

use crate::Result;
use crate::posts::{POST_SELECT, Post, post_from_row};

/// Runs `{select} WHERE {conditions} [AND {keyset}] ORDER BY {order} LIMIT n OFFSET m`.
/// Placeholders ?1 and ?2 are the keyset position, ?3 the limit, ?4 the offset, and
/// `extra` binds from ?5 on.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fetch<T>(
    page: &PageRequest,
    conn: &Connection,
    select: &str,
    conditions: &[String],
    keyset: &str,
    order: &str,
    extra: &[&dyn ToSql],
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut clauses: Vec<&str> = conditions.iter().map(String::as_str).collect();
    if page.after.is_some() {
        clauses.push(keyset);
    }
    if clauses.is_empty() {
        clauses.push("1");
    }
    let sql = format!(
        "{select} WHERE {} ORDER BY {order} LIMIT ?3 OFFSET ?4",
        clauses.join(" AND ")
    );
    let (key, id) = match page.after {
        Some((k, i)) => (Some(k), Some(i)),
        None => (None, None),
    };
    // SQLite reads a negative LIMIT as "no limit" (and a negative OFFSET as none), so
    // the page size stays in range whatever built this request.
    let limit = page.limit.clamp(0, i64::MAX - 1) + 1;
    let offset = page.offset.max(0);
    let mut params: Vec<&dyn ToSql> = vec![&key, &id, &limit, &offset];
    params.extend_from_slice(extra);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params.as_slice(), map)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// ORDER BY and keyset clause for a post sort.
fn post_order(sort: PostSort, now_param: &str) -> (String, String) {
    let key = match sort {
        PostSort::Hot => "p.hot_rank".to_owned(),
        PostSort::New => "p.created_at".to_owned(),
        PostSort::Top => "p.score".to_owned(),
        PostSort::Rising => format!("tp_rising(p.weighted_score, p.created_at, {now_param})"),
    };
    let order = format!("{key} DESC, p.id DESC");
    let keyset = format!("({key}, p.id) < (?1, ?2)");
    (order, keyset)
}

fn post_key(sort: PostSort, now: i64) -> impl Fn(&Post) -> (f64, i64) {
    move |p| match sort {
        PostSort::Hot => (p.hot_rank, p.id),
        PostSort::New => (p.created_at as f64, p.id),
        PostSort::Top => (p.score as f64, p.id),
        PostSort::Rising => (
            tidepool_core::rank::rising(p.weighted_score, p.created_at, now),
            p.id,
        ),
    }
}

/// Posts for `/posts`, `/submolts/{name}/feed` and profiles.
pub fn list_posts(
    conn: &Connection,
    scope: FeedScope,
    sort: PostSort,
    window: Window,
    exclude_pinned: bool,
    page: &PageRequest,
) -> Result<Page<Post>> {
    let mut conditions = vec!["p.is_deleted = 0".to_owned()];
    if !page.include_quarantined {
        // A post a submolt moderator released is back in that submolt's feed only.
        conditions.push(if matches!(scope, FeedScope::Submolt(_)) {
            "p.is_quarantined != 1".to_owned()
        } else {
            "p.is_quarantined = 0".to_owned()
        });
    }
    let scope_id;
    let since;
    let mut extra: Vec<&dyn ToSql> = Vec::new();
    // Rising's rank depends on the listing's `now`; bound only when used, since every
    // placeholder must appear in the statement.
    let now_param = if sort == PostSort::Rising {
        extra.push(&page.now);
        "?5"
    } else {
        ""
    };
    match scope {
        FeedScope::All => {}
        FeedScope::Submolt(id) => {
            scope_id = id;
            conditions.push(format!("p.submolt_id = ?{}", 5 + extra.len()));
            extra.push(&scope_id);
        }
        FeedScope::Author(id) => {
            scope_id = id;
            conditions.push(format!("p.author_id = ?{}", 5 + extra.len()));
            extra.push(&scope_id);
        }
    }
    if exclude_pinned {
        conditions.push("p.is_pinned = 0".to_owned());
    }
    let window_ms = match sort {
        PostSort::Top => window.millis(),
        PostSort::Rising => Some(RISING_WINDOW_MS),
        PostSort::Hot | PostSort::New => None,
    };
    if let Some(ms) = window_ms {
        since = page.now.saturating_sub(ms);
        conditions.push(format!("p.created_at >= ?{}", 5 + extra.len()));
        extra.push(&since);
    }
    let (order, keyset) = post_order(sort, now_param);
    let items = crate::feed::fetch(
        page,
        conn,
        POST_SELECT,
        &conditions,
        &keyset,
        &order,
        &extra,
        post_from_row,
    )?;
    Ok(page.finish(items, sort.cursor_listing(), post_key(sort, page.now)))
}

/// `/feed`: posts from subscribed submolts and followed agents (only followed agents with
/// `following_only`). Each source is read through its own index, newest-ranked first, and
/// the pages are merged, so the cost depends on the page size and the number of sources,
/// never on the size of the store.
pub fn personal_feed(
    conn: &Connection,
    agent_id: i64,
    following_only: bool,
    sort: PostSort,
    page: &PageRequest,
) -> Result<Page<Post>> {
    let mut sources = Vec::new();
    if !following_only {
        let mut stmt = conn
            .prepare_cached("SELECT submolt_id FROM subscriptions WHERE agent_id = ?1 LIMIT ?2")?;
        for id in stmt.query_map(rusqlite::params![agent_id, FEED_MAX_SOURCES], |r| {
            r.get::<_, i64>(0)
        })? {
            sources.push(FeedScope::Submolt(id?));
        }
    }
    let mut stmt =
        conn.prepare_cached("SELECT followed_id FROM follows WHERE follower_id = ?1 LIMIT ?2")?;
    for id in stmt.query_map(rusqlite::params![agent_id, FEED_MAX_SOURCES], |r| {
        r.get::<_, i64>(0)
    })? {
        sources.push(FeedScope::Author(id?));
    }
    // Each source must supply enough rows to fill the page after skipping `offset`.
    let per_source = PageRequest {
        limit: page.limit.saturating_add(page.offset.max(0)),
        after: page.after,
        offset: 0,
        ..page.clone()
    };
    let mut merged: Vec<Post> = Vec::new();
    for source in sources {
        // A personal feed is not the submolt's own feed: a post a submolt moderator
        // released (visible in that submolt only) stays out of it.
        merged.extend(
            list_posts(conn, source, sort, Window::All, false, &per_source)?
                .items
                .into_iter()
                .filter(|p| page.include_quarantined || !p.safety.submolt_only),
        );
    }
    let key = post_key(sort, page.now);
    merged.sort_by(|a, b| {
        let (ka, ia) = key(a);
        let (kb, ib) = key(b);
        kb.total_cmp(&ka).then(ib.cmp(&ia))
    });
    merged.dedup_by_key(|p| p.id);
    let rest: Vec<Post> = merged
        .into_iter()
        .skip(tidepool_core::model::feed::count(page.offset))
        .take(tidepool_core::model::feed::count(page.limit).saturating_add(1))
        .collect();
    Ok(page.finish(rest, sort.cursor_listing(), key))
}
