//! `chaos stress cpu|memory` on real cgroups: a memory stress over a cgroup's limit ends in an
//! OOM kill of the worker (not of the target's own process), a CPU stress at 50 % raises its
//! cgroup's CPU usage by about half a CPU and no other cgroup's, nothing is left after a run or
//! a SIGKILL of chaos (the workers die with it), and bad input starts nothing.
//!
//! On this hybrid host the memory limit is a v1 memory cgroup's `memory.limit_in_bytes`; on a
//! unified kernel (the VM guests) it is the v2 `memory.max`, with the memory controller enabled
//! for the root's children. Each test names its cgroups uniquely and removes them.

use chaos_tests::{chaos_bin, chaos_via, expect};
use serde_json::Value;
use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A test's cgroups: one in the v2 hierarchy and, where asked, in v1 hierarchies; a process
/// `sleep` placed in all of them. Killed and removed on drop.
struct Group {
    dirs: Vec<PathBuf>,
    victim: Child,
}

impl Group {
    /// `v1`: the v1 hierarchies (by controller) to add the victim to, when mounted.
    fn new(tag: &str, v1: &[&str]) -> Group {
        chaos_tests::require_root();
        let name = format!("chaos-stress-{tag}-{}", std::process::id());
        let mut dirs = vec![chaos::cgroup::v2_mount().expect("cgroup v2").join(&name)];
        dirs.extend(v1.iter().filter_map(|c| v1_mount(c)).map(|m| m.join(&name)));
        let victim = Command::new("sleep").arg("120").spawn().expect("sleep");
        for d in &dirs {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            fs::write(d.join("cgroup.procs"), victim.id().to_string())
                .unwrap_or_else(|e| panic!("moving the victim to {}: {e}", d.display()));
        }
        Group { dirs, victim }
    }

    fn v2(&self) -> &Path {
        &self.dirs[0]
    }

    fn dir_of(&self, v1_controller: &str) -> Option<&Path> {
        let m = v1_mount(v1_controller)?;
        self.dirs
            .iter()
            .find(|d| d.starts_with(&m))
            .map(|d| d.as_path())
    }

    fn pid(&self) -> String {
        self.victim.id().to_string()
    }

    fn victim_alive(&mut self) -> bool {
        self.victim.try_wait().expect("try_wait").is_none()
    }

    /// v2 cpu.stat usage_usec.
    fn usage_usec(&self) -> u64 {
        key(&self.v2().join("cpu.stat"), "usage_usec")
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = self.victim.kill();
        let _ = self.victim.wait();
        for d in &self.dirs {
            // A worker killed at the end may take a moment to leave.
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The mount point of the v1 hierarchy holding `controller`, if mounted.
fn v1_mount(controller: &str) -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split_whitespace();
        let point = left.split_whitespace().nth(4)?;
        (r.next()? == "cgroup" && r.nth(1)?.split(',').any(|o| o == controller))
            .then(|| PathBuf::from(point))
    })
}

fn key(file: &Path, k: &str) -> u64 {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{k} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A state directory of this test's own, removed on drop.
struct State(PathBuf);

impl State {
    fn new(tag: &str) -> State {
        State(PathBuf::from(format!(
            "/run/chaos-test/stress-{tag}-{}",
            std::process::id()
        )))
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(chaos_bin());
        c.env("CHAOS_STATE_DIR", &self.0);
        c
    }
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        chaos_via(self.cmd(), args)
    }
    fn records(&self) -> Vec<String> {
        fs::read_dir(&self.0)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".json"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = self.run(&["cleanup"]);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Live processes running `chaos stress-worker ... --fault ID` (zombies have no cmdline).
fn workers_of(fault_id: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let is_worker = args.iter().any(|a| *a == b"stress-worker");
        let ours = args
            .windows(2)
            .any(|w| w[0] == b"--fault" && w[1] == fault_id.as_bytes());
        if is_worker && ours {
            found.push(pid);
        }
    }
    found
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn event<'a>(lines: &'a [Value], kind: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["event"] == kind)
        .unwrap_or_else(|| panic!("no {kind} line in {lines:?}"))
}

/// After a run: no worker of it, no record.
fn assert_nothing_left(state: &State, fault_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !workers_of(fault_id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "workers of {fault_id} still run: {:?}",
            workers_of(fault_id)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        state.records().is_empty(),
        "records left: {:?}",
        state.records()
    );
}

