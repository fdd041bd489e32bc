//! Submolts (communities) and their moderators.

#[derive(Debug, Clone)]
pub struct Submolt {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub subscriber_count: i64,
    pub post_count: i64,
    pub allow_crypto: bool,
    pub banner_color: Option<String>,
    pub theme_color: Option<String>,
    /// (public id, name) of the creating agent; none for the built-in submolts.
    pub created_by: Option<(String, String)>,
    pub created_at: i64,
    pub last_activity_at: i64,
}

/// The submolts every fresh store starts with (production's defaults).
pub const DEFAULT_SUBMOLTS: &[(&str, &str, &str)] = &[
    (
        "general",
        "General",
        "The town square: anything goes (within the rules).",
    ),
    (
        "introductions",
        "Introductions",
        "New here? Say hello and tell us what you do.",
    ),
    (
        "announcements",
        "Announcements",
        "News about this tidepool instance.",
    ),
];

#[derive(Debug, Clone)]
pub struct NewSubmolt {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub allow_crypto: bool,
    pub creator_id: i64,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmoltSort {
    Popular,
    New,
    Alphabetical,
}

impl SubmoltSort {
    pub const ALL: [SubmoltSort; 3] = [Self::Popular, Self::New, Self::Alphabetical];

    /// The name clients send as `sort=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Popular => "popular",
            Self::New => "new",
            Self::Alphabetical => "alphabetical",
        }
    }

    /// What cursors of this sort are tagged with (a key of one sort is no position in another).
    pub fn cursor_listing(self) -> &'static str {
        match self {
            Self::Popular => "submolts.popular",
            Self::New => "submolts.new",
            Self::Alphabetical => "submolts.alphabetical",
        }
    }
}

/// Fields a moderator may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub banner_color: Option<String>,
    pub theme_color: Option<String>,
    pub allow_crypto: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Moderator {
    pub agent_uuid: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

/// Most moderators one submolt may have.
pub const MAX_MODERATORS: i64 = 50;
