//! The experiment file, as written. Every struct rejects unknown fields, so that a typo is an
//! error with its line number instead of a silently ignored setting.

use crate::net::NetFaultSpec;
use crate::scalar::{Dur, Pct};
use crate::syscall::SyscallFaultSpec;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    pub name: String,
    /// What the team expects to stay true while the faults run.
    pub hypothesis: String,
    #[serde(default)]
    pub description: Option<String>,
    pub target: TargetSpec,
    /// How long the injection part lasts; every fault fits in it.
    pub duration: Dur,
    pub steady_state: SteadyState,
    pub faults: Vec<FaultEntry>,
    #[serde(default)]
    pub abort: AbortSpec,
    #[serde(default)]
    pub recovery: RecoverySpec,
    /// When `chaos schedule run` runs it (`chaos run` runs it once, now).
    pub schedule: Option<crate::schedule::ScheduleSpec>,
}

/// Whom the faults hit: a cgroup v2 (and below), the cgroup of a process, or Kubernetes
/// containers found on this node through CRI (`pod: NS/NAME` with `container:`, or
/// `namespace:` with `selector:`, and `mode:`).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub cgroup: Option<String>,
    pub pid: Option<u32>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub namespace: Option<String>,
    pub selector: Option<SelectorSpec>,
    /// all, one, fixed:N, percent:P.
    pub mode: Option<String>,
    pub runtime_endpoint: Option<String>,
}

/// `selector: {app: web}` (equalities) or `selector: "app=web,env in (a,b)"` (kubectl's).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum SelectorSpec {
    Labels(std::collections::HashMap<String, String>),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    /// Default time between two samples of a probe.
    #[serde(default)]
    pub interval: Option<Dur>,
    /// Default share of failed samples a probe may have while faults run.
    #[serde(default)]
    pub tolerance: Option<Pct>,
    pub probes: Vec<ProbeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub name: String,
    pub http: Option<HttpSpec>,
    /// host:port to connect to.
    pub tcp: Option<String>,
    /// argv of a command whose exit status 0 means healthy.
    pub command: Option<Vec<String>>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub tolerance: Option<Pct>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    pub url: String,
    /// Expected status (default 200).
    pub status: Option<u16>,
    /// A slower answer counts as a failure.
    pub max_latency: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEntry {
    pub name: Option<String>,
    /// Offset from the start of the injection (default 0).
    pub start: Option<Dur>,
    /// Default: until the end of the experiment.
    pub duration: Option<Dur>,
    pub net: Option<NetFaultSpec>,
    pub syscall: Option<SyscallFaultSpec>,
    /// Kill the target's processes (containers' init processes) at the start, and `every`.
    pub kill: Option<crate::kill::KillFaultSpec>,
    /// CPU or memory stress in the target's cgroups: `{cpu: {workers, load}}` or
    /// `{memory: {size, rate, workers}}`.
    pub stress: Option<crate::stress::StressFaultSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortSpec {
    /// Abort when any probe fails this many times in a row after injection began.
    pub consecutive_failures: Option<u32>,
    /// Abort when any probe's failed share while faults run exceeds this...
    pub failure_ratio: Option<Pct>,
    /// ...once it has at least this many samples there (default 5).
    pub min_samples: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySpec {
    /// How long every probe has to pass again after the rollback (default 60s).
    pub timeout: Option<Dur>,
}

/// `${NAME}` and `${NAME:-default}` replaced from the environment, so that one file serves
/// several clusters. A bare `$x` is left alone (shell commands in probes use it). Replacements
/// contain no newline, so line numbers in errors stay right.
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let line = text[..text.len() - rest.len() + i].matches('\n').count() + 1;
        let end = after
            .find('}')
            .ok_or_else(|| format!("line {line}: '${{' without a closing '}}'"))?;
        let (name, default) = match after[..end].split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (&after[..end], None),
        };
        let value = match (std::env::var(name), default) {
            (Ok(v), _) if !v.is_empty() => v,
            (_, Some(d)) => d.to_string(),
            _ => {
                return Err(format!(
                    "line {line}: environment variable {name} is not set; set it or write \
                     ${{{name}:-default}}"
                ));
            }
        };
        if value.contains('\n') {
            return Err(format!("line {line}: {name} contains a newline"));
        }
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        // SAFETY: unit tests in this module are the only users of this variable.
        unsafe { std::env::set_var("CHAOS_TEST_EXPAND", "eth9") };
        assert_eq!(
            expand_env("a: ${CHAOS_TEST_EXPAND}\nb: ${CHAOS_TEST_UNSET:-x y}\nc: $HOME")
                .expect("expands"),
            "a: eth9\nb: x y\nc: $HOME"
        );
        let e = expand_env("a: 1\nb: ${CHAOS_TEST_UNSET}").expect_err("unset");
        assert!(
            e.starts_with("line 2:") && e.contains("CHAOS_TEST_UNSET"),
            "{e}"
        );
    }
}
