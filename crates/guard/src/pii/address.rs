//! Postal addresses (United States, United Kingdom, Germany, France).
//!
//! A street address has no checksum and every piece of it is also ordinary prose ("3 Main
//! Street" can be a chapter title, "Spring 2024" ends in a German street suffix), so no
//! single pattern decides. Each country's pattern finds the core, a house number beside a
//! street name with a street type from that country's lexicon, and then collects the
//! signals that make it somebody's address: a postcode in the country's format, a city (and
//! for the US a state code), a flat or suite number, and a cue before it ("lives at",
//! "address", "Anschrift", "adresse"). The core alone is never enough: "10 Downing Street"
//! or "221B Baker Street" in prose about a famous place is not flagged, while the same
//! address with its postcode is (a full postal address is flagged whoever lives there).

use std::sync::OnceLock;

use regex::Regex;

use super::re;

/// Points each signal is worth; a core scoring [`THRESHOLD`] or more is an address.
const POSTCODE: u32 = 3;
const CUE: u32 = 3;
const CITY_STATE: u32 = 2;
const UNIT: u32 = 3;
const CITY: u32 = 1;
const CAPITALISED: u32 = 1;
const NAME_LINE: u32 = 2;
const THRESHOLD: u32 = 3;

struct Patterns {
    english: Regex,
    german: Regex,
    french: Regex,
    uk_postcode: Regex,
}

/// US and UK street types. Written for this module: the common suffixes and their postal
/// abbreviations; rarer ones ("Alley", "Causeway") are left out because they add more
/// prose look-alikes than addresses.
const EN_TYPES: &str = "Street|St|Avenue|Ave|Av|Boulevard|Blvd|Road|Rd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Close|Crescent|Cres|Gardens|Grove|Mews|Row|Walk|Hill|Park|Rise|Green";

/// Fixed-word street types, used after a name ("Berliner Straße", "Am Alten Markt").
const DE_WORDS: &str =
    "Straße|Strasse|Str\\.|Weg|Platz|Allee|Gasse|Ring|Damm|Ufer|Chaussee|Markt|Steig|Pfad|Kai";

/// Compound suffixes ("Hauptstraße", "Lindenweg"). "ring" is left out of the compounds
/// because "Spring", "String" and "Ring" would all end in it.
const DE_SUFFIXES: &str =
    "straße|strasse|str\\.|weg|platz|allee|gasse|damm|ufer|chaussee|markt|steig|pfad";

/// French street types (lower or capitalised), with common abbreviations.
const FR_TYPES: &str = "rue|avenue|av\\.|boulevard|bd|place|chemin|impasse|allée|allee|quai|route|cours|square|passage|voie|sentier|rond-point";

/// US state and territory codes: a two-letter code after a city is what makes
/// "Springfield, IL 62704" an address line.
const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "PR", "GU", "VI",
];

