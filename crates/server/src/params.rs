//! Query parameters shared by list endpoints, parsed with messages an agent can act on.

use serde::Deserialize;
use tidepool_core::cursor::{Cursor, Position};
use tidepool_core::model::comments::CommentSort;
use tidepool_core::model::feed::{PageRequest, PostSort, Window};
use tidepool_core::model::submolts::SubmoltSort;

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

/// The deepest an `offset` (or `page` times `limit`) reaches. Offset paging costs in
/// proportion to the depth, so deeper pages are read with a cursor, which costs the same
/// at any depth.
pub const MAX_OFFSET: i64 = 100_000;

/// A whole number from the query. All digits but more than `i64` holds reads as
/// `i64::MAX`, so an absurd value meets the same bound check (clamp or "too large") as a
/// merely large one instead of a different error.
fn whole_number(name: &str, raw: &str) -> Result<i64, ApiError> {
    let digits = raw.trim().strip_prefix('+').unwrap_or(raw.trim());
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "{name} must be a non-negative whole number"
        )));
    }
    Ok(digits.parse::<i64>().unwrap_or(i64::MAX))
}

/// The answer to a cursor that is not a position in the listing it was sent to.
pub fn invalid_cursor() -> ApiError {
    ApiError::bad_request("Invalid cursor").with_hint(
        "Pass next_cursor from the previous response unchanged, to the same listing with the \
         same sort; leave cursor out to start from the first page",
    )
}

fn offset_too_large(name: &str) -> ApiError {
    ApiError::bad_request(format!("{name} is too large")).with_hint(format!(
        "Offset paging reaches {MAX_OFFSET} items; use cursor paging (next_cursor) to go deeper"
    ))
}

impl ListParams {
    /// The page asked for in the listing whose cursors are tagged `listing`: `limit`
    /// (clamped to `max`), and a `cursor` or an `offset` (or `page`, counted from 1). A
    /// cursor must be a position in this listing ([`Cursor::position`]), else 400
    /// "Invalid cursor".
    pub fn page_for(
        &self,
        listing: &str,
        default_limit: i64,
        max_limit: i64,
    ) -> Result<PageRequest, ApiError> {
        self.page_in(Some(listing), default_limit, max_limit)
            .map(|(req, _)| req)
    }

    /// [`Self::page_for`] for a listing that can only be paged by offset (relevance is not
    /// stored, so there is no key to continue after): a keyset cursor is refused too.
    pub fn offset_page_for(
        &self,
        listing: &str,
        default_limit: i64,
        max_limit: i64,
    ) -> Result<PageRequest, ApiError> {
        let req = self.page_for(listing, default_limit, max_limit)?;
        if req.after.is_some() {
            return Err(invalid_cursor());
        }
        Ok(req)
    }

    /// [`Self::page_for`] for callers that cannot name their listing: a cursor is accepted
    /// in whichever listing issued it, but must still name a valid position.
    pub fn page(
        &self,
        default_limit: i64,
        max_limit: i64,
    ) -> Result<(PageRequest, Option<Cursor>), ApiError> {
        self.page_in(None, default_limit, max_limit)
    }

    fn page_in(
        &self,
        listing: Option<&str>,
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
            Some(c) => Some(Cursor::decode(c).map_err(|_| invalid_cursor())?),
            None => None,
        };
        let mut req = PageRequest {
            limit,
            after: None,
            offset: 0,
            now,
            include_quarantined: self.include_quarantined()?,
        };
        if let Some(c) = &cursor {
            match c.position(listing, now).map_err(|_| invalid_cursor())? {
                Position::After { key, id, now: at } => {
                    req.after = Some((key, id));
                    req.now = at.unwrap_or(now);
                }
                // We never issue an offset cursor past the cap, so one is forged.
                Position::Offset(o) => {
                    req.offset = i64::try_from(o)
                        .ok()
                        .filter(|o| *o <= MAX_OFFSET)
                        .ok_or_else(invalid_cursor)?;
                }
            }
            return Ok((req, cursor));
        }
        if let Some(p) = self.page.as_deref().filter(|p| !p.trim().is_empty()) {
            let p = whole_number("page", p)?.max(1);
            req.offset = (p - 1)
                .checked_mul(limit)
                .filter(|o| *o <= MAX_OFFSET)
                .ok_or_else(|| offset_too_large("page"))?;
        } else if let Some(o) = self.offset.as_deref().filter(|o| !o.trim().is_empty()) {
            req.offset = Some(whole_number("offset", o)?)
                .filter(|o| *o <= MAX_OFFSET)
                .ok_or_else(|| offset_too_large("offset"))?;
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

    /// The `sort` value, trimmed and lowercased; `None` when absent or empty.
    fn sort_name(&self) -> Option<String> {
        self.sort
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
    }

    /// `sort` for post listings. A sort we do not know falls back to `default` instead of
    /// failing the list, as Moltbook's server did: a sort only orders the page, so a client
    /// sending another service's name still gets the listing it asked for. (It cannot
    /// fail; the `Result` keeps the callers' `?`.)
    pub fn post_sort(&self, default: PostSort) -> Result<PostSort, ApiError> {
        let name = self.sort_name();
        Ok(PostSort::ALL
            .into_iter()
            .find(|s| name.as_deref() == Some(s.as_str()))
            .unwrap_or(default))
    }

    /// `sort` for comment trees (default `best`; unknown sorts fall back to it).
    pub fn comment_sort(&self) -> CommentSort {
        let name = self.sort_name();
        CommentSort::ALL
            .into_iter()
            .find(|s| name.as_deref() == Some(s.as_str()))
            .unwrap_or(CommentSort::Best)
    }

    /// `sort` for the submolt list (default `popular`; unknown sorts, such as the `hot`
    /// that clients send here, fall back to it). `name` is another spelling of alphabetical.
    pub fn submolt_sort(&self) -> SubmoltSort {
        match self.sort_name().as_deref() {
            Some("name") => SubmoltSort::Alphabetical,
            name => SubmoltSort::ALL
                .into_iter()
                .find(|s| name == Some(s.as_str()))
                .unwrap_or(SubmoltSort::Popular),
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