/// Sets a 32 MiB limit on the group's memory cgroup: v1 where the memory hierarchy is
/// mounted (hybrid), else v2 memory.max (the controller enabled for the root's children).
/// None, with the reason, when neither can be had.
fn limit_memory(g: &Group, limit: u64) -> Result<String, String> {
    if let Some(d) = g.dir_of("memory") {
        fs::write(d.join("memory.limit_in_bytes"), limit.to_string())
            .map_err(|e| format!("v1 memory.limit_in_bytes: {e}"))?;
        return Ok(format!("v1 {}", d.display()));
    }
    let root = chaos::cgroup::v2_mount().map_err(|e| e.to_string())?;
    let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Err("no v1 memory hierarchy and no v2 memory controller".into());
    }
    // Enabling it at the root lets the test's own cgroup have memory.max.
    let _ = fs::write(root.join("cgroup.subtree_control"), "+memory");
    let max = g.v2().join("memory.max");
    fs::write(&max, limit.to_string()).map_err(|e| format!("{}: {e}", max.display()))?;
    let _ = fs::write(g.v2().join("memory.swap.max"), "0");
    Ok(format!("v2 {}", g.v2().display()))
}

#[test]
fn memory_stress_over_a_limit_ends_in_an_oom_kill_of_the_worker() {
    let test = "memory_stress_over_a_limit_ends_in_an_oom_kill_of_the_worker";
    let mut g = Group::new("mem", &["memory"]);
    let limited = match limit_memory(&g, 32 << 20) {
        Ok(l) => l,
        Err(why) => {
            // The host must run it; a guest may lack a memory controller.
            return expect::skip(test, &why, expect::host() != Some(true));
        }
    };
    let mut control = Command::new("sleep").arg("120").spawn().expect("control");
    let state = State::new("mem");
    let pid = g.pid();
    let started = Instant::now();
    let (code, out, err) = state.run(&[
        "--json",
        "stress",
        "memory",
        "--size",
        "128MiB",
        "--pid",
        &pid,
        "--duration",
        "20s",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let lines = json_lines(&out);
    let attached = event(&lines, "attached");
    let s = event(&lines, "summary");
    println!("limit in {limited}; summary {s}");
    assert_eq!(s["workers_started"], 1, "{s}");
    assert!(
        s["oom_killed"].as_u64().unwrap_or(0) >= 1,
        "the worker was OOM-killed: {s}"
    );
    assert!(s["oom_kills_in_cgroups"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert_eq!(s["ended"]["by"], "workers_gone", "{s}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "ended when its only worker was killed, not at the deadline"
    );
    assert!(
        attached["memory"][0]
            .as_str()
            .is_some_and(|m| m.contains("32MiB") || m.contains("33554432")),
        "{attached}"
    );
    assert!(
        g.victim_alive(),
        "the OOM killer took the target's own process, not (only) the worker"
    );
    assert!(
        control.try_wait().expect("try_wait").is_none(),
        "outside the cgroup"
    );
    let _ = control.kill();
    let _ = control.wait();
    assert_nothing_left(&state, s["fault_id"].as_str().expect("id"));
}

#[test]
fn cpu_stress_at_half_load_raises_its_cgroups_usage_only() {
    let g = Group::new("cpu", &["cpuacct"]);
    let other = Group::new("idle", &[]);
    let state = State::new("cpu");
    let (u0, o0) = (g.usage_usec(), other.usage_usec());
    let v1 = g.dir_of("cpuacct").map(|d| d.join("cpuacct.usage"));
    let a0 = v1.as_ref().map(|f| key_or_number(f));
    let t0 = Instant::now();
    let (code, out, err) = state.run(&[
        "--json",
        "stress",
        "cpu",
        "--workers",
        "1",
        "--load",
        "50",
        "--pid",
        &g.pid(),
        "--duration",
        "4s",
    ]);
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{out}\n{err}");
    let lines = json_lines(&out);
    let s = event(&lines, "summary");
    let share = (g.usage_usec() - u0) as f64 / 1e6 / wall;
    let other_cpu = (other.usage_usec() - o0) as f64 / 1e6;
    let v1_share = v1
        .as_ref()
        .zip(a0)
        .map(|(f, a0)| (key_or_number(f) - a0) as f64 / 1e9 / wall);
    println!(
        "cgroup v2 usage {share:.3} of a CPU over {wall:.2}s, v1 cpuacct {v1_share:?}, \
         other cgroup {other_cpu:.3}s; summary {s}"
    );
    assert_eq!(s["workers_started"], 1, "{s}");
    assert_eq!(s["ended"]["by"], "deadline", "{s}");
    if expect::host() == Some(false) {
        // Emulated guests: timings are not performance figures; the usage must still rise.
        assert!(share > 0.05, "the cgroup's usage rose: {share}");
    } else {
        assert!(
            (0.25..0.90).contains(&share),
            "about half a CPU in the target's cgroup: {share}"
        );
    }
    if let Some(v1) = v1_share {
        assert!(
            v1 > 0.2,
            "the worker counted in the v1 cpuacct cgroup too: {v1}"
        );
    }
    assert!(other_cpu < 0.05, "another cgroup used {other_cpu}s");
    let cpu_ms = s["cpu_time_ms"].as_u64().unwrap_or(0);
    assert!(cpu_ms > 500, "the summary counts the workers' CPU: {s}");
    assert_nothing_left(&state, s["fault_id"].as_str().expect("id"));
}

/// cpuacct.usage is a bare number.
fn key_or_number(f: &Path) -> u64 {
    fs::read_to_string(f)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn sigkill_of_chaos_kills_its_workers_and_cleanup_leaves_nothing() {
    let g = Group::new("kill", &[]);
    let state = State::new("kill");
    let cg = g.v2().to_string_lossy().into_owned();
    let mut chaos = state
        .cmd()
        .args([
            "--json",
            "stress",
            "cpu",
            "--workers",
            "2",
            "--load",
            "20",
            "--cgroup",
            &cg,
            "--duration",
            "60s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("chaos");
    let mut line = String::new();
    BufReader::new(chaos.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("attached");
    let attached: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(attached["event"], "attached", "{line}");
    let id = attached["fault_id"].as_str().expect("id").to_string();
    let pids: Vec<u32> = attached["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(Value::as_u64)
        .map(|p| p as u32)
        .collect();
    assert_eq!(pids.len(), 2, "{line}");
    let mut running = workers_of(&id);
    running.sort_unstable();
    let mut expected = pids.clone();
    expected.sort_unstable();
    assert_eq!(running, expected, "the workers run the hidden subcommand");
    let procs = fs::read_to_string(g.v2().join("cgroup.procs")).expect("procs");
    for p in &pids {
        assert!(
            procs.lines().any(|l| l == p.to_string()),
            "worker {p} in the target cgroup: {procs}"
        );
    }
    let records = state.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = fs::read_to_string(state.0.join(&records[0])).expect("record");
    for p in &pids {
        assert!(record.contains(&format!("\"pid\": {p}")), "{record}");
    }
    chaos.kill().expect("SIGKILL chaos");
    let killed = Instant::now();
    chaos.wait().expect("reap chaos");
    // At once on the host; an emulated guest's process exit is slower.
    let within = Duration::from_secs(if expect::host() == Some(false) { 5 } else { 1 });
    while !workers_of(&id).is_empty() {
        assert!(
            killed.elapsed() < within,
            "workers outlived chaos: {:?}",
            workers_of(&id)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("workers gone {:?} after SIGKILL of chaos", killed.elapsed());
    let (code, out, err) = state.run(&["cleanup"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_nothing_left(&state, &id);
}

#[test]
fn a_target_process_that_exits_stops_its_workers_with_status_3() {
    let mut g = Group::new("gone", &[]);
    let state = State::new("gone");
    let pid = g.pid();
    let t0 = Instant::now();
    let victim = g.victim.id() as i32;
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: kill on the test's own child, not yet reaped.
        unsafe { libc::kill(victim, libc::SIGTERM) }
    });
    let (code, out, err) = state.run(&[
        "--json",
        "stress",
        "cpu",
        "--load",
        "10",
        "--pid",
        &pid,
        "--duration",
        "30s",
    ]);
    assert_eq!(killer.join().expect("killer"), 0, "kill(2)");
    assert!(!g.victim_alive(), "the target exited");
    assert_eq!(code, 3, "{out}\n{err}");
    let lines = json_lines(&out);
    let s = event(&lines, "summary");
    assert_eq!(s["ended"]["by"], "target_gone", "{s}");
    assert_eq!(s["ended"]["target"], format!("process {pid}"), "{s}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "ended when the target exited, not at the deadline: {s}"
    );
    assert_nothing_left(&state, s["fault_id"].as_str().expect("id"));
}

#[test]
fn bad_stress_input_exits_2_naming_the_flag_and_starts_nothing() {
    let g = Group::new("bad", &[]);
    let state = State::new("bad");
    let cg = g.v2().to_string_lossy().into_owned();
    let up = format!("{cg}/..");
    let t = ["--cgroup", cg.as_str(), "--duration", "5s"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["stress", "memory", "--size", "0"], "--size"),
        (vec!["stress", "memory"], "--size"),
        (vec!["stress", "cpu", "--load", "0"], "--load"),
        (vec!["stress", "cpu", "--load", "101"], "--load"),
        (vec!["stress", "cpu", "--workers", "0"], "--workers"),
        (
            vec!["stress", "memory", "--size", "1M", "--rate", "fast"],
            "--rate",
        ),
    ];
    for (args, flag) in cases {
        let args = [&args[..], &t[..]].concat();
        let (code, out, err) = state.run(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(flag), "{args:?} names {flag}: {err}");
    }
    for (args, words) in [
        (vec!["stress", "cpu", "--duration", "5s"], "--cgroup/--pid"),
        (
            vec!["stress", "cpu", "--cgroup", "/", "--duration", "5s"],
            "root cgroup",
        ),
        (
            vec!["stress", "cpu", "--cgroup", &up, "--duration", "5s"],
            "root cgroup",
        ),
        (
            vec!["stress", "cpu", "--pid", "1", "--duration", "5s"],
            "--force",
        ),
        (
            vec!["stress", "cpu", "--cgroup", &cg, "--duration", "25h"],
            "--duration",
        ),
        (
            vec![
                "stress",
                "memory",
                "--size",
                "64TiB",
                "--cgroup",
                &cg,
                "--duration",
                "5s",
            ],
            "more than this machine's memory",
        ),
    ] {
        let (code, out, err) = state.run(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(words), "{args:?} says {words}: {err}");
    }
    let procs = fs::read_to_string(g.v2().join("cgroup.procs")).expect("procs");
    assert_eq!(procs.trim(), g.pid(), "nothing joined the cgroup");
    assert!(state.records().is_empty(), "{:?}", state.records());
    // The dry run prints the plan and starts nothing either.
    let (code, out, err) = state.run(&[
        "--json",
        "stress",
        "memory",
        "--size",
        "64MiB",
        "--cgroup",
        &cg,
        "--duration",
        "5s",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    let plan = &json_lines(&out)[0];
    assert_eq!(plan["event"], "plan", "{out}");
    let procs = fs::read_to_string(g.v2().join("cgroup.procs")).expect("procs");
    assert_eq!(procs.trim(), g.pid(), "a dry run starts nothing");
}

/// The lines of /proc/PID/cgroup for the v2 hierarchy and the v1 memory one, as a set.
fn v2_and_memory(pid: u32) -> Vec<String> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("0::") || l.split(':').nth(1) == Some("memory"))
        .map(|l| l.split_once(':').map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

#[test]
fn stress_on_a_container_runs_its_workers_in_the_containers_cgroups() {
    use chaos_tests::kubelet::{Network, node_for};
    let Some(mut node) =
        node_for("stress_on_a_container_runs_its_workers_in_the_containers_cgroups")
    else {
        return;
    };
    let pod = node.run_pod("shop", "web-0", &[], Network::Pod);
    let app = node.run_container(&pod, "app", &["sleep", "1000000"]);
    let app_pid = node.pid(&app);
    let ep = node.endpoint.to_string_lossy().into_owned();
    let state = State::new("pod");
    let mut chaos = state
        .cmd()
        .args([
            "--json",
            "stress",
            "cpu",
            "--load",
            "10",
            "--pod",
            "shop/web-0",
            "--container",
            "app",
            "--runtime-endpoint",
            &ep,
            "--duration",
            "3s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("chaos");
    let mut lines = BufReader::new(chaos.stdout.take().expect("stdout")).lines();
    let attached: Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("JSON");
    assert_eq!(attached["event"], "attached", "{attached}");
    let worker = attached["workers"][0].as_u64().expect("a worker") as u32;
    let expected = v2_and_memory(app_pid);
    assert!(!expected.is_empty(), "the container's cgroups");
    assert_eq!(
        v2_and_memory(worker),
        expected,
        "the worker is in the container's cgroup v2 and v1 memory cgroup"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(chaos.wait().expect("wait").success(), "{rest:?}");
    let s: Value = serde_json::from_str(rest.last().expect("summary")).expect("JSON");
    assert_eq!(s["workers_started"], 1, "{s}");
    assert_eq!(s["matched"], 1, "one container: {s}");
    assert_nothing_left(&state, s["fault_id"].as_str().expect("id"));
}
