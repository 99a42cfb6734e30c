//! The experiment file checked and turned into what the runner executes. Checks here need no
//! kernel; the faults are checked against the system by `faults::prepare`.

use super::spec::{self, ExperimentFile};
use crate::{error::Error, scalar, target::Target};
use std::time::Duration;

pub struct Experiment {
    pub name: String,
    pub hypothesis: String,
    pub description: Option<String>,
    pub target: ExpTarget,
    /// The target as written: what `chaos run --agents` sends each node, which resolves it.
    pub target_spec: super::spec::TargetSpec,
    pub duration: Duration,
    pub probes: Vec<Probe>,
    pub faults: Vec<PlannedFault>,
    pub abort: Abort,
    pub recovery_timeout: Duration,
    /// `schedule:`, checked (`chaos schedule run`).
    pub schedule: Option<crate::schedule::Schedule>,
}

/// Whom an experiment's faults act on.
#[derive(Debug, Clone)]
pub enum ExpTarget {
    /// A cgroup or a process's.
    Local(Target),
    /// Kubernetes containers, resolved through CRI when the experiment starts.
    Pods(crate::k8s::Query),
}

impl std::fmt::Display for ExpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpTarget::Local(Target::Cgroup(c)) => write!(f, "cgroup {c}"),
            ExpTarget::Local(Target::Pid(p)) => write!(f, "pid {p}"),
            ExpTarget::Pods(q) => {
                match (&q.pod, &q.namespace) {
                    (Some(p), _) => write!(f, "pod {p}")?,
                    (None, Some(ns)) => write!(f, "pods of namespace {ns} matching the selector")?,
                    (None, None) => write!(f, "pods")?,
                }
                if let Some(c) = &q.container {
                    write!(f, ", container {c}")?;
                }
                write!(f, " (mode {})", q.mode)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Share of failed samples (0..=1) allowed while faults run.
    pub tolerance: f64,
}

#[derive(Debug, Clone)]
pub enum ProbeKind {
    Http {
        url: String,
        status: u16,
        max_latency: Option<Duration>,
    },
    Tcp {
        addr: String,
    },
    Command {
        argv: Vec<String>,
    },
}

impl ProbeKind {
    pub fn describe(&self) -> String {
        match self {
            Self::Http {
                url,
                status,
                max_latency,
            } => {
                let lat = max_latency.map_or(String::new(), |d| format!(" within {d:?}"));
                format!("GET {url} -> {status}{lat}")
            }
            Self::Tcp { addr } => format!("TCP connect {addr}"),
            Self::Command { argv } => format!("`{}` exits 0", argv.join(" ")),
        }
    }
}

pub struct PlannedFault {
    pub name: String,
    pub start: Duration,
    pub duration: Duration,
    pub spec: spec::FaultEntry,
}

#[derive(Debug, Clone, Copy)]
pub struct Abort {
    pub consecutive_failures: Option<u32>,
    /// (share 0..=1, minimum samples)
    pub failure_ratio: Option<(f64, u32)>,
}

pub(super) fn invalid(at: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Invalid {
        at: at.into(),
        message: message.into(),
    }
}

/// `at` of errors about the file as a whole (its messages carry the line).
pub const WHOLE_FILE: &str = "experiment file";

/// Parses an experiment file's text (after `${VAR}` expansion).
pub fn parse(text: &str) -> Result<Experiment, Error> {
    let text = spec::expand_env(text).map_err(|m| invalid(WHOLE_FILE, m))?;
    scalar::take_bad();
    let file: ExperimentFile = serde_norway::from_str(&text).map_err(|e| {
        let message = e.to_string();
        match scalar::take_bad() {
            Some(value) => value_error(&text, &message, &value),
            None => {
                // serde_norway's line is that of the mapping around the key, if any.
                let (base, from) = match message.rsplit_once(" at line ") {
                    Some((m, pos)) => (
                        m,
                        pos.split_whitespace().next().and_then(|l| l.parse().ok()),
                    ),
                    None => (message.as_str(), None),
                };
                match key_line(&text, base, from.unwrap_or(1)) {
                    Some(line) => invalid(WHOLE_FILE, format!("line {line}: {base}")),
                    None => invalid(WHOLE_FILE, message),
                }
            }
        }
    })?;
    super::check::check(file)
}

/// The line of the key a serde error names, searched from line `from` (serde_norway gives the
/// line of the mapping around it, or none for the top level): for "duplicate field `k`", the
/// second `k:` at one indentation; for "unknown field `k`", the first `k:`.
fn key_line(text: &str, message: &str, from: usize) -> Option<usize> {
    let (kind, rest) = message.split_once(" field `")?;
    let key = rest.split('`').next()?;
    // (line number, indentation) of every line whose key is `key` (list items included).
    let keys = text
        .lines()
        .enumerate()
        .skip(from - 1)
        .filter_map(|(i, l)| {
            let body = l.trim_start();
            let body = body.strip_prefix("- ").unwrap_or(body);
            let k = body.split(':').next()?.trim();
            (k == key && body.contains(':')).then(|| (i + 1, l.len() - body.len()))
        });
    if kind.ends_with("duplicate") {
        let mut seen = Vec::new();
        for (line, indent) in keys {
            if seen.contains(&indent) {
                return Some(line);
            }
            seen.push(indent);
        }
        None
    } else {
        keys.map(|(line, _)| line).next()
    }
}

