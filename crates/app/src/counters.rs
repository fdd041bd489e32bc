//! Counts of what the app decided, for the server's `/metrics`: guard verdicts and
//! findings, and refusals because the shared rate-limit count was out of reach. Plain
//! atomics, so counting costs a write path nothing measurable and the app names no
//! metrics library.

use std::sync::atomic::{AtomicU64, Ordering};

use tidepool_guard::{FindingKind, Verdict};

/// Every verdict, in the order [`Counters::verdicts`] reports them.
pub const VERDICTS: [Verdict; 4] = [
    Verdict::Allow,
    Verdict::Label,
    Verdict::Quarantine,
    Verdict::Block,
];

/// Every finding kind, in the order [`Counters::findings`] reports them.
pub const FINDING_KINDS: [FindingKind; 5] = [
    FindingKind::Secret,
    FindingKind::Pii,
    FindingKind::Injection,
    FindingKind::Hidden,
    FindingKind::Encoded,
];

/// The name of a finding kind, as the API writes it in `findings[].kind`.
pub fn finding_kind_name(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::Secret => "secret",
        FindingKind::Pii => "pii",
        FindingKind::Injection => "injection",
        FindingKind::Hidden => "hidden",
        FindingKind::Encoded => "encoded",
    }
}

/// What the app has decided since start-up.
#[derive(Default)]
pub struct Counters {
    verdicts: [AtomicU64; VERDICTS.len()],
    findings: [AtomicU64; FINDING_KINDS.len()],
    degraded_refusals: AtomicU64,
}

impl Counters {
    /// One guard decision on one submitted item (a post, a comment, a profile...).
    pub fn verdict(&self, v: Verdict) {
        let i = VERDICTS.iter().position(|x| *x == v).unwrap_or(0);
        self.verdicts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// One thing the guard found.
    pub fn finding(&self, kind: FindingKind) {
        let i = FINDING_KINDS.iter().position(|x| *x == kind).unwrap_or(0);
        self.findings[i].fetch_add(1, Ordering::Relaxed);
    }

    /// An operation refused because the shared rate-limit count could not be checked.
    pub fn degraded_refusal(&self) {
        self.degraded_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// Decisions per verdict, in [`VERDICTS`] order.
    pub fn verdicts(&self) -> [(Verdict, u64); VERDICTS.len()] {
        std::array::from_fn(|i| (VERDICTS[i], self.verdicts[i].load(Ordering::Relaxed)))
    }

    /// Findings per kind, in [`FINDING_KINDS`] order.
    pub fn findings(&self) -> [(FindingKind, u64); FINDING_KINDS.len()] {
        std::array::from_fn(|i| (FINDING_KINDS[i], self.findings[i].load(Ordering::Relaxed)))
    }

    /// Refusals because the shared count was out of reach.
    pub fn degraded_refusals(&self) -> u64 {
        self.degraded_refusals.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_on_their_own_verdict_and_kind() {
        let c = Counters::default();
        c.verdict(Verdict::Block);
        c.verdict(Verdict::Block);
        c.verdict(Verdict::Label);
        c.finding(FindingKind::Encoded);
        c.degraded_refusal();
        let verdicts = c.verdicts();
        assert_eq!(
            verdicts,
            [
                (Verdict::Allow, 0),
                (Verdict::Label, 1),
                (Verdict::Quarantine, 0),
                (Verdict::Block, 2)
            ]
        );
        let findings = c.findings();
        assert_eq!(findings[4], (FindingKind::Encoded, 1));
        assert_eq!(findings.iter().map(|f| f.1).sum::<u64>(), 1);
        assert_eq!(c.degraded_refusals(), 1);
        for kind in FINDING_KINDS {
            // The names the API writes (serde's snake_case) are the label values.
            assert_eq!(serde_json::to_value(kind).unwrap(), finding_kind_name(kind));
        }
    }
}
