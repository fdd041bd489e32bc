//! Pagination shared by every listing, and the post sorts, windows and scopes.

use crate::cursor::Cursor;

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

impl PageRequest {
    /// Cuts the look-ahead row and builds the continuation from the last item's key; the
    /// cursor is tagged with `listing` (the listing and sort), the only order its key means
    /// anything in.
    pub fn finish<T>(
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
pub fn count(n: i64) -> usize {
    usize::try_from(n.max(0)).unwrap_or(usize::MAX)
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
    /// How far back the window reaches (`None`: all time).
    pub fn millis(self) -> Option<i64> {
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

/// Most sources (subscriptions plus follows) one personal feed merges.
pub const FEED_MAX_SOURCES: i64 = 500;
