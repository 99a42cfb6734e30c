//! Harness for the privileged tests: run the real `chaos` binary, drive real clients, and
//! observe the kernel with independent tools (bpftool, tc, ip), never through chaos itself.

pub mod agent;
pub mod clients;
pub mod deploy;
pub mod expect;
pub mod frames;
pub mod kernel_cache;
pub mod kubelet;
pub mod lab;
pub mod prometheus;
pub mod repl;
pub mod service;
pub mod stats;

use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The chaos binary under test: $CHAOS_BIN, else target/<profile>/chaos next to this test.
pub fn chaos_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CHAOS_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let bin = profile_dir.join("chaos");
    assert!(
        bin.exists(),
        "{} missing: build it first (cargo build -p chaos-user) or set CHAOS_BIN",
        bin.display()
    );
    bin
}

/// Privileged tests need root; say so instead of failing obscurely or passing vacuously.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "privileged tests must run as root (cargo xtask test)"
    );
}

/// Runs chaos to completion and returns (exit code, stdout, stderr).
pub fn chaos(args: &[&str]) -> (i32, String, String) {
    chaos_via(Command::new(chaos_bin()), args)
}

/// Like `chaos`, from a prepared command (e.g. inside a cgroup, or with an environment).
pub fn chaos_via(mut cmd: Command, args: &[&str]) -> (i32, String, String) {
    let out = cmd.args(args).output().expect("run chaos");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `chaos ... --json` fault running in the background.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Program ids from the "attached" line.
    pub program_ids: Vec<u64>,
    /// How it attached (tcx, cls_bpf, sock_addr, lsm, fmod_ret, kprobe).
    pub backend: String,
    /// The fault's id from the "attached" line (8 hex digits), which the summary repeats.
    pub fault_id: String,
}

