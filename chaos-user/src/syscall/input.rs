//! A syscall fault as users write it: `SyscallFaultSpec` is the experiment file's `syscall:`
//! entry, and `chaos syscall NAME` builds the same value from its flags, so that `into_spec` is
//! the one place where defaults are applied.

use super::{SockProtocol, SyscallSpec};
use crate::{
    controls::Controls,
    scalar::{Cidr, OneOrMany, Pct, Ports, Text},
    target::Target,
    units::Percent,
};
use std::{path::PathBuf, time::Duration};

/// `chaos syscall NAME` options, by the same names (dashes become underscores).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyscallFaultSpec {
    /// Catalogue name or alias.
    pub name: String,
    /// Errno by name or number (errno faults).
    pub errno: Option<Text>,
    /// Signal by name or number (crash faults: the process is signalled at the call).
    pub signal: Option<Text>,
    pub dst: Option<Cidr>,
    pub dport: Option<Ports>,
    pub protocol: Option<SockProtocol>,
    #[serde(default)]
    pub path: OneOrMany<PathBuf>,
    #[serde(default)]
    pub all_files: bool,
    pub port: Option<Ports>,
    pub comm: Option<String>,
    pub percent: Option<Pct>,
    /// Let this many matching calls pass first.
    pub after: Option<u32>,
    /// Fail at most this many calls (`--times`, `--max-faults`).
    pub times: Option<u32>,
}

impl SyscallFaultSpec {
    /// An errno fault with every option left to its default.
    pub fn new(name: String, errno: String) -> Self {
        Self {
            errno: Some(Text(errno)),
            ..Self::crash(name, None)
        }
    }

    /// A fault with neither errno nor (if None) signal, every option left to its default.
    pub fn crash(name: String, signal: Option<String>) -> Self {
        Self {
            name,
            errno: None,
            signal: signal.map(Text),
            dst: None,
            dport: None,
            protocol: None,
            path: OneOrMany::default(),
            all_files: false,
            port: None,
            comm: None,
            percent: None,
            after: None,
            times: None,
        }
    }

    /// The spec with its defaults: `percent` 100, no skip (`after: 0` is no skip either), no
    /// budget unless `times` or the controls' `max_faults` give one (`times` wins).
    pub fn into_spec(self, target: Target, duration: Duration, controls: Controls) -> SyscallSpec {
        SyscallSpec {
            name: self.name,
            errno: self.errno.map(|t| t.0),
            signal: self.signal.map(|t| t.0),
            dst: self.dst.map(|c| c.0),
            dport: self.dport.map(|p| p.0),
            protocol: self.protocol,
            paths: self.path.into_vec(),
            all_files: self.all_files,
            port: self.port.map(|p| p.0),
            comm: self.comm,
            percent: self.percent.map_or(Percent::ALL, |p| p.0),
            target,
            duration,
            controls: Controls {
                max_faults: self.times.or(controls.max_faults),
                after: self.after.filter(|&n| n > 0),
                ..controls
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(yaml: &str, controls: Controls) -> SyscallSpec {
        let s: SyscallFaultSpec = serde_norway::from_str(yaml).expect("parses");
        s.into_spec(Target::Pid(1), Duration::from_secs(1), controls)
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let s = built("name: write\nerrno: 28", Controls::default());
        assert_eq!(s.errno.as_deref(), Some("28"));
        assert_eq!(s.percent, Percent::ALL);
        assert!(s.paths.is_empty() && !s.all_files);
        assert_eq!((s.controls.max_faults, s.controls.after), (None, None));
    }

    #[test]
    fn times_and_after_become_the_kernel_queues() {
        let budget = Controls {
            max_faults: Some(9),
            ..Controls::default()
        };
        let s = built(
            "name: open\nerrno: EACCES\nafter: 0\npath: /data",
            budget.clone(),
        );
        assert_eq!((s.controls.max_faults, s.controls.after), (Some(9), None));
        let s = built("name: open\nerrno: EACCES\nafter: 3\ntimes: 2", budget);
        assert_eq!(
            (s.controls.max_faults, s.controls.after),
            (Some(2), Some(3))
        );
    }
}
