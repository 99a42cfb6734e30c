//! `chaos run`: experiments against a real HTTP service in its own cgroup and namespace, with
//! the dependency it calls in another namespace. The fault is the dependency refusing
//! connections (connect ECONNREFUSED in the service's cgroup), which this kernel carries.
//! Each test checks the report, a control outside the cgroup, and that nothing is left.

use chaos_tests::{
    assert_programs_gone,
    lab::Lab,
    service::{DEP_HOST, DEP_PORT, SERVICE_ADDR},
};
use serde_json::Value;
use std::{path::PathBuf, time::Instant};

/// A scratch directory for an experiment file and its report; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("chaos-exp-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
    fn file(&self, yaml: &str) -> String {
        let f = self.0.join("experiment.yaml");
        std::fs::write(&f, yaml).expect("write experiment");
        f.to_string_lossy().into_owned()
    }
    fn report_dir(&self) -> String {
        self.0.join("report").to_string_lossy().into_owned()
    }
    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.0.join("report/report.json")).expect("report.json");
        serde_json::from_str(&text).expect("report is JSON")
    }
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join("report").join(name)).expect(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The experiment: `home` (GET /) and a control (a process in the service's namespace but
/// outside its cgroup connecting to the dependency), plus `probes`; the dependency refused
/// for the service from `start` for `len`; then `tail` (abort: ... etc.).
fn experiment(lab: &Lab, probes: &str, start: &str, len: &str, total: &str, tail: &str) -> String {
    format!(
        r#"name: dependency down
hypothesis: the home page stays up while the dependency refuses connections
target:
  cgroup: {cgroup}
duration: {total}
steady_state:
  interval: 300ms
  probes:
    - name: home
      http:
        url: http://{SERVICE_ADDR}/
        status: 200
      timeout: 5s
    - name: control
      tcp: {DEP_HOST}:{DEP_PORT}
      interval: 1s
      timeout: 5s
{probes}faults:
  - name: dep-refused
    start: {start}
    duration: {len}
    syscall:
      name: connect
      errno: ECONNREFUSED
      dst: {DEP_HOST}
      dport: {DEP_PORT}
{tail}"#,
        cgroup = lab.cgroup(),
    )
}

const DEP_PROBE: &str = r#"    - name: dep
      http:
        url: http://10.77.0.1:8080/dep
      timeout: 5s
"#;

fn probe<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["probes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no probe {name} in {report}"))
}

fn program_ids(report: &Value) -> Vec<u64> {
    ids_of(&report["faults"][0])
}

fn ids_of(fault: &Value) -> Vec<u64> {
    fault["program_ids"]
        .as_array()
        .expect("program ids")
        .iter()
        .filter_map(Value::as_u64)
        .collect()
}

/// The control probe (a TCP connect to the dependency by chaos itself, outside the cgroup; no
/// interpreter to start, which took seconds in emulated guests) ran during the fault and never
/// failed: the fault stayed in the cgroup.
fn assert_control_untouched(report: &Value) {
    let c = probe(report, "control");
    assert!(c["samples_during_faults"].as_u64() > Some(0), "{c}");
    assert_eq!(c["failures_during_faults"], 0, "control was faulted: {c}");
}

/// The SVG parses as XML and shades the fault's window where the report says it was.
fn assert_svg_shows_fault(svg: &str, report: &Value) {
    let doc = roxmltree::Document::parse(svg).expect("timeline.svg is well-formed XML");
    let window = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("fault-window"))
        .expect("a fault window in the SVG");
    assert_eq!(window.attribute("data-fault"), Some("dep-refused"));
    let start: f64 = window
        .attribute("data-start")
        .expect("start")
        .parse()
        .expect("num");
    let attached = report["faults"][0]["attached_s"]
        .as_f64()
        .expect("attached");
    assert!((start - attached).abs() < 0.01, "{start} vs {attached}");
    assert!(
        doc.descendants()
            .any(|n| n.attribute("class") == Some("probe"))
    );
}

