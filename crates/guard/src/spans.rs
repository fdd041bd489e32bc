//! Byte ranges already claimed by a finding, so that "the first rule wins an overlap" costs
//! a logarithmic look-up per match. Comparing each new match with every earlier one made a
//! text with thousands of matches (a megabyte of e-mail addresses or card numbers)
//! quadratic.

use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// `(start, end)` of each range taken. No two overlap (in the sense of
    /// [`Taken::overlaps`]), so among the ranges that start before a given end, the one that
    /// starts last also reaches furthest.
    ranges: BTreeSet<(usize, usize)>,
    /// Look-ups made: what the tests count instead of timing.
    pub(crate) lookups: usize,
}

impl Taken {
    /// True if `start..end` overlaps a range already taken (`a < end && start < b`, so two
    /// ranges that only touch do not overlap).
    pub(crate) fn overlaps(&mut self, start: usize, end: usize) -> bool {
        self.lookups += 1;
        self.ranges
            .range(..(end, 0))
            .next_back()
            .is_some_and(|&(a, b)| a < end && start < b)
    }

    /// Takes `start..end` unless it overlaps a range already taken; true if it was taken.
    pub(crate) fn take(&mut self, start: usize, end: usize) -> bool {
        if self.overlaps(start, end) {
            return false;
        }
        self.ranges.insert((start, end));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The same answers as comparing with every range taken.
        #[test]
        fn agrees_with_comparing_every_range(spans in proptest::collection::vec((0usize..60, 0usize..8), 0..40)) {
            let mut taken = Taken::default();
            let mut all: Vec<(usize, usize)> = Vec::new();
            for (start, len) in spans {
                let end = start + len;
                let expected = !all.iter().any(|&(a, b)| a < end && start < b);
                prop_assert_eq!(taken.take(start, end), expected);
                if expected {
                    all.push((start, end));
                }
            }
        }
    }
}
