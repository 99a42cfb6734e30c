//! Human units on the command line: durations (`500ms`, `30s`, `5m`), percentages (`30`, `12.5%`).

use std::time::Duration;

/// Longest accepted fault even with --force (over 24 h needs --force; see guards).
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 500ms, 30s, 5m, 1h"))?;
    if d.is_zero() {
        return Err("a fault needs a positive duration, e.g. 30s".into());
    }
    if d > MAX_DURATION {
        return Err(format!("'{s}' is longer than 30 days; use at most 30d"));
    }
    Ok(d)
}

/// A probability in percent, 0 to 100, decimals allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(f64);

impl Percent {
    pub const ALL: Percent = Percent(100.0);

    pub fn value(self) -> f64 {
        self.0
    }

    /// The kernel-side threshold: inject when a uniform u32 is below it.
    pub fn threshold(self) -> u64 {
        if self.0 >= 100.0 {
            chaos_common::THRESHOLD_ALWAYS
        } else {
            (self.0 / 100.0 * chaos_common::THRESHOLD_ALWAYS as f64).round() as u64
        }
    }
}

/// Refuses a probability that would inject nothing: 0, or a value below the kernel's resolution
/// (one in 2^32, see `Percent::threshold`), which would round to 0. Accepting it would run a
/// fault that silently never fires.
pub fn check_injects(p: Percent, flag: &'static str) -> crate::error::Result<()> {
    if p.threshold() == 0 {
        return Err(crate::error::Error::input(
            flag,
            format!(
                "{p} would inject nothing; give a probability above 0, or use --dry-run to \
                 count matches without injecting"
            ),
        ));
    }
    Ok(())
}

impl std::str::FromStr for Percent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_end_matches('%');
        let v: f64 = t
            .parse()
            .map_err(|_| format!("'{s}' is not a number; use a percentage such as 30 or 12.5"))?;
        if !(0.0..=100.0).contains(&v) || v.is_nan() {
            return Err(format!("{s} is out of range; use a value from 0 to 100"));
        }
        Ok(Percent(v))
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// A port or an inclusive range `N-M`.
pub fn parse_ports(s: &str) -> Result<chaos_common::PortRange, String> {
    let bad = || format!("'{s}' is not a port; use a number 1-65535 or a range such as 8000-8080");
    let one = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(bad)
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (one(a)?, one(b)?),
        None => (one(s)?, one(s)?),
    };
    if lo > hi {
        return Err(format!(
            "'{s}' is an empty range; write the lower port first"
        ));
    }
    Ok(chaos_common::PortRange { lo, hi })
}

/// A bandwidth as tc writes it: `10mbit`, `500kbit`, `1gbit`, `100bit`, or bytes per second
/// with `bps`/`kbps`/`mbps`/`gbps` (tc's spelling: `bps` means bytes). Returns bits per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a rate; use e.g. 10mbit, 500kbit or 1gbit"))?;
    let mult = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}'; use bit, kbit, mbit, gbit (or bps, kbps, mbps, gbps \
                 for bytes per second, as tc does)"
            ));
        }
    };
    let bits = n * mult;
    if !(bits >= 1.0 && bits.is_finite()) {
        return Err(format!("'{s}' is not a positive rate"));
    }
    Ok(bits.round() as u64)
}

/// `10mbit`-style text for a rate in bits per second.
pub fn format_rate(bits: u64) -> String {
    match bits {
        b if b >= 1_000_000_000 && b % 1_000_000 == 0 => format!("{}gbit", b as f64 / 1e9),
        b if b >= 1_000_000 && b % 1_000 == 0 => format!("{}mbit", b as f64 / 1e6),
        b if b >= 1_000 => format!("{}kbit", b as f64 / 1e3),
        b => format!("{b}bit"),
    }
}

/// A size in bytes: `64MiB`, `1G`, `512k`, `1.5GiB`, `4096` (bytes). Every multiple is a power
/// of 1024 (`K`, `Ki`, `KiB` and `KB` alike, as stress-ng and `free` take them), so `64M` and
/// `64MiB` are the same 67108864 bytes. Zero is refused: a size that holds nothing is a mistake.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size; use e.g. 64MiB, 512KiB or 1GiB"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let power = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}'; use B, KiB, MiB, GiB or TiB (K, M, G, T alike)"
            ));
        }
    };
    let bytes = n * 1024f64.powi(power);
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("'{s}' is too large"));
    }
    if bytes < 1.0 {
        return Err(format!("'{s}' is zero; give a size above 0, e.g. 64MiB"));
    }
    Ok(bytes.round() as u64)
}