/// A second fault, of the other family, overlapping the first: the service's TCP answers are
/// duplicated on their way out (harmless to TCP).
fn second_phase(lab: &Lab) -> String {
    format!(
        r#"  - name: dup-answers
    start: 2s
    duration: 3s
    net:
      action: duplicate
      iface: {}
      netns: {}
      protocol: tcp
"#,
        lab.sb.client_if, lab.sb.client_ns
    )
}

#[test]
fn experiment_hypothesis_holds() {
    let lab = Lab::new("exok");
    let svc = lab.http_service();
    let s = Scratch::new("ok");
    let file = s.file(&experiment(&lab, "", "1s", "3s", "6s", &second_phase(&lab)));
    let users = lab.poll_dep();
    let (code, out, err) = lab.chaos_run(&["run", &file, "--report", &s.report_dir()]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let seen = users.stop();
    assert_eq!(code, 0, "exit 0 when the hypothesis holds\n{out}\n{err}");
    // The users' side, not chaos's counters: the dependency worked, then was refused (502),
    // then worked again after the experiment.
    let codes: Vec<u16> = seen.iter().map(|s| s.1).collect();
    let first_502 = codes.iter().position(|&c| c == 502);
    assert!(
        codes.first() == Some(&200)
            && first_502.is_some()
            && codes.last() == Some(&200)
            && !codes.contains(&0),
        "users saw {seen:?}"
    );
    assert!(out.contains("hypothesis HELD"), "{out}");
    let r = s.report();
    assert_eq!(r["outcome"], "held", "{r}");
    // Every GET / made the service connect to its dependency, inside the cgroup: refused.
    let f = &r["faults"][0];
    assert!(
        f["injected"].as_u64() > Some(0),
        "the fault never reached the service: {f}"
    );
    // Phases: each fault attached at its own offset and detached at its end, overlapping.
    let dup = &r["faults"][1];
    assert!(dup["injected"].as_u64() > Some(0), "{dup}");
    let window = |f: &Value| {
        let t = |k: &str| f[k].as_f64().unwrap_or(-1.0);
        (t("attached_s"), t("detached_s"))
    };
    let ((a0, d0), (a1, d1)) = (window(f), window(dup));
    assert!((1.0..1.5).contains(&a0) && (4.0..4.5).contains(&d0), "{f}");
    assert!(
        (2.0..2.5).contains(&a1) && (5.0..5.5).contains(&d1),
        "{dup}"
    );
    assert_eq!(probe(&r, "home")["failures"], 0);
    assert_control_untouched(&r);
    assert!(r["recovery"]["recovered"] == true, "{}", r["recovery"]);
    assert_svg_shows_fault(&s.read("timeline.svg"), &r);
    assert!(s.read("report.md").contains("Result: **held**"));
    assert_programs_gone(&program_ids(&r));
    assert_programs_gone(&ids_of(dup));
    drop(svc);
    lab.finish();
}

#[test]
fn experiment_hypothesis_fails_names_probe_and_time() {
    let lab = Lab::new("exno");
    let svc = lab.http_service();
    let s = Scratch::new("no");
    let file = s.file(&experiment(&lab, DEP_PROBE, "1s", "3s", "5s", ""));
    let (code, out, err) = lab.chaos_run(&["run", &file, "--report", &s.report_dir()]);
    assert_eq!(
        code, 1,
        "exit 1 when the hypothesis does not hold\n{out}\n{err}"
    );
    let r = s.report();
    assert_eq!(r["outcome"], "not_held", "{r}");
    let dep = probe(&r, "dep");
    assert_eq!(dep["within_tolerance"], false);
    let first = dep["first_failure"]["t_s"]
        .as_f64()
        .expect("first failure time");
    // t_s is when the probe was sent: one sent just before the attach can fail because of it.
    let answered = first
        + dep["first_failure"]["latency_ms"]
            .as_f64()
            .expect("latency")
            / 1e3;
    let attached = r["faults"][0]["attached_s"].as_f64().expect("attached");
    let detached = r["faults"][0]["detached_s"].as_f64().expect("detached");
    assert!(
        answered >= attached && first < detached,
        "probe in flight [{first}, {answered}] outside the fault [{attached}, {detached})"
    );
    assert!(
        dep["first_failure"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("502")),
        "{dep}"
    );
    let reason = r["reasons"][0].as_str().unwrap_or("");
    assert!(
        reason.contains("probe 'dep'") && reason.contains("first failure at"),
        "{reason}"
    );
    assert!(s.read("report.md").contains("did not hold"));
    assert_control_untouched(&r);
    // The dependency answered again after the rollback.
    assert_eq!(r["recovery"]["recovered"], true, "{}", r["recovery"]);
    assert_programs_gone(&program_ids(&r));
    drop(svc);
    lab.finish();
}

#[test]
fn experiment_aborts_and_rolls_back_within_one_interval() {
    let lab = Lab::new("exab");
    let svc = lab.http_service();
    let s = Scratch::new("ab");
    let abort = "abort:\n  consecutive_failures: 2\n";
    let file = s.file(&experiment(&lab, DEP_PROBE, "1s", "60s", "61s", abort));
    let t = Instant::now();
    let (code, out, err) = lab.chaos_run(&["run", &file, "--report", &s.report_dir()]);
    let took = t.elapsed();
    assert_eq!(
        code, 1,
        "an abort means the hypothesis did not hold\n{out}\n{err}"
    );
    assert!(took.as_secs() < 40, "not aborted early: took {took:?}");
    let r = s.report();
    assert_eq!(r["outcome"], "aborted", "{r}");
    let a = &r["abort"];
    assert_eq!(a["probe"], "dep", "{a}");
    let (tripped, back) = (a["tripped_s"].as_f64(), a["rolled_back_s"].as_f64());
    let (tripped, back) = (tripped.expect("tripped"), back.expect("rolled back"));
    assert!(
        back - tripped < 0.3,
        "rollback {back} not within one interval of {tripped}"
    );
    assert!(r["faults"][0]["detached_s"].as_f64() <= Some(back + 0.01));
    assert!(
        err.contains("ABORT"),
        "no abort line in the progress log: {err}"
    );
    assert_programs_gone(&program_ids(&r));
    drop(svc);
    lab.finish();
}

#[test]
fn experiment_dry_run_injects_nothing() {
    let lab = Lab::new("exdr");
    let svc = lab.http_service();
    let s = Scratch::new("dr");
    let file = s.file(&experiment(&lab, DEP_PROBE, "1s", "3s", "4s", ""));
    let (code, out, err) = lab.chaos_run(&["run", "--dry-run", &file, "--report", &s.report_dir()]);
    assert_eq!(
        code, 0,
        "nothing injected, so dep never fails\n{out}\n{err}"
    );
    let r = s.report();
    assert_eq!(r["dry_run"], true);
    assert_eq!(probe(&r, "dep")["failures"], 0, "{r}");
    // The blast radius: the connects that would have failed.
    assert!(
        r["faults"][0]["injected"].as_u64() > Some(0),
        "{}",
        r["faults"][0]
    );
    assert!(s.read("report.md").contains("dry run"));
    assert_programs_gone(&program_ids(&r));
    drop(svc);
    lab.finish();
}

#[test]
fn experiment_refuses_an_unhealthy_system() {
    let lab = Lab::new("exuh");
    // No service: the steady state is not met.
    let s = Scratch::new("uh");
    let file = s.file(&experiment(&lab, "", "1s", "3s", "4s", ""));
    let (code, _, err) = lab.chaos_run(&["run", &file, "--report", &s.report_dir()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("steady state not met") && err.contains("probe 'home'"),
        "{err}"
    );
    assert!(err.contains("nothing was injected"), "{err}");
    assert!(
        !s.0.join("report").exists(),
        "no report for an experiment that did not start"
    );
    lab.finish();
}

/// Bad files: exit 2, the line or the field and the fix, nothing attached.
#[test]
fn experiment_invalid_files_are_refused_with_the_line() {
    let lab = Lab::new("exbad");
    let s = Scratch::new("bad");
    let good = experiment(&lab, "", "1s", "3s", "4s", "");
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("    start: 1s", "    start: 1s\n    strat: 2s"),
            "unknown field `strat`",
        ),
        (
            good.replace("errno: ECONNREFUSED", "errno: ENOSPC"),
            "ECONNREFUSED",
        ),
        (
            good.replace("duration: 3s", "duration: 30s"),
            "must end within",
        ),
        (good.replace("status: 200", "status: twohundred"), "status"),
        (
            good.replace("duration: 4s", "duration: soon"),
            "not a duration",
        ),
        (
            good.replace("target:\n", "target:\n  pid: 1\n"),
            "exactly one",
        ),
        (
            good.replace("name: connect", "name: conect"),
            "unknown syscall",
        ),
    ];
    for (yaml, want) in cases {
        let file = s.file(&yaml);
        let (code, out, err) = lab.chaos_run(&["run", &file, "--report", &s.report_dir()]);
        assert_eq!(code, 2, "{want}: {out} {err}");
        assert!(err.contains(want), "expected '{want}' in: {err}");
        assert!(err.contains(&file), "the error names the file: {err}");
        lab.assert_nothing_attached();
    }
    // serde errors carry the line of the offending key.
    let bad = good.replace("    start: 1s", "    start: 1s\n    strat: 2s");
    let line = bad
        .lines()
        .position(|l| l.contains("strat:"))
        .expect("line")
        + 1;
    let (_, _, err) = lab.chaos_run(&["run", &s.file(&bad)]);
    assert!(
        err.contains(&format!("line {line}")),
        "line {line} not named: {err}"
    );
    // Files that cannot be read are bad input too (2), never "the hypothesis did not hold" (1).
    let binary = s.0.join("binary.yaml");
    std::fs::write(&binary, [0xff_u8, 0xfe, 0x00, 0x80]).expect("write");
    let missing = s.0.join("missing.yaml");
    for path in [missing.as_path(), s.0.as_path(), binary.as_path()] {
        let path = path.to_str().expect("utf-8");
        let (code, out, err) = lab.chaos_run(&["run", path]);
        assert_eq!(code, 2, "{path}: {out} {err}");
        assert!(err.contains(path) && err.contains("cannot read"), "{err}");
    }
    lab.assert_nothing_attached();
    lab.finish();
}

