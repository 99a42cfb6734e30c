//! `chaos kill`: a container's init process killed and the runtime seen to report it exited; the
//! time until the kubelet (the test, through CRI) runs it again; Chaos Monkey rounds with
//! `--mode one`; a cgroup's processes; the guards.

use chaos_tests::{
    chaos,
    kubelet::{Network, node_for},
};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const SLEEP: &[&str] = &["sleep", "1000000"];
const EXITED: i32 = 2; // CONTAINER_EXITED
const RUNNING: i32 = 1;

fn events(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn of(evs: &[Value], kind: &str) -> Vec<Value> {
    evs.iter().filter(|e| e["event"] == kind).cloned().collect()
}

#[test]
fn kill_a_container_and_the_runtime_reports_it_exited() {
    let Some(mut node) = node_for("kill_a_container_and_the_runtime_reports_it_exited") else {
        return;
    };
    let web0 = node.run_pod("shop", "web-0", &[], Network::Pod);
    let app = node.run_container(&web0, "app", SLEEP);
    let sidecar = node.run_container(&web0, "sidecar", SLEEP);
    let pid = node.pid(&app);
    let ep = node.endpoint.to_string_lossy().into_owned();
    let (code, out, err) = chaos(&[
        "--json",
        "kill",
        "--pod",
        "shop/web-0",
        "--container",
        "app",
        "--recovery-timeout",
        "1s",
        "--runtime-endpoint",
        &ep,
    ]);
    assert_eq!(code, 0, "{err}");
    let evs = events(&out);
    let killed = of(&evs, "killed");
    assert_eq!(killed.len(), 1, "{out}");
    assert_eq!(killed[0]["pid"], pid as u64);
    assert_eq!(killed[0]["comm"], "sleep");
    assert_eq!(killed[0]["target"], "shop/web-0/app");
    assert_eq!(killed[0]["signal"], "SIGKILL");
    assert_eq!(
        of(&evs, "not_recovered").len(),
        1,
        "no kubelet here to restart it: {out}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.container_state(&app).0 != EXITED {
        assert!(Instant::now() < deadline, "the runtime did not see it exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        node.container_state(&app).1,
        137,
        "killed by SIGKILL (128 + 9)"
    );
    assert_eq!(
        node.container_state(&sidecar).0,
        RUNNING,
        "the sibling is spared"
    );
}

#[test]
fn time_to_recover_when_the_kubelet_runs_the_container_again() {
    let Some(mut node) = node_for("time_to_recover_when_the_kubelet_runs_the_container_again")
    else {
        return;
    };
    let web0 = node.run_pod("shop", "web-0", &[], Network::Pod);
    let app = node.run_container(&web0, "app", SLEEP);
    let ep = node.endpoint.to_string_lossy().into_owned();
    let mut child = Command::new(chaos_tests::chaos_bin())
        .args([
            "--json",
            "kill",
            "--pod",
            "shop/web-0",
            "--recovery-timeout",
            "20s",
        ])
        .args(["--runtime-endpoint", &ep])
        .stdout(Stdio::piped())
        .spawn()
        .expect("chaos kill");
    // Act as the kubelet: once the runtime reports the exit, start attempt 1.
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.container_state(&app).0 != EXITED {
        assert!(Instant::now() < deadline, "not killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let again = node.start_attempt(&web0, "app", SLEEP, 1);
    let new_pid = node.pid(&again);
    let out = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .map_while(Result::ok)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(child.wait().expect("wait").success(), "{out}");
    let evs = events(&out);
    let rec = of(&evs, "recovered");
    assert_eq!(rec.len(), 1, "{out}");
    assert_eq!(rec[0]["pid"], new_pid as u64);
    assert_eq!(rec[0]["container_id"], again.as_str());
    let after = rec[0]["after_ms"].as_u64().expect("after_ms");
    println!("time to recover: {after} ms");
    assert!(
        (300..10_000).contains(&after),
        "from the kill to the restart: {after} ms"
    );
    let s = of(&evs, "summary");
    assert_eq!(
        (s[0]["killed"].as_u64(), s[0]["recovered"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn chaos_monkey_rounds_kill_one_replica_each() {
    let Some(mut node) = node_for("chaos_monkey_rounds_kill_one_replica_each") else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..3 {
        let pod = node.run_pod("shop", &format!("api-{i}"), &[("app", "api")], Network::Pod);
        ids.push(node.run_container(&pod, "app", SLEEP));
    }
    let ep = node.endpoint.to_string_lossy().into_owned();
    let (code, out, err) = chaos(&[
        "--json",
        "kill",
        "--selector",
        "app=api",
        "--namespace",
        "shop",
        "--mode",
        "one",
        "--every",
        "1s",
        "--duration",
        "2500ms",
        "--recovery-timeout",
        "200ms",
        "--runtime-endpoint",
        &ep,
    ]);
    assert_eq!(code, 0, "{err}");
    let evs = events(&out);
    let killed = of(&evs, "killed");
    let rounds: Vec<u64> = killed
        .iter()
        .map(|k| k["round"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        rounds,
        [1, 2, 3],
        "one kill per round at 0, 1 and 2 s: {out}"
    );
    let mut targets: Vec<&str> = killed
        .iter()
        .map(|k| k["target"].as_str().unwrap_or(""))
        .collect();
    targets.sort_unstable();
    targets.dedup();
    assert_eq!(
        targets.len(),
        3,
        "a running replica each time (no kubelet restarts them): {out}"
    );
    for id in &ids {
        assert_eq!(node.container_state(id).0, EXITED);
    }
}

#[test]
fn kill_a_cgroup_spares_a_process_outside_and_guards_refuse_pid_1() {
    chaos_tests::require_root();
    let mount = chaos::cgroup::v2_mount().expect("cgroup v2");
    let dir = mount.join(format!("chaos-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cgroup");
    let spawn = || Command::new("sleep").arg("60").spawn().expect("sleep");
    let (mut inside, mut outside) = (spawn(), spawn());
    std::fs::write(dir.join("cgroup.procs"), inside.id().to_string()).expect("move");
    let cg = dir.to_string_lossy().into_owned();
    let (code, out, err) = chaos(&["--json", "kill", "--cgroup", &cg, "--signal", "TERM"]);
    assert_eq!(code, 0, "{err}");
    let killed = of(&events(&out), "killed");
    assert_eq!(killed.len(), 1, "{out}");
    assert_eq!(killed[0]["pid"], inside.id() as u64);
    assert_eq!(killed[0]["signal"], "SIGTERM");
    let status = inside.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM)
    );
    assert!(
        outside.try_wait().expect("try_wait").is_none(),
        "outside spared"
    );
    let _ = outside.kill();
    let _ = outside.wait();
    let up = format!("{cg}/..");
    for (args, words) in [
        (vec!["kill", "--pid", "1"], "PID 1"),
        (vec!["kill", "--cgroup", "/"], "root cgroup"),
        // `..` leads to the root cgroup: refused like it, not a way around the guard.
        (vec!["kill", "--cgroup", &up], "root cgroup"),
        (
            vec![
                "syscall",
                "connect",
                "--errno",
                "EPERM",
                "--cgroup",
                &up,
                "--duration",
                "5s",
            ],
            "root cgroup",
        ),
        (
            vec!["kill", "--cgroup", &cg, "--signal", "SIGFOO"],
            "--signal",
        ),
    ] {
        let (code, _, err) = chaos(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir(&dir);
}
