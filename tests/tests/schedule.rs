//! `chaos schedule run`: an experiment on a calendar, for real seconds. `@every 3s` with a
//! window that closes 8 s after the start runs exactly the two ticks inside it, each a full
//! experiment with its report; a blackout on today skips every tick; a system unhealthy at a
//! tick is a recorded skip, not a failure. Each run's fault (a connect refusal in the lab's
//! cgroup) is checked through its report; nothing is left attached (lab.finish).

use chaos_tests::lab::Lab;
use chrono::{Duration as Span, Utc};
use serde_json::Value;

/// Why these tests run on the host only.
const WHY: &str = "schedules keep wall-clock time, which TCG emulation stretches past a tick; no kernel feature is involved (the host run has it)";

/// A 1 s experiment refusing the lab's connects to port 7002 while probing `probe` (host:port).
fn experiment(lab: &Lab, probe: &str, schedule: &str) -> String {
    format!(
        r#"name: scheduled refusal
hypothesis: the listener stays reachable
target: {{ cgroup: "{cg}" }}
duration: 1s
steady_state:
  probes:
    - name: listener
      tcp: {probe}
faults:
  - name: refused
    syscall: {{ name: connect, errno: ECONNREFUSED, dport: 7002 }}
recovery:
  timeout: 5s
schedule:
{schedule}
"#,
        cg = lab.cgroup()
    )
}

/// Waits out the last seconds of a UTC day: the windows and blackouts below are today's.
fn not_near_midnight(margin: i64) {
    let now = Utc::now();
    let midnight = (now + Span::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight");
    let left = midnight.and_utc() - now;
    if left < Span::seconds(margin) {
        println!(
            "waiting {} s for the UTC day to turn",
            left.num_seconds() + 1
        );
        std::thread::sleep((left + Span::seconds(1)).to_std().expect("positive"));
    }
}

/// `chaos --json schedule run FILE --for D --report-dir DIR` in the lab: status and events.
fn schedule_run(
    lab: &Lab,
    text: &str,
    dir: &std::path::Path,
    secs: u32,
) -> (i32, Vec<Value>, String) {
    let file = dir.join("e.yaml");
    std::fs::write(&file, text).expect("experiment file");
    let (code, out, err) = lab.chaos_run(&[
        "--json",
        "schedule",
        "run",
        file.to_str().expect("utf-8"),
        "--for",
        &format!("{secs}s"),
        "--report-dir",
        dir.join("reports").to_str().expect("utf-8"),
    ]);
    let events = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (code, events, err)
}

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("chaos-sched-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch");
    d
}

#[test]
fn every_three_seconds_runs_only_inside_its_window() {
    if !chaos_tests::host_only("every_three_seconds_runs_only_inside_its_window", WHY) {
        return;
    }
    not_near_midnight(30);
    let lab = Lab::new("schwin");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let dir = scratch("win");
    // The window closes 8 s from now: ticks at 3 s and 6 s are in it; 9 s and 12 s are not.
    let to = (Utc::now() + Span::seconds(8)).format("%H:%M:%S");
    let schedule = format!("  cron: \"@every 3s\"\n  windows: [{{from: \"00:00\", to: \"{to}\"}}]");
    let (code, events, err) = schedule_run(
        &lab,
        &experiment(&lab, "10.77.0.2:7001", &schedule),
        &dir,
        15,
    );
    println!("{events:#?}");
    assert_eq!(code, 0, "{err}");
    let (runs, ran) = (of(&events, "run"), of(&events, "ran"));
    assert_eq!(
        (runs.len(), ran.len()),
        (2, 2),
        "two ticks in the window: {events:?}"
    );
    let summary = events.last().expect("summary");
    assert_eq!(summary["runs"], 2, "{summary}");
    assert_eq!(summary["outcomes"]["held"], 2, "{summary}");
    for r in ran {
        assert_eq!(r["outcome"], "held");
        let report = std::path::Path::new(r["report"].as_str().expect("report dir"));
        let text = std::fs::read_to_string(report.join("report.json")).expect("a report per run");
        let rep: Value = serde_json::from_str(&text).expect("JSON");
        assert!(
            rep["faults"][0]["attached_s"].is_number(),
            "the fault ran: {rep}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}

#[test]
fn a_blackout_today_skips_every_tick_and_an_unhealthy_system_is_a_skip() {
    const TEST: &str = "a_blackout_today_skips_every_tick_and_an_unhealthy_system_is_a_skip";
    if !chaos_tests::host_only(TEST, WHY) {
        return;
    }
    not_near_midnight(30);
    let lab = Lab::new("schblk");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let dir = scratch("blk");
    let today = Utc::now().format("%Y-%m-%d");
    let schedule = format!("  cron: \"@every 2s\"\n  blackouts: [\"{today}\"]");
    let (code, events, err) = schedule_run(
        &lab,
        &experiment(&lab, "10.77.0.2:7001", &schedule),
        &dir,
        5,
    );
    assert_eq!(code, 0, "{err}");
    let skips = of(&events, "skip");
    assert!(of(&events, "run").is_empty(), "{events:?}");
    assert!(skips.len() >= 2, "{events:?}");
    assert!(
        skips
            .iter()
            .all(|s| s["why"] == format!("blackout {today}")),
        "{skips:?}"
    );
    // Nothing listens on 7009: each tick finds the system unhealthy and skips, exit 0.
    let schedule = "  cron: \"@every 2s\"";
    let (code, events, err) =
        schedule_run(&lab, &experiment(&lab, "10.77.0.2:7009", schedule), &dir, 5);
    assert_eq!(code, 0, "skips are not failures: {err}");
    let summary = events.last().expect("summary");
    println!("unhealthy: {summary}");
    assert_eq!(summary["runs"], 0, "{summary}");
    assert!(
        summary["skipped"]["unhealthy"].as_u64() >= Some(2),
        "{summary}"
    );
    assert_eq!(summary["errors"], 0, "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}
