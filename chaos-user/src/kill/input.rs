//! A kill as users write it: the experiment file's `kill:` entry (`{signal: SIGKILL, every:
//! 30s}`), and what `chaos kill` builds from its flags; `into_spec` applies the defaults.

use super::KillSpec;
use crate::signal;
use crate::{
    error::{Error, Result},
    scalar::{Dur, Text},
};
use std::time::Duration;

/// `chaos kill` options, by the same names.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KillFaultSpec {
    /// By name or number; default SIGKILL.
    pub signal: Option<Text>,
    /// Kill again at this interval until the duration ends; default: once.
    pub every: Option<Dur>,
    /// How long to wait for a killed container to run again; default 30 s, at most `every`.
    pub recovery_timeout: Option<Dur>,
}

/// `recovery_timeout`'s default: a container the kubelet restarts at once is back in seconds;
/// its first back-off is 10 s (kubelet's CrashLoopBackOff start), so 30 s covers two tries.
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

impl KillFaultSpec {
    /// Errors name the flag: an unknown signal, an interval under 100 ms.
    pub fn into_spec(self, duration: Duration, force: bool) -> Result<KillSpec> {
        let sig = match &self.signal {
            Some(t) => signal::parse(&t.0).map_err(|m| Error::input("--signal", m))?,
            None => libc::SIGKILL,
        };
        let every = self.every.map(|d| d.0);
        if every.is_some_and(|e| e < Duration::from_millis(100)) {
            return Err(Error::input(
                "--every",
                "use an interval of at least 100ms (each round lists and signals the targets)",
            ));
        }
        let recovery = self
            .recovery_timeout
            .map_or(DEFAULT_RECOVERY_TIMEOUT, |d| d.0);
        crate::guards::check_duration(duration, force)?;
        Ok(KillSpec {
            signal: sig,
            every,
            duration,
            force,
            recovery_timeout: every.map_or(recovery, |e| recovery.min(e)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(yaml: &str) -> Result<KillSpec> {
        let s: KillFaultSpec = serde_norway::from_str(yaml).expect("parses");
        s.into_spec(Duration::from_secs(60), false)
    }

    #[test]
    fn defaults_and_refusals() {
        let once = built("{}").expect("builds");
        assert_eq!((once.signal, once.every), (libc::SIGKILL, None));
        assert_eq!(once.recovery_timeout, DEFAULT_RECOVERY_TIMEOUT);
        let monkey = built("{signal: TERM, every: 5s}").expect("builds");
        assert_eq!(monkey.signal, libc::SIGTERM);
        assert_eq!(monkey.every, Some(Duration::from_secs(5)));
        assert_eq!(
            monkey.recovery_timeout,
            Duration::from_secs(5),
            "at most the interval"
        );
        for (yaml, flag) in [
            ("{signal: SIGFOO}", "--signal"),
            ("{every: 10ms}", "--every"),
        ] {
            match built(yaml) {
                Err(Error::Input { flag: f, .. }) => assert_eq!(f, flag),
                other => panic!("{yaml}: {other:?}"),
            }
        }
    }
}
