//! The experiment file's own consistency (names, offsets, probes, abort conditions), checked
//! without the kernel; the faults are checked against the system by `faults::prepare`.

use super::{
    plan::{Abort, ExpTarget, Experiment, PlannedFault, Probe, ProbeKind, invalid},
    spec::{
        AbortSpec, ExperimentFile, FaultEntry, ProbeSpec, SelectorSpec, SteadyState, TargetSpec,
    },
};
use crate::{
    error::Error,
    k8s::{Mode, Query, Selector},
    target::Target,
};
use std::time::Duration;

/// `steady_state.interval`'s default.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// `recovery.timeout`'s default.
pub(super) const DEFAULT_RECOVERY: Duration = Duration::from_secs(60);
/// `abort.min_samples`' default.
const DEFAULT_MIN_SAMPLES: u32 = 5;

pub(super) fn check(f: ExperimentFile) -> Result<Experiment, Error> {
    if f.name.trim().is_empty() {
        return Err(invalid("name", "give the experiment a name"));
    }
    let target_spec = f.target.clone();
    let target = target(f.target)?;
    let duration = f.duration.0;
    if duration.is_zero() {
        return Err(invalid("duration", "use a positive duration, e.g. 60s"));
    }
    let probes = probes(&f.steady_state)?;
    let faults = faults(f.faults, duration)?;
    Ok(Experiment {
        name: f.name,
        hypothesis: f.hypothesis,
        description: f.description,
        target,
        target_spec,
        duration,
        probes,
        faults,
        abort: abort(&f.abort)?,
        recovery_timeout: f.recovery.timeout.map_or(DEFAULT_RECOVERY, |d| d.0),
        schedule: f.schedule.map(|s| s.check("schedule")).transpose()?,
    })
}

pub(super) fn target(t: TargetSpec) -> Result<ExpTarget, Error> {
    let pods = t.pod.is_some() || t.selector.is_some();
    let k8s_only = t.container.is_some() || t.namespace.is_some() || t.mode.is_some();
    match (t.cgroup, t.pid, pods) {
        (Some(c), None, false) if !k8s_only => Ok(ExpTarget::Local(Target::Cgroup(c))),
        (None, Some(p), false) if !k8s_only => Ok(ExpTarget::Local(Target::Pid(p))),
        (None, None, true) => pods_target(
            t.pod,
            t.container,
            t.namespace,
            t.selector,
            t.mode,
            t.runtime_endpoint,
        ),
        _ => Err(invalid(
            "target",
            "give exactly one of `cgroup: PATH` (a cgroup v2 and below), `pid: PID`, `pod: \
             NAMESPACE/NAME` (with `container:`) or `namespace: NS` with `selector:` (and \
             `mode:`)",
        )),
    }
}

fn pods_target(
    pod: Option<String>,
    container: Option<String>,
    namespace: Option<String>,
    selector: Option<SelectorSpec>,
    mode: Option<String>,
    endpoint: Option<String>,
) -> Result<ExpTarget, Error> {
    let selector = match selector {
        None => None,
        Some(SelectorSpec::Labels(m)) => Some(Selector::from_map(&m)),
        Some(SelectorSpec::Text(s)) => Some(s.parse().map_err(|m| invalid("target.selector", m))?),
    };
    let mode = match mode {
        None => Mode::All,
        Some(m) => m.parse().map_err(|e| invalid("target.mode", e))?,
    };
    let q = Query {
        pod,
        namespace,
        selector,
        container,
        mode,
        endpoint: endpoint.as_deref().map(crate::k8s::cri::endpoint_path),
    };
    q.check().map_err(|e| match e {
        Error::Input { flag, message } => {
            invalid(format!("target.{}", flag.trim_start_matches("--")), message)
        }
        other => other,
    })?;
    Ok(ExpTarget::Pods(q))
}

fn probes(ss: &SteadyState) -> Result<Vec<Probe>, Error> {
    if ss.probes.is_empty() {
        return Err(invalid(
            "steady_state.probes",
            "list at least one probe (http, tcp or command): without one there is no steady \
             state to check",
        ));
    }
    let interval = ss.interval.map_or(DEFAULT_INTERVAL, |d| d.0);
    let tolerance = ss.tolerance.map_or(0.0, |p| p.0.value() / 100.0);
    let mut probes: Vec<Probe> = Vec::new();
    for (i, p) in ss.probes.iter().enumerate() {
        let probe = probe(p, interval, tolerance)
            .map_err(|m| invalid(format!("steady_state.probes[{i}] ({})", p.name), m))?;
        if probes.iter().any(|q| q.name == probe.name) {
            return Err(invalid(
                format!("steady_state.probes[{i}]"),
                format!(
                    "two probes are named '{}'; names must be unique",
                    probe.name
                ),
            ));
        }
        probes.push(probe);
    }
    Ok(probes)
}

