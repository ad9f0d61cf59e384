//! The few statistics the bench reports: nearest-rank percentiles, the
//! median of what was measured, and the middle half that shows how far
//! the cycles of a measurement disagree.

use crate::report::Cell;

/// The `p` percentile (nearest rank) of sorted nanoseconds, in
/// microseconds; NaN (shown n/a) without samples.
pub fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// The median of the finite values (missing rounds are NaN); NaN if none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p` quantile (nearest rank) of sorted values; NaN without any.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The finite values of `v`, sorted.
pub fn sorted_finite(v: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// "q25-q75" of the finite values (nearest rank): how far the cycles
/// disagree, without letting one stalled slice dominate.
pub fn middle_half(v: &[f64], decimals: usize) -> Cell {
    let v = sorted_finite(v);
    if v.len() < 2 {
        return Cell::Text(String::new());
    }
    Cell::Text(format!(
        "{:.decimals$}-{:.decimals$}",
        quantile(&v, 0.25),
        quantile(&v, 0.75)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles are nearest-rank over the sorted samples, in microseconds.
    #[test]
    fn percentiles_are_nearest_rank_in_microseconds() {
        let ns: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        for (p, want) in [(0.5, 50.0), (0.99, 99.0), (0.999, 100.0), (0.0, 1.0)] {
            let got = pct(&ns, p);
            assert_eq!(got, want, "p{p} of 1..=100 us: expected {want}, got {got}");
        }
        assert!(
            pct(&[], 0.5).is_nan(),
            "no samples must give NaN (shown n/a)"
        );
    }

    /// The median ignores missing (NaN) rounds and averages the middle pair.
    #[test]
    fn median_skips_missing_rounds_and_averages_the_middle_pair() {
        let got = median(vec![4.0, f64::NAN, 1.0, 3.0, 2.0]);
        assert_eq!(
            got, 2.5,
            "median of [4, NaN, 1, 3, 2]: expected 2.5, got {got}"
        );
        let got = median(vec![5.0, 1.0, 3.0]);
        assert_eq!(got, 3.0, "median of [5, 1, 3]: expected 3, got {got}");
    }

    /// The spread shown under a ratio is its 25th-75th percentile
    /// (nearest rank), ignoring missing values; one value shows nothing.
    #[test]
    fn middle_half_is_the_quartiles_of_the_cycles() {
        let v = [1.4, 0.9, f64::NAN, 1.0, 1.1, 0.5, 1.2, 1.0, 3.0];
        let got = match middle_half(&v, 2) {
            Cell::Text(t) => t,
            _ => String::from("not text"),
        };
        assert_eq!(got, "0.90-1.20", "quartiles of {v:?}");
        let one = match middle_half(&[1.0], 2) {
            Cell::Text(t) => t,
            _ => String::from("not text"),
        };
        assert_eq!(one, "", "a single cycle has no spread to show");
    }
}
