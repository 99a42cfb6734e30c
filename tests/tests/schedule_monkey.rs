//! Chaos Monkey on a schedule: `random: {mean_time_between: 3s, probability: 1}` kills the
//! container of a real containerd pod at each drawn moment, the test restarting it as a kubelet
//! would. The moments come from the seed: `chaos schedule next --seed N` lists them, and
//! `chaos schedule run --seed N` kills exactly as many times as there are moments in its span.

use chaos_tests::kubelet::{Network, node_for};
use serde_json::Value;
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const RUNNING: i32 = 1;

fn monkey(endpoint: &std::path::Path) -> String {
    format!(
        r#"name: monkey
hypothesis: the node keeps going while the api container is killed at random moments
target: {{ namespace: zoo, selector: {{ app: api }}, mode: one, runtime_endpoint: "{ep}" }}
duration: 1s
steady_state:
  probes:
    - name: node
      command: [true]
faults:
  - name: kill
    kill: {{ signal: SIGKILL }}
recovery:
  timeout: 5s
schedule:
  random: {{ mean_time_between: 3s, probability: 1 }}
"#,
        ep = endpoint.display()
    )
}

/// The next moments of the file's schedule with `seed`, in seconds from now.
fn moments(file: &str, seed: u64) -> Vec<f64> {
    let (code, out, err) = chaos_tests::chaos(&[
        "--json",
        "schedule",
        "next",
        file,
        "--seed",
        &seed.to_string(),
        "--count",
        "10",
    ]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["after_s"].as_f64())
        .collect()
}

/// A seed and a span whose moments are 2 to 4 kills at least 2.5 s apart (a kill run takes
/// about a second), none within 0.8 s of the span's end or its start: so that the count does
/// not hang on when each process started.
fn plan(file: &str) -> (u64, f64, usize) {
    for seed in 1..200 {
        let m = moments(file, seed);
        for span in [8.0, 9.0, 10.0, 11.0, 12.0] {
            let inside: Vec<f64> = m.iter().copied().filter(|t| *t < span).collect();
            let apart = inside.windows(2).all(|w| w[1] - w[0] >= 2.5);
            let clear = m.iter().all(|t| (t - span).abs() > 0.8)
                && inside.first().is_some_and(|t| *t > 1.0);
            if (2..=4).contains(&inside.len()) && apart && clear {
                return (seed, span, inside.len());
            }
        }
    }
    panic!("no seed under 200 gives a plan the test can count");
}

#[test]
fn a_random_kill_schedule_kills_the_container_as_often_as_its_seed_says() {
    let Some(mut node) =
        node_for("a_random_kill_schedule_kills_the_container_as_often_as_its_seed_says")
    else {
        return;
    };
    let pod = node.run_pod("zoo", "api-0", &[("app", "api")], Network::Host);
    let cmd = ["sleep", "100000"];
    let mut id = node.run_container(&pod, "app", &cmd);
    let dir = std::env::temp_dir().join(format!("chaos-monkey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let file = dir.join("monkey.yaml");
    std::fs::write(&file, monkey(&node.endpoint)).expect("file");
    let file = file.to_string_lossy().into_owned();
    let (seed, span, expected) = plan(&file);
    println!("seed {seed}: {expected} moments in {span} s");
    let mut child = Command::new(chaos_tests::chaos_bin())
        .args([
            "--json",
            "schedule",
            "run",
            &file,
            "--seed",
            &seed.to_string(),
        ])
        .args(["--for", &format!("{}ms", (span * 1000.0) as u64)])
        .arg("--report-dir")
        .arg(dir.join("reports"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chaos schedule run");
    // The kubelet's part: a killed container is started again (its next attempt).
    let (mut kills, mut attempt) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs_f64(span + 30.0);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the schedule never ended");
        if node.container_state(&id).0 != RUNNING {
            kills += 1;
            attempt += 1;
            id = node.start_attempt(&pod, "app", &cmd, attempt);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let summary = events.last().expect("summary");
    println!("{summary}");
    assert_eq!(out.status.code(), Some(0), "{events:?}");
    assert_eq!(summary["seed"], seed);
    assert_eq!(summary["runs"], expected as u64, "{events:?}");
    assert_eq!(kills, expected, "one kill per drawn moment");
    let _ = std::fs::remove_dir_all(&dir);
}