/// A bad value's error, with the line of the value itself: serde_norway gives the line of the
/// mapping around it (or none at the top level), so look for the value from there on.
fn value_error(text: &str, message: &str, value: &str) -> Error {
    let (message, from): (&str, usize) = match message.rsplit_once(" at line ") {
        Some((m, pos)) => {
            let line = pos.split_whitespace().next().and_then(|l| l.parse().ok());
            (m, line.unwrap_or(1))
        }
        None => (message, 1),
    };
    let holds = |l: &str| {
        let l = l.split(" #").next().unwrap_or(l);
        let v = l
            .rsplit_once(": ")
            .map_or(l.trim_start_matches([' ', '-']), |(_, v)| v);
        v.trim().trim_matches(['"', '\'']) == value
            || l.contains(&format!(": {value},"))
            || l.contains(&format!(": {value} }}"))
    };
    let line = text
        .lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| holds(l))
        .map_or(from, |(i, _)| i + 1);
    invalid(WHOLE_FILE, format!("line {line}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
name: db slow
hypothesis: checkout p95 stays under 1s
target:
  cgroup: shop/checkout
duration: 60s
steady_state:
  interval: 2s
  tolerance: 5%
  probes:
    - name: checkout
      http: { url: http://10.0.0.2:8080/checkout, max_latency: 1s }
    - name: db
      tcp: 10.0.0.3:5432
      interval: 500ms
    - name: script
      command: [true]
faults:
  - name: delay
    start: 10s
    duration: 20s
    net: { action: delay, iface: eth0, latency: 100ms, jitter: 10ms, dport: 5432 }
  - syscall: { name: write, errno: 28, path: /data, percent: 50 }
abort:
  consecutive_failures: 3
  failure_ratio: 50%
";

    fn err(text: &str) -> String {
        match parse(text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted:\n{text}"),
        }
    }

    #[test]
    fn a_full_file_parses_with_defaults() {
        let e = parse(GOOD).expect("valid");
        assert!(matches!(&e.target, ExpTarget::Local(Target::Cgroup(c)) if c == "shop/checkout"));
        assert_eq!(e.probes[0].interval, Duration::from_secs(2));
        assert_eq!(e.probes[1].interval, Duration::from_millis(500));
        assert_eq!(e.probes[1].timeout, Duration::from_millis(500));
        assert!((e.probes[0].tolerance - 0.05).abs() < 1e-9);
        assert!(matches!(
            e.probes[0].kind,
            ProbeKind::Http {
                status: 200,
                max_latency: Some(_),
                ..
            }
        ));
        // The unnamed fault gets a name and runs to the end.
        assert_eq!(e.faults[1].name, "fault-2");
        assert_eq!(e.faults[1].duration, Duration::from_secs(60));
        assert_eq!(
            e.faults[0].start + e.faults[0].duration,
            Duration::from_secs(30)
        );
        assert_eq!(e.abort.failure_ratio, Some((0.5, 5)));
        assert_eq!(e.recovery_timeout, super::super::check::DEFAULT_RECOVERY);
    }

    #[test]
    fn mistakes_name_the_line_or_field() {
        let typo = GOOD.replace("    start: 10s", "    strat: 10s");
        assert!(
            err(&typo).contains("unknown field `strat`"),
            "{}",
            err(&typo)
        );
        assert!(err(&typo).contains("line 19"), "{}", err(&typo));
        let bad_pct = GOOD.replace("tolerance: 5%", "tolerance: 150%");
        assert!(
            err(&bad_pct).contains("line 8: steady_state"),
            "{}",
            err(&bad_pct)
        );
        let bad_top = GOOD.replace("duration: 60s", "duration: soon");
        assert!(
            err(&bad_top).contains("line 5: 'soon'"),
            "{}",
            err(&bad_top)
        );
        let bad_flow = GOOD.replace("latency: 100ms", "latency: 1x");
        assert!(err(&bad_flow).contains("line 21: "), "{}", err(&bad_flow));
        let late = GOOD.replace("duration: 20s", "duration: 55s");
        assert!(err(&late).starts_with("faults[0] (delay): start 10s + duration 55s"));
        let two = GOOD.replace(
            "      tcp: 10.0.0.3:5432",
            "      tcp: 10.0.0.3:5432\n      command: [x]",
        );
        assert!(err(&two).contains("probes[1] (db): give exactly one of"));
        let port = GOOD.replace("tcp: 10.0.0.3:5432", "tcp: db");
        assert!(err(&port).contains("host:port"));
        let dup = GOOD.replace("name: script", "name: db");
        assert!(err(&dup).contains("names must be unique"));
        let none = GOOD.replace("  cgroup: shop/checkout", "  pid: 1\n  cgroup: x");
        assert!(err(&none).starts_with("target: give exactly one"));
        let url = GOOD.replace("http://10.0.0.2", "10.0.0.2");
        assert!(err(&url).contains("must start with http://"));
    }

    /// Each class of file error names its line, at the top level and nested.
    #[test]
    fn every_error_class_names_its_line() {
        let cases = [
            // (what, the file, the line to name, words of the message)
            (
                "duplicate, top",
                GOOD.replace("duration: 60s\n", "duration: 60s\nduration: 2s\n"),
                6,
                "duplicate field `duration`",
            ),
            (
                "duplicate, nested",
                GOOD.replace("    start: 10s\n", "    start: 10s\n    start: 2s\n"),
                20,
                "duplicate field `start`",
            ),
            (
                "unknown, top",
                GOOD.replace("duration: 60s\n", "duration: 60s\nduraton: 2s\n"),
                6,
                "unknown field `duraton`",
            ),
            (
                "unknown, nested",
                GOOD.replace("    start: 10s", "    strat: 10s"),
                19,
                "unknown field `strat`",
            ),
            (
                "bad value, top",
                GOOD.replace("duration: 60s", "duration: soon"),
                5,
                "'soon'",
            ),
            (
                "bad value, nested",
                GOOD.replace("interval: 500ms", "interval: 5xs"),
                14,
                "'5xs'",
            ),
        ];
        for (what, text, line, words) in cases {
            let e = err(&text);
            assert!(
                e.contains(&format!("line {line}: ")) && e.contains(words),
                "{what}: {e}"
            );
        }
    }

    #[test]
    fn kubernetes_targets_and_kill_faults() {
        let with = |target: &str, fault: &str| {
            GOOD.replace("target:\n  cgroup: shop/checkout\n", target)
                .replace(
                    "  - syscall: { name: write, errno: 28, path: /data, percent: 50 }\n",
                    fault,
                )
        };
        let kill = "  - kill: { signal: SIGTERM, every: 5s }\n";
        let pod = parse(&with("target: { pod: shop/web-0, container: app }\n", kill))
            .expect("pod target");
        match &pod.target {
            ExpTarget::Pods(q) => {
                assert_eq!(q.pod.as_deref(), Some("shop/web-0"));
                assert_eq!(q.container.as_deref(), Some("app"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            pod.target
                .to_string()
                .contains("pod shop/web-0, container app")
        );
        assert!(pod.faults[1].spec.kill.is_some());
        let map = "target: { namespace: shop, selector: { app: web }, mode: one }\n";
        match parse(&with(map, kill)).expect("selector map").target {
            ExpTarget::Pods(q) => {
                let want: crate::k8s::Selector = "app=web".parse().expect("selector");
                assert_eq!(q.selector, Some(want));
                assert_eq!(q.mode, crate::k8s::Mode::One);
            }
            other => panic!("{other:?}"),
        }
        let text = "target: { namespace: shop, selector: \"app in (web,api)\" }\n";
        assert!(parse(&with(text, kill)).is_ok());
        for (target, says) in [
            ("target: { selector: { app: web } }\n", "target.namespace"),
            ("target: { pod: shop/web-0, mode: some }\n", "target.mode"),
            ("target: { pod: web-0 }\n", "target.pod"),
            (
                "target: { cgroup: x, pod: shop/a }\n",
                "target: give exactly one",
            ),
            (
                "target: { cgroup: x, container: app }\n",
                "target: give exactly one",
            ),
        ] {
            let e = err(&with(target, kill));
            assert!(e.starts_with(says), "{target}: {e}");
        }
        let two = "  - { kill: {}, syscall: { name: write, errno: 28 } }\n";
        assert!(
            err(&with("target: { pid: 1 }\n", two))
                .contains("exactly one of `net:`, `syscall:`, `kill:` or `stress:`")
        );
    }

    #[test]
    fn stress_faults_parse_and_refuse_by_field() {
        let with = |fault: &str| {
            GOOD.replace(
                "  - syscall: { name: write, errno: 28, path: /data, percent: 50 }\n",
                fault,
            )
        };
        let exp = parse(&with("  - stress: { cpu: { workers: 2, load: 50 } }\n")).expect("cpu");
        assert!(exp.faults.iter().any(|f| f.spec.stress.is_some()));
        parse(&with(
            "  - stress: { memory: { size: 64MiB, rate: 16MiB/s } }\n",
        ))
        .expect("memory");
        for (fault, says) in [
            ("  - stress: { memory: { size: 0 } }\n", "zero"),
            ("  - stress: { cpu: { load: 150 } }\n", "out of range"),
            ("  - stress: { cpu: { cores: 2 } }\n", "cores"),
        ] {
            let e = err(&with(fault));
            assert!(e.contains(says), "{fault}: {e}");
        }
    }
}