/// Words that introduce an address, lower-case, in the languages covered.
const CUES: &[&str] = &[
    "address",
    "lives at",
    "live at",
    "living at",
    "ship to",
    "ship it to",
    "send to",
    "post to",
    "mail to",
    "send it to",
    "mail it to",
    "deliver to",
    "delivery to",
    "my house",
    "home is",
    "located at",
    "stays at",
    "staying at",
    "find me at",
    "visit me at",
    "anschrift",
    "adresse",
    "wohnt in",
    "wohne in",
    "wohnhaft",
    "habite",
    "domicile",
    "domicilié",
    "chez",
    "dirección",
    "indirizzo",
];

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        // House number, one to four name words (capitalised, ordinals such as 42nd, compass
        // points), the street type, then optional: a direction (NW), a unit, a city, and a
        // US state with ZIP code or a UK postcode. Name words are ASCII letters or lower-case
        // in chat ("12 oak street"); whether it was capitalised is a signal of its own.
        english: re(&format!(
            concat!(
                r"(?P<flat>\b(?i:flat|apartment|apt|unit|suite)\.?[ \t]*[0-9A-Za-z]{{1,5}},?[ \t]+)?",
                r"\b(?P<num>[0-9]{{1,5}}[A-Za-z]?)(?:-[0-9]{{1,4}})?,?[ \t]+",
                r"(?P<name>(?:(?:[A-Za-z][A-Za-z'’-]*|[0-9]{{1,3}}(?:st|nd|rd|th))\.?[ \t]+){{1,4}})",
                r"(?P<type>(?i:{types}))\b\.?",
                r"(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?",
                r"(?P<unit>,?[ \t]*(?:(?i:apt|apartment|suite|ste|unit|flat)\.?|#)[ \t]*[A-Za-z0-9-]{{1,6}}\b)?",
                // A city then a state and ZIP code is tried first, so "Springfield IL 62704"
                // does not read "IL" as part of the city; otherwise a town (UK) alone.
                r"(?:(?:,[ \t]*|[ \t]*\r?\n[ \t]*)(?:",
                r"(?P<city>[A-Z][A-Za-z'’.-]+\b(?:[ \t]+[A-Z][A-Za-z'’.-]+\b){{0,2}}),?[ \t]+(?P<state>[A-Z]{{2}})[ \t]+(?P<zip>[0-9]{{5}}(?:-[0-9]{{4}})?)\b",
                r"|(?P<town>[A-Z][A-Za-z'’.-]+\b(?:[ \t]+[A-Z][A-Za-z'’.-]+\b){{0,2}})))?",
            ),
            types = EN_TYPES
        )),
        // Street name with its type, house number (5, 5a, 12-14), then optional PLZ and city.
        german: re(&format!(
            concat!(
                r"(?P<name>(?:[A-ZÄÖÜ][\p{{L}}-]*(?:{suffixes})|(?:Am|An der|Auf dem|Auf der|Im|In der|Zum|Zur|Hinter der|Unter den)[ \t]+[A-ZÄÖÜ][\p{{L}}-]+|(?:(?:Am|An der|Auf dem|Im|In der|Zum|Zur)[ \t]+)?[A-ZÄÖÜ][\p{{L}}-]*[ \t]+(?:{words})))",
                r"[ \t]+(?P<num>[0-9]{{1,4}}(?:[ \t]?[a-zA-Z])?(?:-[0-9]{{1,4}})?)\b",
                r"(?:(?:,[ \t]*|[ \t]*\r?\n[ \t]*|[ \t]+)(?:D-)?(?P<zip>[0-9]{{5}})[ \t]+(?P<city>[A-ZÄÖÜ][\p{{L}}-]+))?",
            ),
            suffixes = DE_SUFFIXES,
            words = DE_WORDS
        )),
        // House number (12, 12 bis), street type, a name that starts with a particle or a
        // capital, then optional code postal and city.
        french: re(&format!(
            concat!(
                r"\b(?P<num>[0-9]{{1,4}})(?:[ \t]?(?:bis|ter|quater|[A-D])\b)?,?[ \t]+",
                r"(?P<type>(?i:{types}))[ \t]+",
                r"(?P<name>(?:(?:de la|de l'|de l’|du|des|de|d'|d’|l'|l’|la|le|les)[ \t]*)?[A-ZÉÈÊÀÂÎÔÛÇ][\p{{L}}'’-]*(?:[ \t]+(?:(?:de la|du|des|de|d'|d’|et|sur|la|le|les)[ \t]+)?[A-ZÉÈÊÀÂÎÔÛÇ][\p{{L}}'’-]*){{0,3}})",
                r"(?:(?:,[ \t]*|[ \t]*\r?\n[ \t]*|[ \t]+)(?P<zip>[0-9]{{5}})[ \t]+(?P<city>[A-ZÉÈÊÀÂÎÔÛÇ][\p{{L}}'’-]+))?",
            ),
            types = FR_TYPES
        )),
        // Outward code (SW1A, M1, B33, EC1V) and inward code (1AA).
        uk_postcode: re(r"^(?:,[ \t]*|[ \t]*\r?\n[ \t]*|[ \t]+)([A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][ABD-HJLNP-UW-Z]{2})\b"),
    })
}

/// Whether an address cue ends within a short window before `start`.
fn cue_before(text: &str, start: usize) -> bool {
    let mut from = start.saturating_sub(48);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let window = text[from..start].to_lowercase();
    CUES.iter().any(|c| window.contains(c))
}

