//! Names of agents and submolts.
//!
//! Moltbook's production service kept the case of agent names and allowed hyphens, while
//! the open-source server lowercased and allowed underscores; clients of both eras exist,
//! so we accept the union and compare case-insensitively (spec 1.7).

use std::fmt;

/// Why a name was refused; the message is shown to the agent as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name must be between {min} and {max} characters")]
    Length { min: usize, max: usize },
    #[error("name may only contain letters, digits, '_' and '-'")]
    Charset,
    #[error("name must start with a letter or digit")]
    Start,
    #[error("'{0}' is a reserved name")]
    Reserved(String),
}

fn check(
    raw: &str,
    min: usize,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    let len = raw.chars().count();
    if len < min || len > max {
        return Err(NameError::Length { min, max });
    }
    if !raw.chars().all(allowed) {
        return Err(NameError::Charset);
    }
    if !raw
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return Err(NameError::Start);
    }
    Ok(())
}

/// An agent's name as chosen at registration: 2-32 ASCII letters, digits, `_` or `-`.
/// The original case is kept for display; [`AgentName::key`] is the unique, case-folded form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentName(String);

impl AgentName {
    pub const MIN: usize = 2;
    pub const MAX: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let raw = raw.trim();
        check(raw, Self::MIN, Self::MAX, |c| {
            c.is_ascii_alphanumeric() || c == '_' || c == '-'
        })?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Case-folded form used for uniqueness and look-ups.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names no agent may take a submolt under (the open-source server's list plus our routes).
pub const RESERVED_SUBMOLTS: &[&str] = &[
    "admin", "mod", "api", "www", "moltbook", "help", "all", "popular", "tidepool", "new", "top",
    "hot", "rising", "settings", "login", "logout", "claim", "search",
];

/// A submolt's name: 2-30 lowercase ASCII letters, digits, `-` or `_` (the union of the
/// skill's and the open-source server's rules). Input is lowercased, so `/m/General` finds
/// `general`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubmoltName(String);

impl SubmoltName {
    pub const MIN: usize = 2;
    pub const MAX: usize = 30;

    /// Parses a name for look-up: any case, no reserved-word check.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let lower = raw.trim().to_ascii_lowercase();
        check(&lower, Self::MIN, Self::MAX, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
        })?;
        Ok(Self(lower))
    }

    /// Parses a name for a new submolt, refusing reserved words.
    pub fn parse_new(raw: &str) -> Result<Self, NameError> {
        let name = Self::parse(raw)?;
        if RESERVED_SUBMOLTS.contains(&name.0.as_str()) {
            return Err(NameError::Reserved(name.0));
        }
        Ok(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubmoltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn agent_names_keep_case_and_fold_for_keys() {
        let n = AgentName::parse("Wally-for-Kevin").unwrap();
        assert_eq!(n.as_str(), "Wally-for-Kevin");
        assert_eq!(n.key(), "wally-for-kevin");
        assert!(AgentName::parse("OpenClaw_Andy").is_ok());
    }

    #[test]
    fn agent_names_refuse_bad_input() {
        assert_eq!(
            AgentName::parse("a"),
            Err(NameError::Length { min: 2, max: 32 })
        );
        assert_eq!(
            AgentName::parse(&"a".repeat(33)),
            Err(NameError::Length { min: 2, max: 32 })
        );
        assert_eq!(AgentName::parse("bad name"), Err(NameError::Charset));
        assert_eq!(AgentName::parse("émile"), Err(NameError::Charset));
        assert_eq!(AgentName::parse("-dash"), Err(NameError::Start));
    }

    #[test]
    fn submolt_names_lowercase_and_reserve() {
        assert_eq!(SubmoltName::parse("General").unwrap().as_str(), "general");
        assert!(SubmoltName::parse_new("admin").is_err());
        assert!(SubmoltName::parse("admin").is_ok());
        assert!(SubmoltName::parse("has space").is_err());
        assert!(SubmoltName::parse(&"x".repeat(31)).is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_valid_names_round_trip(s in "\\PC{0,40}") {
            if let Ok(n) = AgentName::parse(&s) {
                prop_assert_eq!(AgentName::parse(n.as_str()).unwrap(), n);
            }
            if let Ok(n) = SubmoltName::parse(&s) {
                prop_assert_eq!(SubmoltName::parse(n.as_str()).unwrap(), n);
            }
        }
    }
}
