//! Crash faults (`chaos syscall NAME --signal SIG`): a real writer killed exactly at its Nth
//! write under a path, SQLite killed at a commit and recovering the committed rows, the
//! processes and files outside the scope spared, and everything back to normal afterwards.

use chaos_tests::{
    Running, TempPath, assert_programs_gone, kernel_has,
    kubelet::{Network, node_for},
    lab::Lab,
    read_events,
};
use std::{
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{Command, ExitStatus},
};

/// Appends `N` records to DIR/FILE, one write() each, each after a line to DIR/../other.log.
const WRITER: &str = r#"
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
other = os.open(os.path.join(os.path.dirname(os.path.dirname(path)), "other.log"),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for i in range(1, n + 1):
    os.write(other, b"record %d\n" % i)
    os.write(fd, b"record %d\n" % i)
"#;

/// Creates the table if absent, then commits N rows, one per transaction (journal_mode DELETE:
/// a commit syncs the journal, writes and fdatasyncs the database file, then deletes the
/// journal, its commit point).
const SQLITE: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("create table if not exists t(i)")
db.commit()
for i in range(int(sys.argv[2])):
    db.execute("insert into t values (?)", (i,))
    db.commit()
"#;

fn run(mut cmd: Command, script: &str, args: &[&str]) -> ExitStatus {
    cmd.args(["-c", script])
        .args(args)
        .status()
        .expect("python3 runs")
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

struct Dir(std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("chaos-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(d.join("data")).expect("scratch dir");
    Dir(d)
}

/// `write --signal SIGKILL --after 99 --path SPARE --path DATA`: the writer in the cgroup dies
/// at its 100th write under DATA (the second path: every slot is compared), having written 99
/// records there (and 100 elsewhere: other files do not count); the same writer outside the
/// cgroup writes all 200; after the fault it runs normally.
#[test]
fn crash_at_the_nth_write_under_a_path() {
    const TEST: &str = "crash_at_the_nth_write_under_a_path";
    if !kernel_has("send_signal", TEST) {
        return;
    }
    let lab = Lab::new("crw");
    let dir = scratch("crw");
    let data = dir.0.join("data");
    let spare = dir.0.join("spare");
    std::fs::create_dir(&spare).expect("spare dir");
    let events = TempPath::new("crw-events");
    let cg = lab.cgroup();
    let fault = lab.start(&[
        "syscall",
        "write",
        "--signal",
        "SIGKILL",
        "--path",
        spare.to_str().expect("utf-8"),
        "--path",
        data.to_str().expect("utf-8"),
        "--after",
        "99",
        "--cgroup",
        &cg,
        "--duration",
        "60s",
        "--events",
        events.as_str(),
    ]);
    let (victim, control) = (data.join("victim"), data.join("control"));
    let s = run(
        lab.inside("python3"),
        WRITER,
        &[victim.to_str().expect("utf-8"), "200"],
    );
    assert_eq!(
        s.signal(),
        Some(libc::SIGKILL),
        "killed by the fault: {s:?}"
    );
    assert_eq!(
        lines(&victim),
        99,
        "killed at the 100th write under the path, not after"
    );
    assert_eq!(
        lines(&dir.0.join("other.log")),
        100,
        "writes elsewhere pass and do not count"
    );
    let s = run(
        lab.outside("python3"),
        WRITER,
        &[control.to_str().expect("utf-8"), "200"],
    );
    assert!(s.success(), "outside the cgroup: {s:?}");
    assert_eq!(lines(&control), 200);
    let ids = fault.program_ids.clone();
    let summary = fault.interrupt();
    assert_eq!(
        (summary["matched"].as_u64(), summary["injected"].as_u64()),
        (Some(100), Some(1)),
        "{summary}"
    );
    let evs = read_events(&events.0);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(
        (&evs[0]["kind"], &evs[0]["syscall"], &evs[0]["signal"]),
        (&"crash".into(), &"write".into(), &"SIGKILL".into()),
        "{evs:?}"
    );
    assert_programs_gone(&ids);
    let again = data.join("again");
    let s = run(
        lab.inside("python3"),
        WRITER,
        &[again.to_str().expect("utf-8"), "200"],
    );
    assert!(
        s.success() && lines(&again) == 200,
        "after the fault: {s:?}"
    );
    lab.finish();
}

/// SQLite killed (SIGKILL) at the fdatasync of its database file in its 10th commit (the
/// file exists before, with its table, so `--path` names just it, not the journal): reopened,
/// the database passes integrity_check and holds exactly the 9 rows committed before (the hot
/// journal rolls the 10th back). A copy outside the cgroup commits all 20, and once the fault
/// is over the victim's program finishes.
#[test]
fn sqlite_killed_at_a_commit_keeps_the_committed_rows() {
    const TEST: &str = "sqlite_killed_at_a_commit_keeps_the_committed_rows";
    if !kernel_has("send_signal", TEST) {
        return;
    }
    let lab = Lab::new("crs");
    let dir = scratch("crs");
    let (victim, control) = (dir.0.join("data/victim.db"), dir.0.join("data/control.db"));
    for db in [&victim, &control] {
        let s = run(
            Command::new("python3"),
            SQLITE,
            &[db.to_str().expect("utf-8"), "0"],
        );
        assert!(s.success(), "create {}: {s:?}", db.display());
    }
    let cg = lab.cgroup();
    let fault = lab.start(&[
        "syscall",
        "fdatasync",
        "--signal",
        "SIGKILL",
        "--path",
        victim.to_str().expect("utf-8"),
        "--after",
        "9",
        "--cgroup",
        &cg,
        "--duration",
        "60s",
    ]);
    let v = victim.to_str().expect("utf-8");
    let s = run(lab.inside("python3"), SQLITE, &[v, "20"]);
    assert_eq!(s.signal(), Some(libc::SIGKILL), "{s:?}");
    let c = control.to_str().expect("utf-8");
    assert!(run(lab.outside("python3"), SQLITE, &[c, "20"]).success());
    let ids = fault.program_ids.clone();
    let summary = fault.interrupt();
    assert_eq!(summary["injected"].as_u64(), Some(1), "{summary}");
    assert_programs_gone(&ids);
    let count = |db: &str| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); \
                 print(d.execute('pragma integrity_check').fetchone()[0], \
                 d.execute('select count(*) from t').fetchone()[0])",
                db,
            ])
            .output()
            .expect("python3 runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        count(v),
        "ok 9",
        "the 10th commit was cut at its commit point"
    );
    assert_eq!(count(c), "ok 20");
    assert!(run(lab.inside("python3"), SQLITE, &[v, "5"]).success());
    assert_eq!(
        count(v),
        "ok 14",
        "the program runs normally after the fault"
    );
    lab.finish();
}