pub(super) fn faults(
    entries: Vec<FaultEntry>,
    duration: Duration,
) -> Result<Vec<PlannedFault>, Error> {
    if entries.is_empty() {
        return Err(invalid(
            "faults",
            "list at least one fault (net, syscall, kill or stress)",
        ));
    }
    let mut faults: Vec<PlannedFault> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let name = entry
            .name
            .clone()
            .unwrap_or_else(|| format!("fault-{}", i + 1));
        let at = format!("faults[{i}] ({name})");
        let (start, len) = window(&entry, duration).map_err(|m| invalid(&at, m))?;
        let kinds = [
            entry.net.is_some(),
            entry.syscall.is_some(),
            entry.kill.is_some(),
            entry.stress.is_some(),
        ];
        if kinds.iter().filter(|&&k| k).count() != 1 {
            return Err(invalid(
                at,
                "give exactly one of `net:`, `syscall:`, `kill:` or `stress:`",
            ));
        }
        if faults.iter().any(|f| f.name == name) {
            return Err(invalid(at, "fault names must be unique"));
        }
        faults.push(PlannedFault {
            name,
            start,
            duration: len,
            spec: entry,
        });
    }
    Ok(faults)
}

/// A fault's start offset and length, inside the experiment's duration.
fn window(entry: &FaultEntry, duration: Duration) -> Result<(Duration, Duration), String> {
    let start = entry.start.map_or(Duration::ZERO, |d| d.0);
    if start >= duration {
        return Err(format!(
            "start {start:?} is not inside the experiment's duration {duration:?}"
        ));
    }
    let len = entry.duration.map_or(duration - start, |d| d.0);
    if len.is_zero() || start + len > duration {
        return Err(format!(
            "start {start:?} + duration {len:?} must end within the experiment's duration \
             {duration:?}"
        ));
    }
    Ok((start, len))
}

fn abort(a: &AbortSpec) -> Result<Abort, Error> {
    if a.consecutive_failures == Some(0) {
        return Err(invalid(
            "abort.consecutive_failures",
            "use 1 or more (leave it out for no such condition)",
        ));
    }
    let min_samples = a.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES).max(1);
    Ok(Abort {
        consecutive_failures: a.consecutive_failures,
        failure_ratio: a.failure_ratio.map(|p| (p.0.value() / 100.0, min_samples)),
    })
}

fn probe(p: &ProbeSpec, interval: Duration, tolerance: f64) -> Result<Probe, String> {
    if p.name.trim().is_empty() {
        return Err("give the probe a name".into());
    }
    let kinds = [p.http.is_some(), p.tcp.is_some(), p.command.is_some()];
    if kinds.iter().filter(|&&k| k).count() != 1 {
        return Err("give exactly one of `http:`, `tcp:` or `command:`".into());
    }
    let kind = if let Some(h) = &p.http {
        if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
            return Err(format!(
                "http.url '{}' must start with http:// or https://",
                h.url
            ));
        }
        ProbeKind::Http {
            url: h.url.clone(),
            status: h.status.unwrap_or(200),
            max_latency: h.max_latency.map(|d| d.0),
        }
    } else if let Some(addr) = &p.tcp {
        if addr
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            return Err(format!(
                "tcp '{addr}' must be host:port, e.g. 10.0.0.3:5432"
            ));
        }
        ProbeKind::Tcp { addr: addr.clone() }
    } else {
        let argv = p.command.clone().unwrap_or_default();
        if argv.is_empty() {
            return Err("command needs a program, e.g. [pg_isready, -h, db]".into());
        }
        ProbeKind::Command { argv }
    };
    let interval = p.interval.map_or(interval, |d| d.0);
    if interval < Duration::from_millis(10) {
        return Err("interval: use at least 10ms".into());
    }
    // A probe that outlives its interval would pile up; by default it gets the interval.
    let timeout = p
        .timeout
        .map_or(interval.min(Duration::from_secs(5)), |d| d.0);
    if timeout.is_zero() {
        return Err("timeout: use a positive duration".into());
    }
    Ok(Probe {
        name: p.name.clone(),
        kind,
        interval,
        timeout,
        tolerance: p.tolerance.map_or(tolerance, |t| t.0.value() / 100.0),
    })
}