impl Running {
    /// Starts `cmd ARGS --json` (a chaos command, with a lab's state: `Lab::start`) and waits
    /// (up to 60 s) for its "attached" line.
    pub fn start_via(mut cmd: Command, args: &[&str]) -> Running {
        let mut child = cmd
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn chaos");
        let lines = reader(child.stdout.take().expect("stdout"));
        // Generous: file faults parse the kernel BTF, which takes seconds under TCG emulation.
        let first = lines.recv_timeout(Duration::from_secs(60));
        let Ok(first) = first else {
            let _ = child.kill();
            panic!("chaos {args:?} did not report attached: {:?}", child.wait());
        };
        let v: Value = serde_json::from_str(&first).expect("attached line is JSON");
        assert_eq!(v["event"], "attached", "{first}");
        let program_ids = ids(&v);
        assert!(!program_ids.is_empty(), "no program ids in {first}");
        // The ids must be real programs, so that "gone" afterwards means something.
        for &id in &program_ids {
            assert!(program_exists(id), "program {id} of {first} is not loaded");
        }
        let backend = v["backend"].as_str().unwrap_or_default().to_string();
        assert!(!backend.is_empty(), "no backend in {first}");
        expect::check_backend(&backend, args.contains(&"--tc-attach"));
        // A script stops or looks up the fault by this id as soon as it is attached.
        let fault_id = v["fault_id"].as_str().unwrap_or_default().to_string();
        assert!(
            fault_id.len() == 8 && fault_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "no fault_id of 8 hex digits in {first}"
        );
        Running {
            child,
            lines,
            program_ids,
            backend,
            fault_id,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, sig) },
            0,
            "kill({sig})"
        );
    }

    /// The process state letter from /proc/PID/stat (R, S, T for stopped, ...).
    pub fn state(&self) -> char {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("stat");
        let after = stat.rsplit_once(") ").expect("comm").1;
        after.chars().next().expect("state")
    }

    /// SIGINT, then the summary line.
    pub fn interrupt(self) -> Value {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.finish()
    }

    /// Waits for the deadline to end the run, then returns the summary line.
    pub fn finish(self) -> Value {
        let (code, summary) = self.finish_with_status();
        assert_eq!(code, 0, "chaos exited with {code}: {summary}");
        summary
    }

    /// Waits for the run to end by itself; its exit status and summary line.
    pub fn finish_with_status(mut self) -> (i32, Value) {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(90))
            .expect("summary line");
        let status = self.child.wait().expect("wait chaos");
        let summary: Value = serde_json::from_str(&line).expect("summary is JSON");
        assert_eq!(
            summary["fault_id"].as_str(),
            Some(self.fault_id.as_str()),
            "the summary names the attached fault: {summary}"
        );
        (status.code().unwrap_or(-1), summary)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().expect("kill chaos");
        self.child.wait().expect("reap chaos");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave a fault running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reader(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn ids(v: &Value) -> Vec<u64> {
    v["program_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Whether the kernel still has a program with this id (asked of bpftool, not of chaos).
pub fn program_exists(id: u64) -> bool {
    Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run bpftool")
        .success()
}

/// Asserts that none of these programs is loaded any more (and so no link or filter holds
/// them). The kernel frees a detached program after an RCU grace period (cls_bpf through a
/// workqueue too), so this allows up to 2 s, which under load is still far above the norm.
pub fn assert_programs_gone(ids: &[u64]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for &id in ids {
        while program_exists(id) {
            assert!(
                std::time::Instant::now() < deadline,
                "program {id} still loaded 2 s after chaos ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs a command and returns its stdout; panics with stderr on failure.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON lines of an events file.
pub fn read_events(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("event line is JSON"))
        .collect()
}

/// A scratch file path unique to this process and tag; removed on drop.
pub struct TempPath(pub std::path::PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        TempPath(std::env::temp_dir().join(format!("chaos-test-{}-{tag}", std::process::id())))
    }
    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether the running kernel has `feature` (a `chaos doctor` feature name). Under a run's
/// expectations (tests/expect.toml) doctor must agree with them, or the test fails; without,
/// doctor decides. A missing feature skips through `expect::skip`, counted and listed.
pub fn kernel_has(feature: &str, test: &str) -> bool {
    let f = doctor_entry("features", "name", feature);
    let found = f["available"] == true;
    if let Some(expected) = expect::feature(feature) {
        assert_eq!(
            found,
            expected,
            "{test}: tests/expect.toml says this run's kernel {} {feature}; chaos doctor says {}",
            if expected { "has" } else { "lacks" },
            f["detail"]
        );
    }
    if !found {
        let why = format!("kernel {} lacks {feature}: {}", f["kernel"], f["detail"]);
        expect::skip(test, &why, true);
    }
    found
}

/// Like `kernel_has`, for a syscall-hook fault as `chaos doctor` lists it ("syscall write"):
/// under expectations, doctor must offer it exactly when the run names a backend, and name
/// that backend first.
pub fn kernel_runs(fault: &str, test: &str) -> bool {
    let f = doctor_entry("faults", "fault", fault);
    let found = f["available"] == true;
    let detail = f["detail"].as_str().unwrap_or_default();
    if let Some(hook) = expect::syscall_hook() {
        assert_eq!(
            found,
            hook != "none",
            "{test}: tests/expect.toml says this run's syscall hook is {hook}; chaos doctor: {detail}"
        );
        let prefix = match hook {
            "lsm" => "BPF LSM",
            "fmod_ret" => "fmod_ret",
            "kprobe" => "kprobe",
            _ => "",
        };
        assert!(
            detail.starts_with(prefix),
            "{test}: this run must use {hook}; chaos doctor offers {detail}"
        );
    }
    if !found {
        let why = format!("kernel {} cannot run {fault}: {detail}", f["kernel"]);
        expect::skip(test, &why, true);
    }
    found
}

/// Whether `chaos doctor` lists `fault` as available here, without reporting a skip (for tests
/// that assert the refusal where it is not).
pub fn doctor_lists(fault: &str) -> bool {
    doctor_entry("faults", "fault", fault)["available"] == true
}

/// Whether this kernel runs the syscall fault `fault` with kprobes at syscall entry, where
/// only descriptor calls take `--path` (`chaos doctor` says "without --path").
pub fn syscall_at_entry_without_path(fault: &str) -> bool {
    doctor_detail(fault).contains("without --path")
}

/// How `chaos doctor` says this kernel runs the fault `fault` (its backend first).
pub fn doctor_detail(fault: &str) -> String {
    doctor_entry("faults", "fault", fault)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn doctor_entry(section: &str, key: &str, feature: &str) -> Value {
    static DOCTOR: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let report = DOCTOR.get_or_init(|| {
        let (code, out, err) = chaos(&["doctor", "--json"]);
        assert_eq!(code, 0, "chaos doctor failed: {err}");
        serde_json::from_str(&out).expect("doctor JSON")
    });
    let f = report[section]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f[key] == feature))
        .cloned();
    let mut f = f.unwrap_or_else(|| panic!("chaos doctor has no {section} entry {feature}"));
    f["kernel"] = report["kernel"].clone();
    f
}

/// Whether `tool` is installed; if not, skips (allowed only outside the host run) with why.
pub fn have(tool: &str, test: &str) -> bool {
    let there = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !there {
        let why = format!("{tool} is not installed here; the host run has it (scripts/setup.sh)");
        expect::skip(test, &why, expect::host() != Some(true));
    }
    there
}

/// Whether `test` runs here: everywhere but the VM guests, where it skips saying `why` (a test
/// of wall-clock behaviour that emulation would stretch, and that no kernel changes).
pub fn host_only(test: &str, why: &str) -> bool {
    if expect::host() == Some(false) {
        expect::skip(test, why, true);
        return false;
    }
    true
}
