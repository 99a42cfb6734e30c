//! Statistical bounds for probabilistic faults.

/// The two-sided 99.9 % interval of a Binomial(n, p) count, by the normal approximation
/// (z = 3.29), widened by one to cover discreteness.
pub fn binomial_999(n: u64, p: f64) -> (u64, u64) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    let lo = (mean - 3.29 * sd - 1.0).max(0.0).floor() as u64;
    let hi = (mean + 3.29 * sd + 1.0).min(n as f64).ceil() as u64;
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_for_thirty_percent_of_a_thousand() {
        let (lo, hi) = binomial_999(1000, 0.3);
        assert!(
            (250..=253).contains(&lo) && (347..=350).contains(&hi),
            "{lo}..{hi}"
        );
        assert_eq!(binomial_999(100, 1.0), (99, 100));
    }
}
