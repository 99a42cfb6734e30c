//! How a fault runs, whatever it matches: dry-run, budget, audit events, and the guard override.

use chaos_common::{FLAG_AFTER, FLAG_BUDGET, FLAG_DRY_RUN, FLAG_EVENTS, MAX_BUDGET};
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct Controls {
    /// Attach and count what would be faulted, inject nothing (switchable to live).
    pub dry_run: bool,
    /// Stop injecting after this many faults (counted in the kernel).
    pub max_faults: Option<u32>,
    /// Let this many matches through before faulting any (`--after`, counted in the kernel).
    pub after: Option<u32>,
    /// Write one JSON line per injected fault to this file.
    pub events: Option<PathBuf>,
    /// Emit one event per this many faults on average (1: all).
    pub events_sample: u32,
    /// Override the blast-radius guards.
    pub force: bool,
}

impl Controls {
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.dry_run {
            f |= FLAG_DRY_RUN;
        }
        if self.max_faults.is_some() {
            f |= FLAG_BUDGET;
        }
        if self.events.is_some() {
            f |= FLAG_EVENTS;
        }
        if self.after.is_some() {
            f |= FLAG_AFTER;
        }
        f
    }
}

/// A whole number within `lo..=MAX_BUDGET` (`what` names it in the error); too large is out of
/// range, not "not a number".
fn count(s: &str, lo: u32, what: &str, example: u32) -> Result<u32, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number; use e.g. {example}"))?;
    if n < u64::from(lo) || n > u64::from(MAX_BUDGET) {
        return Err(format!("use a {what} from {lo} to {MAX_BUDGET}"));
    }
    Ok(n as u32)
}

/// `--times N` / `--max-faults N`: at least 1 (0 would inject nothing).
pub fn parse_budget(s: &str) -> Result<u32, String> {
    count(s, 1, "budget", 100)
}

/// `--after N`: 0 means "from the first call" and is the same as leaving it out.
pub fn parse_after(s: &str) -> Result<u32, String> {
    count(s, 0, "count", 10)
}

pub fn parse_sample(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a sampling rate; use N >= 1 to log one fault in N"
        )),
    }
}

/// A random id for a fault (audit events, background faults).
pub fn new_fault_id() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 4 {
        // Unique enough for ids when the entropy pool is unavailable.
        return std::process::id() ^ (crate::ebpf::monotonic_ns() as u32);
    }
    u32::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_parsing() {
        let c = Controls {
            dry_run: true,
            max_faults: Some(3),
            ..Controls::default()
        };
        assert_eq!(c.flags(), FLAG_DRY_RUN | FLAG_BUDGET);
        assert_eq!(parse_budget("7"), Ok(7));
        assert!(parse_budget("0").is_err() && parse_budget("2000000").is_err());
        assert_eq!(parse_sample("10"), Ok(10));
        assert!(parse_sample("0").is_err());
    }

    /// --times, --after and --events-sample at 0, at the maximum, above it and with decimals:
    /// what --help says, or refused with the range (issue 15).
    #[test]
    fn counts_at_their_edges() {
        assert_eq!(parse_after("0"), Ok(0));
        assert_eq!(parse_after("1000000"), Ok(1_000_000));
        assert_eq!(parse_budget("1000000"), Ok(1_000_000));
        for too_big in ["1000001", "4294967296", "99999999999999999999"] {
            let e = parse_budget(too_big).expect_err(too_big);
            assert!(
                e.contains("from 1 to 1000000") || e.contains("whole number"),
                "{e}"
            );
            assert!(parse_after(too_big).is_err());
        }
        assert!(
            parse_budget("4294967296")
                .expect_err("2^32")
                .contains("from 1 to")
        );
        for bad in ["1.5", "-1", "", "ten"] {
            assert!(
                parse_budget(bad).is_err()
                    && parse_after(bad).is_err()
                    && parse_sample(bad).is_err(),
                "{bad}"
            );
        }
    }
}
