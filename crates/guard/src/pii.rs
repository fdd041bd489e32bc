//! Personal data: e-mail addresses, phone numbers, payment cards, IBANs and national ids.
//!
//! Every number format with a check digit is verified (Luhn, mod 97, mod 11, Verhoeff, ...),
//! which is what keeps version numbers, dates, order ids and timestamps out. Phone numbers
//! have no checksum, so they need an international prefix or a national layout with
//! separators, and never match inside longer digit runs, dates or dotted versions.

use std::sync::OnceLock;

use regex::Regex;

use crate::spans::Taken;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiMatch {
    pub rule: &'static str,
    pub start: usize,
    pub end: usize,
}

struct Patterns {
    email: Regex,
    phone_intl: Regex,
    phone_nanp: Regex,
    phone_national: Regex,
    phone_area: Regex,
    card: Regex,
    iban: Regex,
    ssn: Regex,
    ssn_context: Regex,
    uk_nino: Regex,
    es_dni: Regex,
    it_cf: Regex,
    br_cpf: Regex,
    in_aadhaar: Regex,
    in_pan: Regex,
    cn_id: Regex,
    fr_nir: Regex,
    nl_bsn: Regex,
    de_taxid: Regex,
    ca_sin: Regex,
}

/// Patterns are ASCII, so their word boundaries are too: Unicode `\b` would push the
/// regex engine off its fast paths.
fn re(p: &str) -> Regex {
    Regex::new(&p.replace(r"\b", r"(?-u:\b)")).unwrap_or_else(|e| panic!("pii pattern {p}: {e}"))
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        email: re(r"(?i)\b[a-z0-9][a-z0-9._%+-]{0,63}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b"),
        // +CC then 6-14 more digits in groups (spaces, dots, dashes, parentheses).
        phone_intl: re(r"(?:^|[^\w+])(\+[1-9][0-9]{0,2}[\s.-]?(?:\(?[0-9]{1,4}\)?[\s.-]?){1,5}[0-9]{2,4})\b"),
        // North American: (415) 555-2671, 415-555-2671, 415.555.2671.
        phone_nanp: re(r"(?:^|[^\w.-])(\(?[0-9]{3}\)?[\s.-]?[0-9]{3}[\s.-][0-9]{4}(?:\s?(?:x|ext\.?)\s?[0-9]{1,5})?)\b"),
        // National numbers with a trunk 0: 020 7946 0958, 06 12 34 56 78, 030 12345678, 0412 345 678.
        phone_national: re(r"(?:^|[^\w.+-])((?:\(0[1-9][0-9]{0,4}\)|0[1-9][0-9]{0,4})(?:[\s-][0-9]{2,8}){1,4})\b"),
        // Parenthesised area codes without a trunk 0: (11) 91234-5678.
        phone_area: re(r"(?:^|[^\w])(\([1-9][0-9]{1,3}\)\s?[0-9]{4,5}[\s-]?[0-9]{4})\b"),
        card: re(r"\b(?:[0-9][ -]?){12,18}[0-9]\b"),
        iban: re(r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b"),
        ssn: re(r"\b([0-9]{3})-([0-9]{2})-([0-9]{4})\b"),
        ssn_context: re(r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\b[^0-9]{0,20}([0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{4})\b"),
        uk_nino: re(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b"),
        es_dni: re(r"\b(?:[0-9]{8}|[XYZ][0-9]{7})-?[A-HJ-NP-TV-Z]\b"),
        it_cf: re(r"\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b"),
        br_cpf: re(r"\b[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}\b"),
        in_aadhaar: re(r"\b[2-9][0-9]{3}[ -]?[0-9]{4}[ -]?[0-9]{4}\b"),
        in_pan: re(r"\b[A-Z]{3}[ABCFGHLJPT][A-Z][0-9]{4}[A-Z]\b"),
        cn_id: re(r"\b[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]\b"),
        fr_nir: re(r"\b[12][ ]?[0-9]{2}[ ]?(?:0[1-9]|1[0-2]|[2-9][0-9])[ ]?(?:[0-9]{2}|2[AB])[ ]?[0-9]{3}[ ]?[0-9]{3}[ ]?[0-9]{2}\b"),
        nl_bsn: re(r"(?i)\b(?:bsn|burgerservicenummer)\b[^0-9]{0,20}([0-9]{9})\b"),
        de_taxid: re(r"(?i)\b(?:steuer-?id|steueridentifikationsnummer|tax id|idnr)\b[^0-9]{0,20}([0-9]{11})\b"),
        ca_sin: re(r"(?i)\b(?:sin|social insurance(?: number)?)\b[^0-9]{0,20}([0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{3})\b"),
    })
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

pub fn luhn(ds: &[u32]) -> bool {
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    !ds.is_empty() && sum.is_multiple_of(10)
}

/// Issuer prefixes of the card networks, so a Luhn-valid id number is not a card.
fn card_network(ds: &[u32]) -> bool {
    let n = ds.len();
    let prefix = |k: usize| ds.iter().take(k).fold(0u32, |a, &d| a * 10 + d);
    match ds.first() {
        Some(4) => matches!(n, 13 | 16 | 19),
        Some(5) => (51..=55).contains(&prefix(2)) && n == 16,
        Some(2) => (2221..=2720).contains(&prefix(4)) && n == 16,
        Some(3) => {
            (matches!(prefix(2), 34 | 37) && n == 15)
                || (prefix(2) == 35 && n == 16)
                || (matches!(prefix(2), 36 | 38 | 39) && n == 14)
                || ((300..=305).contains(&prefix(3)) && n == 14)
        }
        Some(6) => {
            (prefix(4) == 6011
                || prefix(2) == 65
                || (644..=649).contains(&prefix(3))
                || prefix(2) == 62)
                && (16..=19).contains(&n)
        }
        _ => false,
    }
}

const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VG", 24),
    ("XK", 20),
];

pub fn iban_valid(raw: &str) -> bool {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(cc, _)| s.starts_with(cc)) else {
        return false;
    };
    if s.len() != len {
        return false;
    }
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    let mut rem: u64 = 0;
    for c in rearranged.chars() {
        let v = match c {
            '0'..='9' => c as u64 - '0' as u64,
            'A'..='Z' => c as u64 - 'A' as u64 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ssn_valid(area: &str, group: &str, serial: &str) -> bool {
    let a: u32 = area.parse().unwrap_or(0);
    a != 0 && a != 666 && a < 900 && group != "00" && serial != "0000"
}

fn dni_valid(s: &str) -> bool {
    let s = s.replace('-', "");
    let (num, letter) = s.split_at(s.len() - 1);
    let num = num
        .replacen('X', "0", 1)
        .replacen('Y', "1", 1)
        .replacen('Z', "2", 1);
    let Ok(n) = num.parse::<u32>() else {
        return false;
    };
    "TRWAGMYFPDXBNJZSQVHLCKE"
        .chars()
        .nth((n % 23) as usize)
        .map(String::from)
        .as_deref()
        == Some(letter)
}

fn cf_valid(s: &str) -> bool {
    const ODD: [u32; 36] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3,
        6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
    ];
    let val = |c: char| -> usize {
        if c.is_ascii_digit() {
            c as usize - '0' as usize
        } else {
            c as usize - 'A' as usize + 10
        }
    };
    let chars: Vec<char> = s.chars().collect();
    let mut sum = 0u32;
    for (i, &c) in chars[..15].iter().enumerate() {
        let v = val(c);
        sum += if i % 2 == 0 {
            ODD[v]
        } else if c.is_ascii_digit() {
            v as u32
        } else {
            (v - 10) as u32
        };
    }
    chars[15] as u32 == 'A' as u32 + sum % 26
}

fn cpf_valid(ds: &[u32]) -> bool {
    if ds.len() != 11 || ds.iter().all(|&d| d == ds[0]) {
        return false;
    }
    let check = |n: usize| -> u32 {
        let s: u32 = ds[..n]
            .iter()
            .enumerate()
            .map(|(i, &d)| d * (n as u32 + 1 - i as u32))
            .sum();
        let r = (s * 10) % 11;
        if r == 10 { 0 } else { r }
    };
    check(9) == ds[9] && check(10) == ds[10]
}

fn verhoeff(ds: &[u32]) -> bool {
    const D: [[usize; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[usize; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let mut c = 0;
    for (i, &d) in ds.iter().rev().enumerate() {
        c = D[c][P[i % 8][d as usize]];
    }
    c == 0
}

fn cn_id_valid(s: &str) -> bool {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let chars: Vec<char> = s.chars().collect();
    let sum: u32 = chars[..17]
        .iter()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    let expected = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    chars[17].to_ascii_uppercase() == expected
}

fn nir_valid(raw: &str) -> bool {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if s.len() != 15 {
        return false;
    }
    let body = s[..13].replace("2A", "19").replace("2B", "18");
    let (Ok(n), Ok(key)) = (body.parse::<u64>(), s[13..].parse::<u64>()) else {
        return false;
    };
    97 - n % 97 == key
}

fn eleven_proof(ds: &[u32]) -> bool {
    if ds.len() != 9 {
        return false;
    }
    let s: i64 = ds[..8]
        .iter()
        .enumerate()
        .map(|(i, &d)| d as i64 * (9 - i as i64))
        .sum::<i64>()
        - ds[8] as i64;
    s % 11 == 0 && s != 0
}

fn de_taxid_valid(ds: &[u32]) -> bool {
    if ds.len() != 11 || ds[0] == 0 {
        return false;
    }
    let mut product = 10;
    for &d in &ds[..10] {
        let mut sum = (d + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = if 11 - product == 10 { 0 } else { 11 - product };
    check == ds[10]
}

/// Looks like a date, a time, a version or part of a longer number: not a phone.
fn phone_plausible(s: &str, text: &str, start: usize, end: usize) -> bool {
    let ds = digits(s);
    if !(7..=15).contains(&ds.len()) {
        return false;
    }
    // Not inside a longer token (version numbers, ids, decimals).
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    if before.is_some_and(|c| c.is_ascii_digit() || c == '.' || c == '/')
        || after.is_some_and(|c| {
            c.is_ascii_alphanumeric()
                || c == '.'
                    && text[end..]
                        .chars()
                        .nth(1)
                        .is_some_and(|d| d.is_ascii_digit())
                || c == '/'
        })
    {
        return false;
    }
    // Not one group of a longer run of digit groups (account numbers, IBANs, card numbers).
    let prev_group = text[..start]
        .trim_end_matches([' ', '-'])
        .chars()
        .next_back();
    let next_group = text[end..].trim_start_matches([' ', '-']).chars().next();
    if (prev_group.is_some_and(|c| c.is_ascii_digit()) && text[..start].ends_with([' ', '-']))
        || (next_group.is_some_and(|c| c.is_ascii_digit()) && text[end..].starts_with([' ', '-']))
    {
        return false;
    }
    // Dates such as 2024-01-15 and times such as 12:30 are not phone numbers.
    let looks_like_date =
        s.len() == 10 && s.as_bytes().get(4).is_some_and(|&b| b == b'-' || b == b'.');
    !looks_like_date && !s.contains(':')
}

/// The longest run of digit groups joined by single separators, in digits and groups.
struct DigitRuns {
    most_digits: usize,
    most_groups: usize,
    /// Most groups in a run whose first digit is 0 (national numbers with a trunk prefix).
    most_trunk_groups: usize,
}

fn digit_runs(text: &str) -> DigitRuns {
    let (mut digits, mut groups, mut most_digits, mut most_groups, mut most_trunk_groups) =
        (0, 0, 0, 0, 0);
    let mut in_group = false;
    let mut trunk = false;
    // Separators in a row: ") " in "(415) 555-2671" is two.
    let mut seps = 0;
    for b in text.bytes() {
        if b.is_ascii_digit() {
            if !in_group {
                if groups == 0 {
                    trunk = b == b'0';
                }
                groups += 1;
            }
            digits += 1;
            in_group = true;
            seps = 0;
        } else if matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'/')
            && seps < 2
            && (digits > 0 || b == b'(')
        {
            in_group = false;
            seps += 1;
        } else {
            (digits, groups, in_group, seps, trunk) = (0, 0, false, 0, false);
        }
        most_digits = most_digits.max(digits);
        most_groups = most_groups.max(groups);
        if trunk {
            most_trunk_groups = most_trunk_groups.max(groups);
        }
    }
    DigitRuns {
        most_digits,
        most_groups,
        most_trunk_groups,
    }
}

/// Runs of capital letters, for the formats that start with them.
struct Capitals {
    longest: usize,
    /// Two capitals followed by a digit (IBAN, National Insurance number).
    two_then_digit: bool,
}

fn capitals(text: &str) -> Capitals {
    let b = text.as_bytes();
    let (mut run, mut longest) = (0, 0);
    for &c in b {
        run = if c.is_ascii_uppercase() { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let two_then_digit = b.windows(4).any(|w| {
        w[0].is_ascii_uppercase()
            && w[1].is_ascii_uppercase()
            && (w[2].is_ascii_digit() || (w[2] == b' ' && w[3].is_ascii_digit()))
    });
    Capitals {
        longest,
        two_then_digit,
    }
}

/// A national-id check: cheap gate, pattern, capture group holding the id, validator, rule.
type IdCheck<'a> = (
    bool,
    &'a Regex,
    usize,
    &'a dyn Fn(&str) -> bool,
    &'static str,
);

/// Matches so far; the first to claim a byte range keeps it.
#[derive(Default)]
struct Found {
    out: Vec<PiiMatch>,
    taken: Taken,
}

impl Found {
    fn push(&mut self, rule: &'static str, start: usize, end: usize) {
        if self.taken.take(start, end) {
            self.out.push(PiiMatch { rule, start, end });
        }
    }
}

/// Every piece of personal data in `text`.
pub fn find(text: &str) -> Vec<PiiMatch> {
    find_counted(text).out
}

fn find_counted(text: &str) -> Found {
    let p = patterns();
    let mut out = Found::default();
    let has_at = text.contains('@');
    let digit_count = text.bytes().filter(u8::is_ascii_digit).count();
    let runs = digit_runs(text);
    let caps = capitals(text);
    let lower = text.to_ascii_lowercase();
    let mentions = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has_at {
        for m in p.email.find_iter(text) {
            // A handle before an @ that is part of a URL path or a package scope is not an address.
            // (Nor is the `user:password@host` of a URL.)
            if text[..m.start()].ends_with(['/', ':']) {
                continue;
            }
            out.push("email", m.start(), m.end());
        }
    }
    if digit_count >= 6 {
        // Card numbers have 13 or more digits in one run of digit groups.
        if runs.most_digits >= 13 {
            for m in p.card.find_iter(text) {
                let ds = digits(m.as_str());
                if (13..=19).contains(&ds.len())
                    && luhn(&ds)
                    && card_network(&ds)
                    && !ds.iter().all(|&d| d == ds[0])
                {
                    out.push("payment_card", m.start(), m.end());
                }
            }
        }
        if caps.two_then_digit {
            for m in p.iban.find_iter(text) {
                if iban_valid(m.as_str()) {
                    out.push("iban", m.start(), m.end());
                }
            }
        }
        // National ids: (cheap gate, pattern, capture group holding the id, check, rule).
        let ssn_digits = |s: &str| {
            let d: String = s.chars().filter(char::is_ascii_digit).collect();
            d.len() == 9 && ssn_valid(&d[..3], &d[3..5], &d[5..])
        };
        let ids: [IdCheck<'_>; 12] = [
            (runs.most_digits >= 9, &p.ssn, 0, &ssn_digits, "us_ssn"),
            (
                mentions(&["ssn", "social security"]),
                &p.ssn_context,
                1,
                &ssn_digits,
                "us_ssn",
            ),
            (caps.two_then_digit, &p.uk_nino, 0, &|_| true, "uk_nino"),
            (runs.most_digits >= 7, &p.es_dni, 0, &dni_valid, "es_dni"),
            (
                caps.longest >= 6,
                &p.it_cf,
                0,
                &cf_valid,
                "it_codice_fiscale",
            ),
            (
                runs.most_digits >= 11,
                &p.br_cpf,
                0,
                &|s| cpf_valid(&digits(s)),
                "br_cpf",
            ),
            (
                runs.most_digits >= 12,
                &p.in_aadhaar,
                0,
                &|s| {
                    let ds = digits(s);
                    ds.len() == 12 && verhoeff(&ds) && s.contains([' ', '-'])
                },
                "in_aadhaar",
            ),
            (
                runs.most_digits >= 17,
                &p.cn_id,
                0,
                &cn_id_valid,
                "cn_resident_id",
            ),
            (runs.most_digits >= 13, &p.fr_nir, 0, &nir_valid, "fr_nir"),
            (
                mentions(&["bsn", "burgerservicenummer"]),
                &p.nl_bsn,
                1,
                &|s| eleven_proof(&digits(s)),
                "nl_bsn",
            ),
            (
                mentions(&["steuer", "tax id", "idnr"]),
                &p.de_taxid,
                1,
                &|s| de_taxid_valid(&digits(s)),
                "de_tax_id",
            ),
            (
                mentions(&["sin", "social insurance"]),
                &p.ca_sin,
                1,
                &|s| {
                    let ds = digits(s);
                    ds.len() == 9 && luhn(&ds)
                },
                "ca_sin",
            ),
        ];
        for (gate, re, group, valid, rule) in ids {
            if !gate {
                continue;
            }
            for c in re.captures_iter(text) {
                if let Some(m) = c.get(group)
                    && valid(m.as_str())
                {
                    out.push(rule, m.start(), m.end());
                }
            }
        }
        // Phone numbers have a + or at least three digit groups ("415 555 2671").
        let paren_digit = text
            .as_bytes()
            .windows(2)
            .any(|w| w[0] == b'(' && w[1].is_ascii_digit());
        let phones = if runs.most_groups >= 3
            || runs.most_trunk_groups >= 2
            || paren_digit
            || text.contains('+')
        {
            4
        } else {
            0
        };
        for re in [
            &p.phone_intl,
            &p.phone_nanp,
            &p.phone_national,
            &p.phone_area,
        ]
        .into_iter()
        .take(phones)
        {
            for c in re.captures_iter(text) {
                if let Some(m) = c.get(1)
                    && phone_plausible(m.as_str(), text, m.start(), m.end())
                {
                    out.push("phone_number", m.start(), m.end());
                }
            }
        }
    }
    if caps.longest >= 5 {
        for m in p.in_pan.find_iter(text) {
            out.push("in_pan", m.start(), m.end());
        }
    }
    out.out.sort_by_key(|m| m.start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<&'static str> {
        find(text).into_iter().map(|m| m.rule).collect()
    }

    #[test]
    fn personal_data_is_found() {
        let cases = [
            ("write to jane.doe@gmail.com today", "email"),
            ("contact: ops+alerts@example.co.uk", "email"),
            ("call +1 415 555 2671", "phone_number"),
            ("call me at (415) 555-2671", "phone_number"),
            ("(555)123-4567", "phone_number"),
            ("cell 555-123-4567 x204", "phone_number"),
            ("+1-555-012-3456", "phone_number"),
            ("mobile 07700 900123", "phone_number"),
            ("(11) 91234-5678", "phone_number"),
            ("tél +33 (0)1 23 45 67 89", "phone_number"),
            ("03-1234-5678", "phone_number"),
            ("ssn 123 45 6789", "us_ssn"),
            ("mobile +44 7911 123456", "phone_number"),
            ("tel. +49 30 12345678", "phone_number"),
            ("appelle au 06 12 34 56 78", "phone_number"),
            ("+91 98765 43210", "phone_number"),
            ("+55 11 91234-5678", "phone_number"),
            ("電話 +81 90-1234-5678", "phone_number"),
            ("+86 138 0013 8000", "phone_number"),
            ("card 4111 1111 1111 1111 exp 12/29", "payment_card"),
            ("amex 3782 822463 10005", "payment_card"),
            ("5555555555554444", "payment_card"),
            ("IBAN DE89 3704 0044 0532 0130 00", "iban"),
            ("GB82WEST12345698765432", "iban"),
            ("SSN 123-45-6789", "us_ssn"),
            ("my social security number is 123456789", "us_ssn"),
            ("NINO JG 10 37 59 A", "uk_nino"),
            ("DNI 12345678Z", "es_dni"),
            ("codice fiscale RSSMRA85T10A562S", "it_codice_fiscale"),
            ("CPF 529.982.247-25", "br_cpf"),
            ("Aadhaar 2345 6789 0124", "in_aadhaar"),
            ("PAN ABCPE1234F", "in_pan"),
            ("身份证 11010519491231002X", "cn_resident_id"),
            ("BSN: 111222333", "nl_bsn"),
            ("Steuer-ID 86095742719", "de_tax_id"),
            ("SIN 046 454 286", "ca_sin"),
            ("numéro de sécurité sociale 1 85 05 78 006 048 30", "fr_nir"),
        ];
        for (text, rule) in cases {
            assert!(
                rules(text).contains(&rule),
                "{rule} not found in {text}: {:?}",
                rules(text)
            );
        }
    }

    #[test]
    fn numbers_that_are_not_personal_data() {
        for text in [
            "version 1.2.3 and 10.15.7",
            "released 2024-01-15 at 12:30",
            "order #123456789012 shipped",
            "timestamp 1717171717171",
            "pi is 3.14159265358979",
            "card 4111 1111 1111 1112",
            "IBAN DE89 3704 0044 0532 0130 01",
            "ssn 000-12-3456",
            "build 20240115.3",
            "port 8080, pid 123456",
            "ISBN 978-3-16-148410-0",
            "the score was 1234 to 5678",
            "npm install @scope/package@1.2.3",
            "see https://github.com/org/repo/@main",
            "coordinates 37.7749, -122.4194",
            "$1,234,567.89 in revenue",
            "uuid 550e8400-e29b-41d4-a716-446655440000",
            "ip 192.168.1.254 and 10.0.0.1",
            "call 555-0100",
        ] {
            assert!(
                rules(text).is_empty(),
                "false positive in {text}: {:?}",
                rules(text)
            );
        }
    }

    #[test]
    fn each_match_costs_one_overlap_lookup() {
        // Comparing each match with every earlier one made a megabyte of addresses or card
        // numbers quadratic (1.6 s for 1 MiB of e-mail addresses).
        let emails: String = (0..10_000)
            .map(|i| format!("user{i}@mail.example.com "))
            .collect();
        let found = find_counted(&emails);
        assert_eq!(found.out.len(), 10_000);
        assert_eq!(found.taken.lookups, 10_000);
        let cards = "4111 1111 1111 1111, ".repeat(5_000);
        let found = find_counted(&cards);
        assert_eq!(found.out.len(), 5_000);
        assert!(found.out.iter().all(|m| m.rule == "payment_card"));
        assert!(found.taken.lookups <= 10_000, "{}", found.taken.lookups);
    }
}
