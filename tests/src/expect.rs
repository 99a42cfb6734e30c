//! What the current run must exercise (tests/expect.toml, chosen by $CHAOS_EXPECT), and the one
//! way a test skips: `skip`, which is counted, and which fails the test when the run's
//! expectations say the path it skips must run here.

use serde::Deserialize;
use std::{collections::BTreeMap, sync::OnceLock};

/// One run of the suite, as tests/expect.toml describes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// The start of `uname -r` this run must see.
    pub kernel: String,
    /// What `chaos doctor` must find, by its feature names.
    pub features: BTreeMap<String, bool>,
    /// lsm, fmod_ret, kprobe or none.
    pub syscall_hook: String,
    /// tcx or cls_bpf.
    pub net_attach: String,
    /// Used by the runner (cargo xtask test).
    pub filters: Vec<String>,
    /// Used by the runner (cargo xtask test).
    pub must_run: Vec<String>,
    /// Whether containerd (with runc and the CNI plugins) is installed for the Kubernetes
    /// tests: on the host (scripts/setup.sh installs it), not in the guests.
    #[serde(default)]
    pub containerd: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    run: BTreeMap<String, Run>,
}

const FILE: &str = include_str!("../expect.toml");

/// The run named by $CHAOS_EXPECT; None when it is unset or `doctor` (a developer's ad-hoc
/// run: then `chaos doctor` decides, and skips are still reported). An unknown name panics.
pub fn current() -> Option<&'static (String, Run)> {
    static RUN: OnceLock<Option<(String, Run)>> = OnceLock::new();
    RUN.get_or_init(|| {
        let name = std::env::var("CHAOS_EXPECT").ok()?;
        if name == "doctor" {
            return None;
        }
        let mut file: File = toml::from_str(FILE).expect("tests/expect.toml parses");
        let run = file.run.remove(&name).unwrap_or_else(|| {
            panic!("CHAOS_EXPECT={name}: no [run.\"{name}\"] in tests/expect.toml")
        });
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        assert!(
            release.starts_with(&run.kernel),
            "CHAOS_EXPECT={name} describes Linux {}*, this is {}: add a run for this kernel to \
             tests/expect.toml (or CHAOS_EXPECT=doctor to let chaos doctor decide)",
            run.kernel,
            release.trim()
        );
        Some((name, run))
    })
    .as_ref()
}

/// Whether the run expects `feature`; None without expectations. Panics on a feature the file
/// does not name for this run: a test cannot ask about what no run has decided.
pub fn feature(feature: &str) -> Option<bool> {
    let (name, run) = current()?;
    Some(*run.features.get(feature).unwrap_or_else(|| {
        panic!("tests/expect.toml: run {name} says nothing of feature {feature:?}")
    }))
}

/// Whether this is the host run (the one with every tool; the VM guests carry only what
/// xtask/src/vm/initramfs.rs puts in them); None without expectations.
pub fn host() -> Option<bool> {
    current().map(|(n, _)| n == "host")
}

/// Whether the run expects containerd for the Kubernetes tests; None without expectations.
pub fn containerd() -> Option<bool> {
    current().map(|(_, r)| r.containerd)
}

/// The syscall-hook backend this run expects (lsm, fmod_ret, kprobe, none); None without
/// expectations.
pub fn syscall_hook() -> Option<&'static str> {
    current().map(|(_, r)| r.syscall_hook.as_str())
}

/// Checks the backend an "attached" line reports against the run's expectations: a syscall-hook
/// fault on the expected hook; a classifier attached as expected unless `chose_attach` (the
/// command named --tc-attach). Panics with both names on a mismatch.
pub fn check_backend(backend: &str, chose_attach: bool) {
    let Some((name, run)) = current() else {
        return;
    };
    let expected = match backend {
        "lsm" | "fmod_ret" | "kprobe" => &run.syscall_hook,
        "tcx" | "cls_bpf" if !chose_attach => &run.net_attach,
        _ => return,
    };
    assert_eq!(
        backend, expected,
        "run {name} must attach with {expected} (tests/expect.toml), chaos used {backend}"
    );
}

/// Skips the rest of the calling test: prints why and appends it to $CHAOS_SKIP_LOG, which the
/// runner counts and lists. `allowed` is whether the run's expectations permit it (false fails
/// the test: a path the run must exercise did not run).
pub fn skip(test: &str, reason: &str, allowed: bool) {
    if !allowed {
        let run = current().map_or("?", |(n, _)| n.as_str());
        panic!("{test} must not skip in run {run} (tests/expect.toml), but: {reason}");
    }
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("CHAOS_SKIP_LOG") {
        use std::io::Write as _;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log);
        match file.and_then(|mut f| writeln!(f, "{line}")) {
            Ok(()) => {}
            Err(e) => panic!("cannot record the skip in {}: {e}", log.to_string_lossy()),
        }
    }
}
