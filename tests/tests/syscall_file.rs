//! File and process syscall faults (BPF LSM, fmod_ret or kprobes), with real victims: dd,
//! Python, SQLite. This kernel refuses all three mechanisms, so these run in VMs (`cargo xtask
//! vm`, `cargo xtask test`: Debian 6.12, the same booted without the BPF LSM to cover fmod_ret,
//! and a 6.12 built with CONFIG_BPF_KPROBE_OVERRIDE and neither, to cover kprobes); here they
//! print why they skip. Test names start with lsm_ so the runner can select them.

use chaos_tests::{
    Running, TempPath, assert_programs_gone, chaos_via, kernel_runs, lab::Lab, read_events,
    repl::Repl, syscall_at_entry_without_path,
};
use std::path::PathBuf;

/// A directory for one test, removed with its contents when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("chaos-sf-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        Dir(p)
    }
    fn join(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dd(mut cmd: std::process::Command, to: &str) -> (bool, String) {
    let out = cmd
        .args(["if=/dev/zero", &format!("of={to}"), "bs=4k", "count=4"])
        .output()
        .expect("dd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// write -> ENOSPC under --path, for dd inside the cgroup only; writes elsewhere, writes from
/// outside the cgroup and a pipe inside it (not a regular file) all work.
#[test]
fn lsm_dd_gets_enospc_under_the_path_only() {
    if !kernel_runs("syscall write", "lsm_dd_gets_enospc_under_the_path_only") {
        return;
    }
    let lab = Lab::new("sfdd");
    let (data, other) = (Dir::new("data"), Dir::new("other"));
    let fault = lab.syscall(&["write", "--errno", "ENOSPC", "--path", data.path()]);
    let (ok, err) = dd(lab.inside("dd"), &data.join("f"));
    assert!(
        !ok && err.contains("No space left on device"),
        "dd under the path: {err}"
    );
    let (ok, err) = dd(lab.inside("dd"), &other.join("f"));
    assert!(ok, "dd elsewhere: {err}");
    let (ok, err) = dd(lab.outside("dd"), &data.join("g"));
    assert!(ok, "dd outside the cgroup: {err}");
    let pipe = lab
        .inside("sh")
        .args(["-c", "echo through-a-pipe | cat"])
        .output()
        .expect("sh");
    assert_eq!(
        String::from_utf8_lossy(&pipe.stdout).trim(),
        "through-a-pipe"
    );
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(s["injected"], 1, "one failed write (dd stops there): {s}");
    assert_eq!(s["matched"], 1, "nothing else matched: {s}");
    assert_programs_gone(&ids);
    let (ok, err) = dd(lab.inside("dd"), &data.join("f"));
    assert!(ok, "dd under the path after the fault: {err}");
    lab.finish();
}

/// A file fault needs the kernel's struct offsets and its attach point's BTF id: the first
/// start on this kernel parses the kernel's BTF, the next finds both in the cache and parses
/// nothing, whichever backend it attaches with.
#[test]
fn lsm_second_start_parses_no_btf() {
    if !kernel_runs("syscall write", "lsm_second_start_parses_no_btf") {
        return;
    }
    let lab = Lab::new("sfbtf");
    let data = Dir::new("btf");
    let cgroup = lab.cgroup();
    let args = [
        "syscall",
        "write",
        "--errno",
        "EIO",
        "--path",
        data.path(),
        "--cgroup",
        &cgroup,
        "--dry-run",
        "--duration",
        "100ms",
    ];
    let starts = chaos_tests::kernel_cache::two_starts(&lab, "sfbtf", &args);
    chaos_tests::kernel_cache::assert_second_start_parses_nothing(&starts);
    lab.finish();
}

/// open -> EACCES as Python sees it (PermissionError), inside the cgroup only. With kprobes at
/// syscall entry (no path looked up yet) `--path` is refused with the reason and the fault is
/// scoped by the cgroup alone.
#[test]
fn lsm_python_open_gets_eacces() {
    if !kernel_runs("syscall open", "lsm_python_open_gets_eacces") {
        return;
    }
    let lab = Lab::new("sfop");
    let (data, other) = (Dir::new("open"), Dir::new("open-other"));
    let (file, elsewhere) = (data.join("config"), other.join("config"));
    std::fs::write(&file, "x").expect("write");
    std::fs::write(&elsewhere, "x").expect("write");
    let mut inside = Repl::spawn(lab.inside("python3"));
    let mut outside = Repl::spawn(lab.outside("python3"));
    let at_entry = syscall_at_entry_without_path("syscall open");
    let with_path = ["open", "--errno", "EACCES", "--path", data.path()];
    let fault = if at_entry {
        let cgroup = lab.cgroup();
        let mut args = vec!["syscall"];
        args.extend_from_slice(&with_path);
        args.extend_from_slice(&["--cgroup", &cgroup, "--duration", "10s"]);
        let (code, out, err) = chaos_via(lab.chaos_cmd(), &args);
        assert_eq!(code, 1, "--path refused at syscall entry: {out} {err}");
        assert!(err.contains("kprobe") && err.contains("--path"), "{err}");
        assert_eq!(inside.call(&format!("open {file}")), 0, "nothing attached");
        lab.syscall(&["open", "--errno", "EACCES"])
    } else {
        lab.syscall(&with_path)
    };
    assert_eq!(inside.call(&format!("open {file}")), libc::EACCES);
    assert_eq!(outside.call(&format!("open {file}")), 0, "control");
    if !at_entry {
        assert_eq!(
            inside.call(&format!("open {elsewhere}")),
            0,
            "outside the path"
        );
    }
    let ids = fault.program_ids.clone();
    fault.interrupt();
    assert_eq!(inside.call(&format!("open {file}")), 0, "after the fault");
    assert_programs_gone(&ids);
    drop((inside, outside));
    lab.finish();
}

const SQLITE: &str = r#"
import sqlite3, sys
try:
    db = sqlite3.connect(sys.argv[1])
    db.execute("create table t (x text)")
    db.executemany("insert into t values (?)", [("y" * 1000,)] * 200)
    db.commit()
    print("ok")
except sqlite3.Error as e:
    print(e)
"#;

/// SQLite under write ENOSPC reports "database or disk is full"; outside the cgroup it works.
#[test]
fn lsm_sqlite_reports_disk_full() {
    if !kernel_runs("syscall write", "lsm_sqlite_reports_disk_full") {
        return;
    }
    let lab = Lab::new("sfsq");
    let data = Dir::new("sqlite");
    let fault = lab.syscall(&["write", "--errno", "ENOSPC", "--path", data.path()]);
    let run = |mut cmd: std::process::Command, db: &str| {
        let out = cmd.args(["-c", SQLITE, db]).output().expect("python3");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        run(lab.inside("python3"), &data.join("in.db")),
        "database or disk is full"
    );
    assert_eq!(run(lab.outside("python3"), &data.join("out.db")), "ok");
    let ids = fault.program_ids.clone();
    fault.interrupt();
    assert_programs_gone(&ids);
    // The victim recovers: a database under the same path, written from inside, works again.
    assert_eq!(run(lab.inside("python3"), &data.join("after.db")), "ok");
    lab.finish();
}

/// --after 3 --times 2 for one process (--pid): calls 4 and 5 fail, every other succeeds,
/// another process in the same cgroup is not counted, and the audit stream names both faults.
#[test]
fn lsm_after_and_times_are_exact() {
    if !kernel_runs("syscall write", "lsm_after_and_times_are_exact") {
        return;
    }
    let lab = Lab::new("sfat");
    let data = Dir::new("after");
    let mut victim = Repl::spawn(lab.inside("python3"));
    let mut neighbour = Repl::spawn(lab.inside("python3"));
    let pid = victim.pid();
    let events = TempPath::new("sf-events");
    let mut args = vec!["syscall", "write", "--errno", "EIO", "--path", data.path()];
    args.extend_from_slice(&["--after", "3", "--times", "2", "--pid", &pid]);
    args.extend_from_slice(&["--events", events.as_str()]);
    args.extend_from_slice(&["--duration", "120s"]);
    let fault = Running::start_via(lab.chaos_cmd(), &args);
    let write = format!("write {}", data.join("f"));
    assert_eq!(neighbour.calls(&write, 3), vec![0; 3], "neighbour");
    let eio = libc::EIO;
    assert_eq!(
        victim.calls(&write, 8),
        vec![0, 0, 0, eio, eio, 0, 0, 0],
        "victim"
    );
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(s["injected"], 2, "{s}");
    assert_eq!(s["over_budget"], 3, "{s}");
    let ev = read_events(&events.0);
    assert_eq!(ev.len(), 2, "one event per injected fault: {ev:?}");
    for e in &ev {
        assert_eq!(e["syscall"], "write", "{e}");
        assert_eq!(e["errno"], "EIO", "{e}");
        assert_eq!(e["pid"].to_string(), pid, "{e}");
    }
    assert_programs_gone(&ids);
    drop((victim, neighbour));
    lab.finish();
}

/// One fault per remaining hook, each with a real call from Python: fork, mkdir, unlink, read,
/// listen and accept (filtered by local port).
#[test]
fn lsm_process_and_directory_syscalls() {
    if !kernel_runs("syscall fork", "lsm_process_and_directory_syscalls") {
        return;
    }
    let lab = Lab::new("sfpd");
    let data = Dir::new("dirs");
    let file = data.join("r");
    std::fs::write(&file, "x").expect("write");
    let mut victim = Repl::spawn(lab.inside("python3"));
    let mut control = Repl::spawn(lab.outside("python3"));
    let cases = [
        ("fork", "EAGAIN", libc::EAGAIN, "fork".to_string(), false),
        (
            "mkdir",
            "EROFS",
            libc::EROFS,
            format!("mkdir {}", data.join("d")),
            true,
        ),
        (
            "unlink",
            "EBUSY",
            libc::EBUSY,
            format!("unlink {}", data.join("u")),
            true,
        ),
        ("read", "EIO", libc::EIO, format!("read {file}"), true),
        (
            "listen",
            "EADDRINUSE",
            libc::EADDRINUSE,
            "listen 10.77.0.1 7100".into(),
            false,
        ),
        (
            "accept",
            "ECONNABORTED",
            libc::ECONNABORTED,
            "accept 10.77.0.1 7101".into(),
            false,
        ),
    ];
    for (name, errno, want, call, with_path) in cases {
        let mut args = vec![name, "--errno", errno];
        // Kprobes at syscall entry take --path only for calls on a descriptor (read here).
        let with_path = with_path && !syscall_at_entry_without_path(&format!("syscall {name}"));
        if with_path {
            args.extend_from_slice(&["--path", data.path()]);
        }
        // listen/accept: the local port filter, which another port must not match.
        let port = call.rsplit(' ').next().unwrap_or_default().to_string();
        if matches!(name, "listen" | "accept") {
            args.extend_from_slice(&["--port", &port]);
        }
        let fault = lab.syscall(&args);
        assert_eq!(victim.call(&call), want, "{name} inside");
        assert_eq!(control.call(&call), 0, "{name} outside the cgroup");
        if matches!(name, "listen" | "accept") {
            let other = call.replace(&port, "7199");
            assert_eq!(victim.call(&other), 0, "{name} on another port");
        }
        let ids = fault.program_ids.clone();
        let s = fault.interrupt();
        assert_eq!(s["injected"], 1, "{name}: {s}");
        assert_programs_gone(&ids);
        assert_eq!(victim.call(&call), 0, "{name} inside, after the fault");
    }
    drop((victim, control));
    lab.finish();
}

/// Puts a sysctl back as it was when dropped.
struct Sysctl(&'static str, String);

impl Sysctl {
    fn set(path: &'static str, value: &str) -> Sysctl {
        let old = std::fs::read_to_string(path).expect("read sysctl");
        std::fs::write(path, value).expect("write sysctl");
        Sysctl(path, old)
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0, self.1.trim());
    }
}

/// An optimized kprobe (a jump instead of a breakpoint, where the function has no ftrace site)
/// ignores bpf_override_return: chaos must refuse rather than count faults that never happen.
#[test]
fn lsm_kprobe_refuses_optimized_probes() {
    if !kernel_runs("syscall write", "lsm_kprobe_refuses_optimized_probes") {
        return;
    }
    let detail = chaos_tests::doctor_detail("syscall write");
    if !detail.starts_with("kprobe") {
        let allowed = chaos_tests::expect::syscall_hook() != Some("kprobe");
        let why = format!("needs the kprobe backend; write uses {detail}");
        chaos_tests::expect::skip("lsm_kprobe_refuses_optimized_probes", &why, allowed);
        return;
    }
    let lab = Lab::new("sfkp");
    let dir = Dir::new("kp");
    let (ok, err) = dd(lab.inside("dd"), &dir.join("before"));
    assert!(ok, "{err}");
    let optimizing = Sysctl::set("/proc/sys/debug/kprobes-optimization", "1");
    let err = write_fault_refused(&lab);
    assert!(
        err.contains("optimized") && err.contains("debug.kprobes-optimization=0"),
        "names the cause and the fix: {err}"
    );
    let (ok, err) = dd(lab.inside("dd"), &dir.join("f"));
    assert!(ok, "nothing attached: {err}");
    drop(optimizing);
    // Breakpoint probes again: the same fault now works.
    let fault = lab.syscall(&["write", "--errno", "ENOSPC"]);
    let (ok, err) = dd(lab.inside("dd"), &dir.join("g"));
    assert!(!ok && err.contains("No space left on device"), "{err}");
    let ids = fault.program_ids.clone();
    fault.interrupt();
    assert_programs_gone(&ids);
    lab.finish();
}

/// Where the kernel refuses every file-syscall backend (this development machine's), a file
/// fault fails with each backend's reason and what would work, and nothing is attached.
#[test]
fn unsupported_file_fault_names_every_backend() {
    if chaos_tests::doctor_lists("syscall write") {
        let why = format!(
            "this kernel runs write faults ({})",
            chaos_tests::doctor_detail("syscall write")
        );
        let allowed = chaos_tests::expect::syscall_hook() != Some("none");
        chaos_tests::expect::skip("unsupported_file_fault_names_every_backend", &why, allowed);
        return;
    }
    let lab = Lab::new("sfno");
    let err = write_fault_refused(&lab);
    for needle in [
        "BPF LSM:",
        "fmod_ret on security_file_permission:",
        "kprobe:",
        "connect, sendmsg and bind faults work",
        "lsm=...,bpf",
        "CONFIG_BPF_KPROBE_OVERRIDE",
    ] {
        assert!(err.contains(needle), "names {needle:?}: {err}");
    }
    // Each backend got as far as the kernel's answer: the fmod_ret program was relocated
    // against every map of the loaded object (an LRU map once went missing there, which only
    // the guests that run fmod_ret showed).
    assert!(
        err.contains("BPF_PROG_LOAD (fmod_ret) refused"),
        "the kernel refused fmod_ret, not chaos: {err}"
    );
    lab.assert_nothing_attached();
    lab.finish();
}

/// Runs a write fault on the lab's cgroup that chaos must refuse (exit 1); its stderr.
fn write_fault_refused(lab: &Lab) -> String {
    let cgroup = lab.cgroup();
    let args = [
        "syscall",
        "write",
        "--errno",
        "ENOSPC",
        "--cgroup",
        &cgroup,
        "--duration",
        "5s",
    ];
    let (code, out, err) = chaos_via(lab.chaos_cmd(), &args);
    assert_eq!(code, 1, "refused: {out} {err}");
    err
}
