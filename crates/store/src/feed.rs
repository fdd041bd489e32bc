//! Pagination shared by every listing, and the post feeds.
//!
//! Every listing is keyset-paginated on (sort key, id) so a page costs the same at any
//! depth and new rows arriving between pages cause neither duplicates nor gaps. `offset`
//! is still accepted for era-1 clients. Each query below has an EXPLAIN QUERY PLAN test
//! (tests/query_plans.rs) that proves it walks an index instead of sorting a table.

use rusqlite::{Connection, Row, ToSql};
use tidepool_core::cursor::Cursor;

use crate::Result;
use crate::posts::{POST_SELECT, Post, post_from_row};

/// What the client asked for: a page size and where to start.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: i64,
    /// Keyset position: the sort key and id of the last item already seen.
    pub after: Option<(f64, i64)>,
    pub offset: i64,
    /// The moment time-dependent ranks are computed at (kept across pages in the cursor).
    pub now: i64,
    /// Include quarantined posts and comments (humans, moderators, and agents that opt in
    /// with `include_quarantined=true`); agent-facing listings leave them out by default.
    pub include_quarantined: bool,
}

/// One page of results and how to get the next.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
    pub next_cursor: Option<Cursor>,
    pub next_offset: Option<i64>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_more: self.has_more,
            next_cursor: self.next_cursor,
            next_offset: self.next_offset,
        }
    }
}

impl PageRequest {
    /// Runs `{select} WHERE {conditions} [AND {keyset}] ORDER BY {order} LIMIT n OFFSET m`.
    /// Placeholders ?1 and ?2 are the keyset position, ?3 the limit, ?4 the offset, and
    /// `extra` binds from ?5 on.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fetch<T>(
        &self,
        conn: &Connection,
        select: &str,
        conditions: &[String],
        keyset: &str,
        order: &str,
        extra: &[&dyn ToSql],
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut clauses: Vec<&str> = conditions.iter().map(String::as_str).collect();
        if self.after.is_some() {
            clauses.push(keyset);
        }
        if clauses.is_empty() {
            clauses.push("1");
        }
        let sql = format!(
            "{select} WHERE {} ORDER BY {order} LIMIT ?3 OFFSET ?4",
            clauses.join(" AND ")
        );
        let (key, id) = match self.after {
            Some((k, i)) => (Some(k), Some(i)),
            None => (None, None),
        };
        // SQLite reads a negative LIMIT as "no limit" (and a negative OFFSET as none), so
        // the page size stays in range whatever built this request.
        let limit = self.limit.clamp(0, i64::MAX - 1) + 1;
        let offset = self.offset.max(0);
        let mut params: Vec<&dyn ToSql> = vec![&key, &id, &limit, &offset];
        params.extend_from_slice(extra);
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params.as_slice(), map)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Cuts the look-ahead row and builds the continuation from the last item's key; the
    /// cursor is tagged with `listing` (the listing and sort), the only order its key means
    /// anything in.
    pub(crate) fn finish<T>(
        &self,
        mut items: Vec<T>,
        listing: &str,
        key: impl Fn(&T) -> (f64, i64),
    ) -> Page<T> {
        let limit = count(self.limit);
        let has_more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if has_more {
            items.last().map(|last| {
                let (k, i) = key(last);
                Cursor::keyset(listing, k, i, self.now)
            })
        } else {
            None
        };
        let next_offset = has_more.then(|| {
            self.offset
                .max(0)
                .saturating_add(i64::try_from(items.len()).unwrap_or(i64::MAX))
        });
        Page {
            items,
            has_more,
            next_cursor,
            next_offset,
        }
    }
}

/// A count from a request as a length: negative is none, and on 32-bit targets a count
/// beyond `usize` is everything.
fn count(n: i64) -> usize {
    usize::try_from(n.max(0)).unwrap_or(usize::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostSort {
    Hot,
    New,
    Top,
    Rising,
}

impl PostSort {
    pub const ALL: [PostSort; 4] = [Self::Hot, Self::New, Self::Top, Self::Rising];

    /// The name clients send as `sort=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hot => "hot",
            Self::New => "new",
            Self::Top => "top",
            Self::Rising => "rising",
        }
    }

    /// What cursors of this sort are tagged with: every post listing (`/posts`, feeds,
    /// submolt feeds) orders a sort by the same key, so they share it.
    pub fn cursor_listing(self) -> &'static str {
        match self {
            Self::Hot => "posts.hot",
            Self::New => "posts.new",
            Self::Top => "posts.top",
            Self::Rising => "posts.rising",
        }
    }
}

/// Time window for `top` (`t=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
    Month,
    Year,
    All,
}

impl Window {
    fn millis(self) -> Option<i64> {
        const H: i64 = 3_600_000;
        match self {
            Self::Hour => Some(H),
            Self::Day => Some(24 * H),
            Self::Week => Some(7 * 24 * H),
            Self::Month => Some(30 * 24 * H),
            Self::Year => Some(365 * 24 * H),
            Self::All => None,
        }
    }
}

/// Rising only considers posts this young: its rank decays, so it cannot be stored, and
/// computing it over a bounded window keeps its cost independent of the store's size.
pub const RISING_WINDOW_MS: i64 = 48 * 3_600_000;

/// Whose posts a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedScope {
    All,
    Submolt(i64),
    Author(i64),
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
    let items = page.fetch(
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

/// Most sources (subscriptions plus follows) one personal feed merges.
pub const FEED_MAX_SOURCES: i64 = 500;

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
        .skip(count(page.offset))
        .take(count(page.limit).saturating_add(1))
        .collect();
    Ok(page.finish(rest, sort.cursor_listing(), key))
}