/// --dry-run: the writer finishes all its records; the summary counts the call that would
/// have been signalled.
#[test]
fn crash_dry_run_counts_and_signals_nothing() {
    const TEST: &str = "crash_dry_run_counts_and_signals_nothing";
    if !kernel_has("send_signal", TEST) {
        return;
    }
    let lab = Lab::new("crd");
    let dir = scratch("crd");
    let data = dir.0.join("data");
    let cg = lab.cgroup();
    let fault = lab.start(&[
        "syscall",
        "write",
        "--signal",
        "SIGKILL",
        "--path",
        data.to_str().expect("utf-8"),
        "--after",
        "9",
        "--times",
        "1",
        "--cgroup",
        &cg,
        "--duration",
        "60s",
        "--dry-run",
    ]);
    let db = data.join("db");
    let s = run(
        lab.inside("python3"),
        WRITER,
        &[db.to_str().expect("utf-8"), "50"],
    );
    assert!(s.success(), "signalled in a dry run: {s:?}");
    assert_eq!(lines(&db), 50);
    let summary = fault.interrupt();
    assert_eq!(
        (summary["matched"].as_u64(), summary["injected"].as_u64()),
        (Some(50), Some(1)),
        "the 10th would have been signalled, once: {summary}"
    );
    lab.finish();
}

/// On a Kubernetes container (CRI): its shell dies by SIGKILL at its next write (to its log,
/// with --all-files; the runtime reports exit code 137), and its sibling, writing the same
/// way, runs on.
#[test]
fn crash_on_one_container_kills_it_and_spares_its_sibling() {
    const TEST: &str = "crash_on_one_container_kills_it_and_spares_its_sibling";
    let Some(mut node) = node_for(TEST) else {
        return;
    };
    if !kernel_has("send_signal", TEST) {
        return;
    }
    let pod = node.run_pod("shop", "db-0", &[], Network::Pod);
    let writer = [
        "sh",
        "-c",
        "while true; do echo x >> /tmp/log; sleep 0.1; done",
    ];
    let app = node.run_container(&pod, "app", &writer);
    let sidecar = node.run_container(&pod, "sidecar", &writer);
    let ep = node.endpoint.to_string_lossy().into_owned();
    let fault = Running::start_via(
        std::process::Command::new(chaos_tests::chaos_bin()),
        &[
            "syscall",
            "write",
            "--signal",
            "SIGKILL",
            "--pod",
            "shop/db-0",
            "--container",
            "app",
            "--all-files",
            "--duration",
            "60s",
            "--runtime-endpoint",
            &ep,
        ],
    );
    const EXITED: i32 = 2;
    const RUNNING: i32 = 1;
    let t = std::time::Instant::now();
    while node.container_state(&app).0 != EXITED {
        if t.elapsed() > std::time::Duration::from_secs(20) {
            let s = fault.interrupt();
            panic!("the container was not killed: {s}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(node.container_state(&app).1, 137, "killed by SIGKILL");
    assert_eq!(
        node.container_state(&sidecar).0,
        RUNNING,
        "the sibling runs on"
    );
    let s = fault.interrupt();
    assert_eq!(s["injected"].as_u64(), Some(1), "{s}");
}

/// A crash fault on a descriptor reads kernel struct offsets: the first start on this kernel
/// parses its BTF, the next finds them in the cache and parses nothing (~200 ms saved here).
#[test]
fn crash_second_start_takes_the_offsets_from_the_cache() {
    const TEST: &str = "crash_second_start_takes_the_offsets_from_the_cache";
    if !kernel_has("send_signal", TEST) {
        return;
    }
    let lab = Lab::new("crc");
    let dir = scratch("crc");
    let data = dir.0.join("data");
    let cg = lab.cgroup();
    let args = [
        "syscall",
        "write",
        "--signal",
        "SIGKILL",
        "--path",
        data.to_str().expect("utf-8"),
        "--cgroup",
        &cg,
        "--dry-run",
        "--duration",
        "100ms",
    ];
    let starts = chaos_tests::kernel_cache::two_starts(&lab, "crc", &args);
    chaos_tests::kernel_cache::assert_second_start_parses_nothing(&starts);
    lab.finish();
}