/// Function words that never make up a street's name.
const PROSE_WORDS: &[&str] = &[
    "the", "a", "an", "on", "in", "of", "to", "for", "at", "by", "my", "your", "our", "their",
    "his", "her", "its", "and", "or", "is", "was", "are", "were", "be", "this", "that", "down",
    "up", "out", "all", "more", "times", "years", "days", "hours", "minutes", "ways", "steps",
    "miles", "km", "people", "agents", "new", "same", "other", "open", "one", "two", "with",
];

fn plausible_lowercase_name(name: &str) -> bool {
    let words: Vec<&str> = name.split_whitespace().collect();
    words.len() <= 2
        && words
            .iter()
            .all(|w| !PROSE_WORDS.contains(&w.trim_end_matches('.').to_ascii_lowercase().as_str()))
}

/// Whether the street starts a line under a line holding only a personal name ("Amara
/// Okafor"), the way an address block in a letter or on a parcel is laid out.
fn name_line_before(text: &str, start: usize) -> bool {
    let before = text[..start].trim_end_matches([' ', '\t']);
    let Some(rest) = before.strip_suffix('\n') else {
        return false;
    };
    let rest = rest.strip_suffix('\r').unwrap_or(rest);
    let line = rest.rsplit('\n').next().unwrap_or("").trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    (2..=3).contains(&words.len())
        && line.len() <= 48
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_uppercase)
                && w.chars()
                    .skip(1)
                    .all(|c| c.is_lowercase() || c == '-' || c == '\'')
        })
}

/// Addresses in `text`, as byte ranges.
pub(super) fn find(text: &str, mut push: impl FnMut(usize, usize)) {
    // Every format needs a house number and letters: skip number-free or tiny texts.
    if text.len() < 8 || !text.bytes().any(|b| b.is_ascii_digit()) {
        return;
    }
    let p = patterns();
    for c in p.english.captures_iter(text) {
        let (Some(whole), Some(name)) = (c.get(0), c.name("name")) else {
            continue;
        };
        let capitalised = name
            .as_str()
            .starts_with(|ch: char| ch.is_ascii_uppercase() || ch.is_ascii_digit());
        // A lower-case "name" is usually prose ("3 times on the way", "5 years down the
        // road"): only a short name of no function words can be a street typed in chat.
        if !capitalised && !plausible_lowercase_name(name.as_str()) {
            continue;
        }
        let mut end = whole.end();
        let mut score = if capitalised { CAPITALISED } else { 0 };
        if c.name("unit").is_some() || c.name("flat").is_some() {
            score += UNIT;
        }
        if c.name("city").is_some() {
            score += CITY;
            if c.name("state")
                .is_some_and(|s| US_STATES.contains(&s.as_str()))
            {
                score += CITY_STATE + POSTCODE;
            }
        } else if c.name("town").is_some() {
            score += CITY;
        }
        if let Some(pc) = p.uk_postcode.captures(&text[end..])
            && let Some(m) = pc.get(1)
        {
            score += POSTCODE;
            end += m.end();
        }
        if score < THRESHOLD && cue_before(text, whole.start()) {
            score += CUE;
        }
        if score < THRESHOLD && name_line_before(text, whole.start()) {
            score += NAME_LINE;
        }
        if score >= THRESHOLD {
            push(whole.start(), end);
        }
    }
    for c in p.german.captures_iter(text) {
        let Some(whole) = c.get(0) else { continue };
        let mut score = CAPITALISED;
        if c.name("zip").is_some() {
            score += POSTCODE + CITY;
        }
        if score < THRESHOLD && cue_before(text, whole.start()) {
            score += CUE;
        }
        if score < THRESHOLD && name_line_before(text, whole.start()) {
            score += NAME_LINE;
        }
        if score >= THRESHOLD {
            push(whole.start(), whole.end());
        }
    }
    for c in p.french.captures_iter(text) {
        let Some(whole) = c.get(0) else { continue };
        let mut score = CAPITALISED;
        if c.name("zip").is_some() {
            score += POSTCODE + CITY;
        }
        if score < THRESHOLD && cue_before(text, whole.start()) {
            score += CUE;
        }
        if score < THRESHOLD && name_line_before(text, whole.start()) {
            score += NAME_LINE;
        }
        if score >= THRESHOLD {
            push(whole.start(), whole.end());
        }
    }
}
