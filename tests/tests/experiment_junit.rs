//! `chaos run --junit FILE`: the JUnit XML a CI system reads, checked with a real consumer's
//! parser (Debian's python3-junitparser): a run that holds is all successes; one whose probe
//! fails has the hypothesis and that probe failed, the probe's message naming its first
//! failing sample and when; a system unhealthy before injection leaves one case in error.

use chaos_tests::{
    lab::Lab,
    service::{DEP_HOST, DEP_PORT, SERVICE_ADDR},
};
use serde_json::Value;

/// What junitparser reads in `path`: per suite its counts and cases (name, results).
const READ: &str = r#"
import json, sys
from junitparser import JUnitXml
out = []
for suite in JUnitXml.fromfile(sys.argv[1]):
    cases = [{"name": c.name, "classname": c.classname,
              "result": [{"kind": type(r).__name__, "message": r.message, "type": r.type}
                         for r in c.result]} for c in suite]
    out.append({"name": suite.name, "tests": suite.tests, "failures": suite.failures,
                "errors": suite.errors, "cases": cases})
print(json.dumps(out))
"#;

fn parse(path: &std::path::Path) -> Value {
    // Debian's python3, where python3-junitparser is installed (scripts/setup.sh).
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", READ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "junitparser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `probe_url` is probed during a 4 s run whose connects to the dependency are refused from
/// 1 s to 3 s.
fn experiment(lab: &Lab, probe_url: &str) -> String {
    format!(
        r#"name: junit
hypothesis: the page stays up while the dependency refuses connections
target: {{ cgroup: "{cg}" }}
duration: 4s
steady_state:
  interval: 200ms
  tolerance: 0%
  probes:
    - name: page
      http: {{ url: "{probe_url}", status: 200 }}
      timeout: 2s
faults:
  - name: dep-refused
    start: 1s
    duration: 2s
    syscall: {{ name: connect, errno: ECONNREFUSED, dst: "{DEP_HOST}", dport: {DEP_PORT} }}
recovery:
  timeout: 5s
"#,
        cg = lab.cgroup()
    )
}

fn results(suite: &Value) -> Vec<(String, String)> {
    suite["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let kind = c["result"][0]["kind"].as_str().unwrap_or("passed");
            (
                c["name"].as_str().unwrap_or("").to_string(),
                kind.to_string(),
            )
        })
        .collect()
}

#[test]
fn junit_reports_parse_with_a_real_consumer_and_name_the_first_failure() {
    let lab = Lab::new("junit");
    let svc = lab.http_service();
    let dir = std::env::temp_dir().join(format!("chaos-junit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let (file, xml) = (dir.join("e.yaml"), dir.join("junit.xml"));
    let run = |text: String| {
        std::fs::write(&file, text).expect("experiment file");
        let _ = std::fs::remove_file(&xml);
        let (code, out, err) = lab.chaos_run(&[
            "run",
            file.to_str().expect("utf-8"),
            "--report",
            dir.join("report").to_str().expect("utf-8"),
            "--junit",
            xml.to_str().expect("utf-8"),
        ]);
        (code, format!("{out}{err}"), parse(&xml))
    };

    // The home page does not need the dependency: everything passes.
    let (code, log, suites) = run(experiment(&lab, &format!("http://{SERVICE_ADDR}/")));
    assert_eq!(code, 0, "{log}");
    let suite = &suites[0];
    println!("held: {suite}");
    assert_eq!(suite["name"], "junit");
    assert_eq!(
        (suite["tests"].as_u64(), suite["failures"].as_u64()),
        (Some(3), Some(0))
    );
    let got = results(suite);
    assert_eq!(got.len(), 3, "{suite}");
    assert_eq!(
        got[0].0,
        "hypothesis: the page stays up while the dependency refuses connections"
    );
    assert!(got[1].0.starts_with("probe page ("), "{got:?}");
    assert_eq!(got[2].0, "recovery within 5s");
    assert!(got.iter().all(|(_, kind)| kind == "passed"), "{got:?}");

    // The dependency page fails while the fault runs: the hypothesis and the probe fail.
    let (code, log, suites) = run(experiment(&lab, &format!("http://{SERVICE_ADDR}/dep")));
    assert_eq!(code, 1, "{log}");
    let suite = &suites[0];
    println!("not held: {suite}");
    assert_eq!(suite["failures"].as_u64(), Some(2), "{suite}");
    let cases = suite["cases"].as_array().expect("cases");
    assert_eq!(cases[0]["result"][0]["kind"], "Failure");
    assert_eq!(cases[0]["result"][0]["type"], "not_held");
    let probe = &cases[1]["result"][0];
    assert_eq!(probe["kind"], "Failure", "{suite}");
    let message = probe["message"].as_str().unwrap_or("");
    assert!(
        message.contains("samples failed while faults ran")
            && message.contains("first failure at 1."),
        "the first failing sample and its time: {message}"
    );
    assert_eq!(
        cases[2]["result"],
        serde_json::json!([]),
        "it recovered: {suite}"
    );

    // Nothing listens there: unhealthy before injection, one case in error, exit 2.
    let (code, log, suites) = run(experiment(&lab, "http://127.0.0.1:9/"));
    assert_eq!(code, 2, "{log}");
    let suite = &suites[0];
    println!("not run: {suite}");
    assert_eq!(suite["errors"].as_u64(), Some(1), "{suite}");
    assert_eq!(
        suite["name"], "junit",
        "named after the experiment: {suite}"
    );
    let error = &suite["cases"][0]["result"][0];
    assert_eq!(error["kind"], "Error");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or("")
            .contains("steady state not met"),
        "{error}"
    );
    drop(svc);
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}
