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

/// What an agent is to a submolt it moderates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Created the submolt; appoints and removes moderators and cannot be removed.
    Owner,
    Moderator,
}

// A role grants moderation: an unknown stored name is an error, never the nearest role.
closed_names!(Role, "role", {
    Owner => "owner",
    Moderator => "moderator",
});

#[derive(Debug, Clone)]
pub struct Moderator {
    pub agent_uuid: String,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

/// Most moderators one submolt may have.
pub const MAX_MODERATORS: i64 = 50;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_stored_names() {
        for r in [Role::Owner, Role::Moderator] {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(r.to_string(), r.as_str());
        }
    }

    #[test]
    fn an_unknown_role_is_an_error_naming_it() {
        let e = "admin".parse::<Role>().unwrap_err();
        assert_eq!(e.to_string(), "unknown role \"admin\"");
    }
}