/// SIGINT in the middle of a fault: everything is rolled back, the report says so, exit 2.
#[test]
fn experiment_interrupted_rolls_back() {
    let lab = Lab::new("exint");
    let svc = lab.http_service();
    let s = Scratch::new("int");
    let file = s.file(&experiment(&lab, "", "0s", "60s", "60s", ""));
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", lab.sb.server_ns))
        .arg(chaos_tests::chaos_bin())
        .args(["run", &file, "--report", &s.report_dir()])
        .env("CHAOS_STATE_DIR", &lab.state_dir)
        .env("CHAOS_PIN_DIR", &lab.pin_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("chaos run");
    // Wait for the attach, seen from the kernel side: a program on the cgroup.
    let t = Instant::now();
    while !lab.attachments().contains("connect4") {
        assert!(t.elapsed().as_secs() < 60, "fault never attached");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // nsenter execs chaos, so the child's pid is chaos's.
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("chaos run ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let r = s.report();
    assert_eq!(r["outcome"], "interrupted", "{r}");
    assert!(
        r["reasons"][0]
            .as_str()
            .is_some_and(|m| m.contains("SIGINT")),
        "{r}"
    );
    assert!(
        r["faults"][0]["detached_s"].as_f64() < Some(30.0),
        "{}",
        r["faults"][0]
    );
    assert_programs_gone(&program_ids(&r));
    drop(svc);
    lab.finish();
}
