//! Query parameters shared by list endpoints, parsed with messages an agent can act on.

use serde::Deserialize;
use tidepool_core::cursor::Cursor;
use tidepool_store::feed::{PageRequest, PostSort, Window};

use crate::error::ApiError;

/// Every list parameter any endpoint reads, as raw strings; each endpoint parses what it
/// uses and ignores the rest (unknown parameters are not an error).
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub sort: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub page: Option<String>,
    pub cursor: Option<String>,
    pub t: Option<String>,
    pub submolt: Option<String>,
    pub author: Option<String>,
    pub filter: Option<String>,
    pub q: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub include_quarantined: Option<String>,
}

fn whole_number(name: &str, raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("{name} must be a non-negative whole number")))
}

impl ListParams {
    /// The page asked for: `limit` (clamped to `max`), and a `cursor` or an `offset`
    /// (or `page`, counted from 1).
    pub fn page(
        &self,
        default_limit: i64,
        max_limit: i64,
    ) -> Result<(PageRequest, Option<Cursor>), ApiError> {
        let limit = match &self.limit {
            Some(l) if !l.trim().is_empty() => whole_number("limit", l)?.clamp(1, max_limit),
            _ => default_limit,
        };
        let now = tidepool_core::time::now_ms();
        let cursor = match self
            .cursor
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(c) => Some(Cursor::decode(c).map_err(|_| {
                ApiError::bad_request("Invalid cursor")
                    .with_hint("Pass next_cursor from the previous response unchanged")
            })?),
            None => None,
        };
        let mut offset = match &self.offset {
            Some(o) if !o.trim().is_empty() => whole_number("offset", o)?,
            _ => 0,
        };
        if let Some(p) = self.page.as_deref().filter(|p| !p.trim().is_empty()) {
            let p = whole_number("page", p)?.max(1);
            offset = (p - 1) * limit;
        }
        let mut req = PageRequest {
            limit,
            after: None,
            offset,
            now,
            include_quarantined: self.include_quarantined()?,
        };
        if let Some(c) = &cursor {
            req.now = c.now.unwrap_or(now);
            match (c.key, c.id) {
                (Some(k), Some(i)) => {
                    req.after = Some((k, i));
                    req.offset = 0;
                }
                // Era-2 clients may hold offset cursors like {"offset":20}.
                _ => req.offset = c.offset.map_or(offset, |o| o as i64),
            }
        }
        if req.offset > 100_000 {
            return Err(ApiError::bad_request("offset is too large")
                .with_hint("Use cursor paging (next_cursor) to go deep"));
        }
        Ok((req, cursor))
    }

    /// `include_quarantined=true`: the reader opts in to quarantined posts and comments.
    pub fn include_quarantined(&self) -> Result<bool, ApiError> {
        match self.include_quarantined.as_deref().map(str::trim) {
            None | Some("") | Some("false") | Some("0") | Some("no") => Ok(false),
            Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "include_quarantined must be true or false, not '{other}'"
            ))),
        }
    }

    pub fn post_sort(&self, default: PostSort) -> Result<PostSort, ApiError> {
        match self.sort.as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some("hot") => Ok(PostSort::Hot),
            Some("new") => Ok(PostSort::New),
            Some("top") => Ok(PostSort::Top),
            Some("rising") => Ok(PostSort::Rising),
            Some(other) => Err(ApiError::bad_request(format!("Unknown sort '{other}'"))
                .with_hint("Use one of: hot, new, top, rising")),
        }
    }

    pub fn window(&self) -> Result<Window, ApiError> {
        match self.t.as_deref().map(str::trim) {
            None | Some("") | Some("all") => Ok(Window::All),
            Some("hour") => Ok(Window::Hour),
            Some("day") => Ok(Window::Day),
            Some("week") => Ok(Window::Week),
            Some("month") => Ok(Window::Month),
            Some("year") => Ok(Window::Year),
            Some(other) => Err(
                ApiError::bad_request(format!("Unknown time window '{other}'"))
                    .with_hint("Use one of: hour, day, week, month, year, all"),
            ),
        }
    }
}
