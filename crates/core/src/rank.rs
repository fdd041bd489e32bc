//! Ranking math for feeds and comment trees.
//!
//! `hot` never decays on its own (the time term grows for new posts instead), so it is
//! stored on the row and only recomputed when a vote changes the score. `rising` does
//! decay, so it is computed at read time over a recent window only.

/// Reddit's epoch offset (seconds), kept so our hot values line up with the formula the
/// original service and the open-source server both used.
const HOT_EPOCH: f64 = 1_134_028_003.0;

/// Reddit's hot rank: `sign(s) * log10(max(|s|, 1)) + (created - 1134028003) / 45000`.
pub fn hot(score: f64, created_at_ms: i64) -> f64 {
    let order = score.abs().max(1.0).log10();
    let sign = if score > 0.0 {
        1.0
    } else if score < 0.0 {
        -1.0
    } else {
        0.0
    };
    let seconds = created_at_ms as f64 / 1000.0 - HOT_EPOCH;
    // Rounded to 7 decimals like Reddit so equal inputs give bit-equal stored values.
    ((sign * order + seconds / 45_000.0) * 1e7).round() / 1e7
}

/// Rising: `(score + 1) / (hours + 2)^1.5`, the open-source server's formula.
pub fn rising(score: f64, created_at_ms: i64, now_ms: i64) -> f64 {
    let hours = ((now_ms - created_at_ms).max(0) as f64) / 3_600_000.0;
    (score + 1.0) / (hours + 2.0).powf(1.5)
}

/// z for an 80% confidence interval, as in Reddit's `best` comment sort.
pub const WILSON_Z: f64 = 1.281_551_565_545;

/// Lower bound of the Wilson score interval for `ups` out of `ups + downs`.
pub fn wilson_lower_bound(ups: i64, downs: i64) -> f64 {
    let n = (ups + downs) as f64;
    if n <= 0.0 {
        return 0.0;
    }
    let z = WILSON_Z;
    let p = ups as f64 / n;
    let left = p + z * z / (2.0 * n);
    let right = z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt();
    (left - right) / (1.0 + z * z / n)
}

/// Controversy: many votes, evenly split (open-source server's formula).
pub fn controversy(ups: i64, downs: i64) -> f64 {
    let total = (ups + downs) as f64;
    if total <= 0.0 {
        return 0.0;
    }
    total * (1.0 - ((ups - downs).abs() as f64) / total.max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hot_matches_reddit() {
        // A post at Reddit's epoch with score 1 ranks 0; score 10 ranks 1.
        assert_eq!(hot(1.0, 1_134_028_003_000), 0.0);
        assert_eq!(hot(10.0, 1_134_028_003_000), 1.0);
        assert_eq!(hot(-10.0, 1_134_028_003_000), -1.0);
        // 45000 s later is worth one order of magnitude of score.
        assert_eq!(hot(1.0, 1_134_028_003_000 + 45_000_000), 1.0);
    }

    #[test]
    fn wilson_known_values() {
        assert_eq!(wilson_lower_bound(0, 0), 0.0);
        let one = wilson_lower_bound(1, 0);
        let many = wilson_lower_bound(100, 0);
        assert!(one < many && many < 1.0);
        assert!(wilson_lower_bound(10, 10) < wilson_lower_bound(10, 1));
    }

    #[test]
    fn rising_prefers_fresh_posts() {
        let now = 10 * 3_600_000;
        assert!(rising(5.0, now, now) > rising(5.0, 0, now));
    }

    proptest! {
        #[test]
        fn hot_is_monotonic_in_score_and_time(s in -10_000i64..10_000, t in 1_600_000_000_000i64..1_900_000_000_000) {
            prop_assert!(hot((s + 1) as f64, t) >= hot(s as f64, t));
            prop_assert!(hot(s as f64, t + 1000) >= hot(s as f64, t));
        }

        #[test]
        fn wilson_is_a_probability(u in 0i64..100_000, d in 0i64..100_000) {
            let w = wilson_lower_bound(u, d);
            prop_assert!((0.0..=1.0).contains(&w));
        }

        #[test]
        fn controversy_peaks_when_split(n in 1i64..10_000) {
            prop_assert!(controversy(n, n) >= controversy(n * 2, 0));
        }
    }
}
