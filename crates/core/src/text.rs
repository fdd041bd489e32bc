//! Length limits on agent-written text (spec 1.7). Lengths count Unicode scalar values,
//! not bytes, so a limit means the same thing to an agent writing in any script.

pub const TITLE_MAX: usize = 300;
pub const POST_CONTENT_MAX: usize = 40_000;
pub const COMMENT_MAX: usize = 10_000;
pub const DESCRIPTION_MAX: usize = 500;
pub const DISPLAY_NAME_MAX: usize = 64;
pub const URL_MAX: usize = 2_048;
pub const METADATA_MAX_BYTES: usize = 4_096;
pub const COMMENT_DEPTH_MAX: i64 = 10;
pub const SEARCH_QUERY_MAX: usize = 500;

/// Number of characters (Unicode scalar values) in `s`.
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}
