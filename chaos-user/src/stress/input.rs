//! A stress as users write it: an experiment's `stress: {cpu: {workers: 2, load: 50}}` or
//! `stress: {memory: {size: 64MiB, rate: 16MiB/s}}`, and what `chaos stress cpu|memory` builds
//! from its flags (the same names); `into_spec` applies the defaults in one place.

use super::{Load, MAX_WORKERS, StressSpec};
use crate::{
    error::{Error, Result},
    scalar::{ByteRate, Bytes, Pct},
};
use std::time::Duration;

/// Exactly one of `cpu:` or `memory:`.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StressFaultSpec {
    pub cpu: Option<CpuInput>,
    pub memory: Option<MemoryInput>,
}

/// `chaos stress cpu` options.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CpuInput {
    /// Worker processes, each on one CPU at most; default 1, at most 256.
    pub workers: Option<u32>,
    /// Share of one CPU each worker keeps busy, in percent: above 0, up to 100 (default 100).
    pub load: Option<Pct>,
}

/// `chaos stress memory` options.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryInput {
    /// Bytes held by all workers together (each holds its share); required.
    pub size: Option<Bytes>,
    /// Bytes per second, all workers together (default: all at once).
    pub rate: Option<ByteRate>,
    /// Worker processes; default 1, at most 256.
    pub workers: Option<u32>,
}

/// A page: the least a memory worker can hold.
const PAGE: u64 = 4096;

impl StressFaultSpec {
    /// Errors (`Error::Input`) name the flag: neither or both kinds, workers 0 or over 256,
    /// a load of 0 %, a size under one page (4 KiB), a duration over 24 h without `force`.
    pub fn into_spec(self, duration: Duration, force: bool) -> Result<StressSpec> {
        crate::guards::check_duration(duration, force)?;
        let load = match (self.cpu, self.memory) {
            (Some(c), None) => {
                let percent = c.load.map_or(100.0, |p| p.0.value());
                if percent <= 0.0 {
                    return Err(Error::input(
                        "--load",
                        "a load of 0% burns nothing; give a share of one CPU above 0, up to 100",
                    ));
                }
                Load::Cpu {
                    workers: workers(c.workers)?,
                    percent,
                }
            }
            (None, Some(m)) => {
                let bytes = m.size.map(|b| b.0).ok_or_else(|| {
                    Error::input("--size", "say how much memory to hold, e.g. 64MiB or 1GiB")
                })?;
                let workers = workers(m.workers)?;
                if bytes < PAGE * u64::from(workers) {
                    return Err(Error::input(
                        "--size",
                        format!(
                            "{bytes} bytes is less than a page (4KiB) per worker; give at least \
                             {} or fewer workers",
                            crate::units::format_size(PAGE * u64::from(workers))
                        ),
                    ));
                }
                Load::Memory {
                    workers,
                    bytes,
                    rate: m.rate.map(|r| r.0),
                }
            }
            _ => {
                return Err(Error::input(
                    "stress",
                    "give exactly one of `cpu:` or `memory:`",
                ));
            }
        };
        Ok(StressSpec {
            load,
            duration,
            force,
        })
    }
}

fn workers(n: Option<u32>) -> Result<u32> {
    match n.unwrap_or(1) {
        0 => Err(Error::input(
            "--workers",
            "0 workers stress nothing; give 1 or more",
        )),
        n if n > MAX_WORKERS => Err(Error::input(
            "--workers",
            format!("{n} is more than {MAX_WORKERS} worker processes; give fewer"),
        )),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(yaml: &str) -> Result<StressSpec> {
        let s: StressFaultSpec = serde_norway::from_str(yaml).expect("parses");
        s.into_spec(Duration::from_secs(60), false)
    }

    #[test]
    fn defaults() {
        let cpu = built("{cpu: {}}").expect("builds");
        assert_eq!(
            cpu.load,
            Load::Cpu {
                workers: 1,
                percent: 100.0
            }
        );
        assert_eq!(cpu.kind(), "stress cpu");
        let half = built("{cpu: {workers: 2, load: 50}}").expect("builds");
        assert_eq!(
            half.load,
            Load::Cpu {
                workers: 2,
                percent: 50.0
            }
        );
        assert_eq!(half.describe(), "2 workers at 50% of a CPU each");
        let mem = built("{memory: {size: 64MiB}}").expect("builds");
        assert_eq!(
            mem.load,
            Load::Memory {
                workers: 1,
                bytes: 64 << 20,
                rate: None
            }
        );
        assert_eq!(mem.describe(), "64MiB in 1 worker, all at once");
        let slow = built("{memory: {size: 1G, rate: 16MiB/s, workers: 4}}").expect("builds");
        assert_eq!(
            slow.load,
            Load::Memory {
                workers: 4,
                bytes: 1 << 30,
                rate: Some(16 << 20)
            }
        );
        assert_eq!(slow.kind(), "stress memory");
    }

    #[test]
    fn refusals_name_the_flag() {
        for (yaml, flag) in [
            ("{}", "stress"),
            ("{cpu: {}, memory: {size: 1M}}", "stress"),
            ("{cpu: {load: 0}}", "--load"),
            ("{cpu: {workers: 0}}", "--workers"),
            ("{cpu: {workers: 257}}", "--workers"),
            ("{memory: {}}", "--size"),
            ("{memory: {size: 4KiB, workers: 2}}", "--size"),
            ("{memory: {size: 1M, workers: 0}}", "--workers"),
        ] {
            match built(yaml) {
                Err(Error::Input { flag: f, .. }) => assert_eq!(f, flag, "{yaml}"),
                other => panic!("{yaml}: {other:?}"),
            }
        }
        let long = StressFaultSpec {
            cpu: Some(CpuInput::default()),
            memory: None,
        };
        assert!(
            long.clone()
                .into_spec(Duration::from_secs(25 * 3600), false)
                .is_err()
        );
        assert!(long.into_spec(Duration::from_secs(25 * 3600), true).is_ok());
    }

    #[test]
    fn bad_scalars_fail_to_parse() {
        for yaml in [
            "{cpu: {load: 101}}",
            "{cpu: {load: -1}}",
            "{memory: {size: 0}}",
            "{memory: {size: 1M, rate: 1M}}",
            "{cpu: {cores: 2}}",
        ] {
            assert!(
                serde_norway::from_str::<StressFaultSpec>(yaml).is_err(),
                "{yaml}"
            );
        }
    }
}