/// A rate in bytes per second: a size per second, `16MiB/s` (`/sec` too). Returns bytes per
/// second, above 0.
pub fn parse_byte_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let size = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("/sec"))
        .ok_or_else(|| format!("'{s}' is not a rate; use a size per second, e.g. 16MiB/s"))?;
    parse_size(size).map_err(|e| format!("{e} (in the rate '{s}')"))
}

/// `64MiB`-style text for a size in bytes (exact: the largest unit that divides it).
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic")]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("0s").unwrap_err().contains("positive"));
        assert!(parse_duration("31d").unwrap_err().contains("30d"));
        assert!(parse_duration("soon").unwrap_err().contains("e.g. 500ms"));
    }

    #[test]
    fn percents() {
        assert_eq!("12.5".parse::<Percent>().map(Percent::value), Ok(12.5));
        assert_eq!("30%".parse::<Percent>().map(Percent::value), Ok(30.0));
        assert!("150".parse::<Percent>().unwrap_err().contains("0 to 100"));
        assert!("-1".parse::<Percent>().is_err());
        assert!("NaN".parse::<Percent>().is_err());
        assert_eq!(Percent::ALL.threshold(), 1 << 32);
        assert_eq!("0".parse::<Percent>().map(Percent::threshold), Ok(0));
        assert_eq!("50".parse::<Percent>().map(Percent::threshold), Ok(1 << 31));
    }

    /// Probabilities at their edges: 0 and values the kernel cannot resolve are refused; the
    /// rest fire at the promised long-run rate through the kernel's own decision code
    /// (Percent::threshold, then chaos_common::roll), within a 99.9 % binomial interval.
    #[test]
    fn probabilities_at_their_edges() {
        let p = |s: &str| s.parse::<Percent>().unwrap();
        assert!(check_injects(p("0"), "--percent").is_err());
        assert!(check_injects(p("0.000000001"), "--percent").is_err());
        assert!(check_injects(p("0.000001"), "--percent").is_ok());
        let mut x: u32 = 0x9e37_79b9;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        const N: u32 = 1_000_000;
        for s in ["0.01", "0.5", "12.5", "50", "99.5", "99.99", "100"] {
            let q = p(s).value() / 100.0;
            let t = p(s).threshold();
            let hits = (0..N).filter(|_| chaos_common::roll(t, next())).count() as f64;
            let (mean, sd) = (q * N as f64, (q * (1.0 - q) * N as f64).sqrt());
            assert!(
                (hits - mean).abs() <= 3.29 * sd + 1.0,
                "{s}%: {hits} of {N}"
            );
        }
        // 100 % is every call, the largest random number included; just under is not.
        assert!(chaos_common::roll(p("100").threshold(), u32::MAX));
        assert!(!chaos_common::roll(p("99.9999").threshold(), u32::MAX));
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_ports("80"),
            Ok(chaos_common::PortRange { lo: 80, hi: 80 })
        );
        assert_eq!(
            parse_ports("8000-8080"),
            Ok(chaos_common::PortRange { lo: 8000, hi: 8080 })
        );
        assert!(parse_ports("0").is_err());
        assert!(
            parse_ports("90-80")
                .unwrap_err()
                .contains("lower port first")
        );
        assert!(parse_ports("70000").is_err());
    }

    #[test]
    fn rates_as_tc_spells_them() {
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("1.5Gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("100kbps"), Ok(800_000));
        assert!(parse_rate("10").unwrap_err().contains("unknown unit"));
        assert!(parse_rate("fast").unwrap_err().contains("e.g. 10mbit"));
        assert_eq!(format_rate(10_000_000), "10mbit");
        assert_eq!(format_rate(1_500_000_000), "1.5gbit");
    }

    #[test]
    fn sizes_and_byte_rates() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5gib"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8 KB"), Ok(8192));
        assert!(parse_size("0").unwrap_err().contains("zero"));
        assert!(parse_size("0MiB").unwrap_err().contains("zero"));
        assert!(
            parse_size("12parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("lots").unwrap_err().contains("e.g. 64MiB"));
        assert_eq!(parse_byte_rate("16MiB/s"), Ok(16 << 20));
        assert_eq!(parse_byte_rate("1G/sec"), Ok(1 << 30));
        assert!(parse_byte_rate("16MiB").unwrap_err().contains("per second"));
        assert!(parse_byte_rate("0/s").is_err());
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(3 << 29), "1536MiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
