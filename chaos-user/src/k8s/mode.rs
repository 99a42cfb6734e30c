//! How many of the matching containers a fault hits, as Chaos Mesh's `mode` says it: `all`,
//! `one` (one at random), `fixed:N` (N at random), `percent:P` (P % of them at random, rounded
//! down, at least one).

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Mode {
    #[default]
    All,
    One,
    Fixed(usize),
    Percent(f64),
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let hint = "use all, one, fixed:N (N >= 1) or percent:P (0 < P <= 100)";
        match s.split_once(':') {
            None if s == "all" => Ok(Mode::All),
            None if s == "one" => Ok(Mode::One),
            Some(("fixed", n)) => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Mode::Fixed(n)),
                _ => Err(format!("'{s}': {hint}")),
            },
            Some(("percent", p)) => match p.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(Mode::Percent(p)),
                _ => Err(format!("'{s}': {hint}")),
            },
            _ => Err(format!("'{s}' is not a mode; {hint}")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::All => f.write_str("all"),
            Mode::One => f.write_str("one"),
            Mode::Fixed(n) => write!(f, "fixed:{n}"),
            Mode::Percent(p) => write!(f, "percent:{p}"),
        }
    }
}

impl Mode {
    /// How many of `n` candidates are picked (never more than `n`).
    pub fn count(self, n: usize) -> usize {
        match self {
            Mode::All => n,
            Mode::One => n.min(1),
            Mode::Fixed(k) => k.min(n),
            Mode::Percent(p) => ((n as f64 * p / 100.0).floor() as usize).clamp(n.min(1), n),
        }
    }

    /// Picks `count(len)` of `items` at random (uniformly, without repetition), keeping their
    /// order. `seed` makes the choice repeatable in tests; chaos seeds it from the clock.
    pub fn pick<T>(self, items: Vec<T>, seed: u64) -> Vec<T> {
        let n = items.len();
        let k = self.count(n);
        if k == n {
            return items;
        }
        // Partial Fisher-Yates over the indices with a splitmix64 stream.
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + (next() % (n - i) as u64) as usize;
            idx.swap(i, j);
        }
        let mut chosen = idx[..k].to_vec();
        chosen.sort_unstable();
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| chosen.binary_search(i).is_ok())
            .map(|(_, t)| t)
            .collect()
    }
}

/// A seed for `pick` from the clock's nanoseconds: another choice on every run.
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["all", "one", "fixed:2", "percent:50"] {
            assert_eq!(s.parse::<Mode>().expect(s).to_string(), s);
        }
        for bad in ["some", "fixed:0", "fixed:x", "percent:0", "percent:101", ""] {
            assert!(bad.parse::<Mode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(Mode::All.count(3), 3);
        assert_eq!(Mode::One.count(3), 1);
        assert_eq!(Mode::One.count(0), 0);
        assert_eq!(Mode::Fixed(5).count(3), 3);
        assert_eq!(Mode::Percent(50.0).count(3), 1);
        assert_eq!(Mode::Percent(10.0).count(3), 1, "at least one");
        assert_eq!(Mode::Percent(100.0).count(4), 4);
    }

    #[test]
    fn picks_each_candidate_sometimes_and_never_twice() {
        let mut seen = [0u32; 3];
        for seed in 0..300 {
            let got = Mode::One.pick(vec![0, 1, 2], seed);
            assert_eq!(got.len(), 1);
            seen[got[0]] += 1;
            let two = Mode::Fixed(2).pick(vec![0, 1, 2], seed);
            assert!(two.len() == 2 && two[0] < two[1], "{two:?}");
        }
        assert!(seen.iter().all(|&n| n > 50), "roughly uniform: {seen:?}");
    }
}
