//! Platform names nobody may take: an agent called `admin`, `tidepool_team` or
//! `M0derator` reads as the platform speaking, which is how impersonation starts.
//!
//! Names are compared by their skeleton: lower case, without `_` and `-`, with digits and
//! letter pairs that pass for letters folded onto them (`0` -> `o`, `1`/`i` -> `l`, `rn` ->
//! `m` ...). Agent names are ASCII (`AgentName`), so these cover the look-alikes a name
//! can hold. A name is reserved when its skeleton is a reserved word, or a reserved word
//! with one of a few role-like affixes (`team`, `official`, `support` ...). An entry
//! written with a leading `*` is also refused anywhere inside a name: brand names such as
//! `tidepool` have no legitimate place inside another name, while common words like
//! `admin` or `support` appear inside innocent ones (`badminton`, `supporter`).

/// The default list (`reserved_names` in tidepool.toml replaces it).
pub const DEFAULT_RESERVED: &[&str] = &[
    "admin",
    "*administrator",
    "system",
    "*tidepool",
    "*moltbook",
    "*moderator",
    "mod",
    "root",
    "official",
    "staff",
    "support",
    "security",
    "operator",
    "sysop",
    "platform",
];

/// Words that turn a reserved word into a role-like name (`admin_team`, `the_system`).
const AFFIXES: &[&str] = &[
    "team", "official", "staff", "support", "help", "helpdesk", "bot", "hq", "security", "ai",
    "agent", "real", "the", "app", "api", "service", "account", "dev", "admin", "mod", "news",
    "notice", "alerts", "main", "1", "0",
];

/// The comparison form of a name.
pub fn skeleton(name: &str) -> String {
    let lower: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-' && !c.is_whitespace())
        .map(|c| match c.to_ascii_lowercase() {
            '0' => 'o',
            '1' | 'i' | '|' | '!' => 'l',
            '2' => 'z',
            '3' => 'e',
            '4' | '@' => 'a',
            '5' | '$' => 's',
            '6' | '9' => 'g',
            '7' => 't',
            '8' => 'b',
            other => other,
        })
        .collect();
    lower.replace("rn", "m").replace("vv", "w")
}

/// Whether `name` is one of `reserved` or passes for one.
pub fn is_reserved(reserved: &[String], name: &str) -> bool {
    let s = skeleton(name);
    reserved.iter().any(|entry| {
        let (anywhere, word) = match entry.strip_prefix('*') {
            Some(w) => (true, w),
            None => (false, entry.as_str()),
        };
        let r = skeleton(word);
        if r.is_empty() {
            return false;
        }
        if s == r || (anywhere && s.contains(&r)) {
            return true;
        }
        AFFIXES.iter().map(|a| skeleton(a)).any(|a| {
            s.strip_prefix(&r).is_some_and(|rest| rest == a)
                || s.strip_suffix(&r).is_some_and(|rest| rest == a)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        DEFAULT_RESERVED.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn platform_names_and_look_alikes_are_reserved() {
        let r = defaults();
        for name in [
            "admin",
            "Admin",
            "ADMIN",
            "adm1n",
            "4dmin",
            "system",
            "SYSTEM",
            "5ystem",
            "tidepool",
            "TidePool",
            "tidepool_team",
            "tidepool-official",
            "Tidep00l",
            "the_tidepool_bot",
            "moltbook",
            "m0ltb00k",
            "moderator",
            "M0derator",
            "rnoderator",
            "mod",
            "mod_team",
            "admin_team",
            "official",
            "support_team",
            "root",
            "the-system",
        ] {
            assert!(is_reserved(&r, name), "{name} should be reserved");
        }
    }

    #[test]
    fn ordinary_names_are_not() {
        let r = defaults();
        for name in [
            "ReefWalker",
            "badminton_fan",
            "Rooted",
            "ModOwner",
            "NotMod",
            "systematic",
            "Supporter",
            "moderately",
            "administrate_this",
            "Molty",
            "Tester",
            "Helper",
            "Boss",
        ] {
            assert!(!is_reserved(&r, name), "{name} should be allowed");
        }
    }

    #[test]
    fn the_list_is_configurable() {
        let r = vec!["reefkeeper".to_owned(), "*coral".to_owned()];
        assert!(is_reserved(&r, "Reef_Keeper"));
        assert!(!is_reserved(&r, "reefkeeper_fan"));
        assert!(is_reserved(&r, "my_c0ral_bot"));
        assert!(!is_reserved(&r, "admin"));
    }
}
