//! `chaos run --metrics-addr`: a real Prometheus (started in the namespace chaos runs in)
//! scrapes an experiment and ends with what its report says: the status `held`, the blast
//! radius, the injected count and one recovery time; `promtool check metrics` accepts the
//! exposition. `chaos run --pushgateway`: a real Pushgateway holds the same at the end.

use chaos_tests::{
    have,
    lab::Lab,
    prometheus::{Prometheus, Pushgateway, promtool_check},
    service::{DEP_HOST, DEP_PORT, SERVICE_ADDR},
};
use serde_json::Value;

/// The experiment both tests run: 5 s, connects to the dependency refused from 1 s to 4 s
/// while the home page is probed; written into `dir`.
fn experiment(lab: &Lab, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let file = dir.join("e.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: {name}
hypothesis: the home page stays up while the dependency refuses connections
target:
  cgroup: {cg}
duration: 5s
steady_state:
  interval: 300ms
  probes:
    - name: home
      http:
        url: http://{SERVICE_ADDR}/
        status: 200
      timeout: 5s
faults:
  - name: dep-refused
    start: 1s
    duration: 3s
    syscall:
      name: connect
      errno: ECONNREFUSED
      dst: {DEP_HOST}
      dport: {DEP_PORT}
"#,
            cg = lab.cgroup()
        ),
    )
    .expect("experiment file");
    file
}

#[test]
fn run_metrics_addr_serves_the_experiment_to_prometheus() {
    const TEST: &str = "run_metrics_addr_serves_the_experiment_to_prometheus";
    if !have("prometheus", TEST) || !have("promtool", TEST) {
        return;
    }
    let lab = Lab::new("exmet");
    let svc = lab.http_service();
    let dir = std::env::temp_dir().join(format!("chaos-exmet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let file = experiment(&lab, &dir, "dep-down-metrics");
    // chaos runs in the server namespace (where the service is reachable): so does Prometheus.
    let port = 19_000 + (std::process::id() % 1000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let prom = Prometheus::start(&addr, None, Some(&lab.sb.server_ns));
    // Scraping (the target still down) before the run starts, so that it sees it running.
    prom.wait_for("up{job=\"chaos\"}");
    let report = dir.join("report");
    let users = lab.poll_dep();
    // The exposition as curl reads it during the run, the last one kept, for promtool.
    let (ns, url) = (lab.sb.server_ns.clone(), format!("http://{addr}/metrics"));
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut last = String::new();
        while done.try_recv().is_err() {
            let out = std::process::Command::new("nsenter")
                .arg(format!("--net=/run/netns/{ns}"))
                .args(["curl", "-s", &url])
                .output();
            if let Ok(o) = out
                && !o.stdout.is_empty()
            {
                last = String::from_utf8_lossy(&o.stdout).into_owned();
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        last
    });
    let (code, out, err) = lab.chaos_run(&[
        "--json",
        "run",
        file.to_str().expect("utf-8"),
        "--report",
        report.to_str().expect("utf-8"),
        "--metrics-addr",
        &addr,
        "--metrics-linger",
        "4s",
    ]);
    drop(users);
    assert_eq!(code, 0, "{out}{err}");
    let r: Value = serde_json::from_str(out.trim()).expect("report JSON");
    let injected = r["faults"][0]["injected"].as_f64().expect("injected");
    assert!(injected > 0.0, "{r}");
    // The run is over; its outcome was scraped during the linger.
    let q = |s: &str| {
        format!("chaos_experiment_status{{experiment=\"dep-down-metrics\",status=\"{s}\"}}")
    };
    assert_eq!(prom.wait_for(&q("held")), 1.0);
    assert_eq!(prom.value(&q("running")), Some(0.0));
    assert_eq!(
        prom.value("chaos_fault_injected_total{fault=\"dep-refused\"}"),
        Some(injected),
        "Prometheus has the report's count"
    );
    assert_eq!(prom.value("chaos_blast_radius"), Some(1.0));
    assert_eq!(prom.value("chaos_recovery_time_seconds_count"), Some(1.0));
    // Prometheus also saw it running (status running = 1 at some scrape).
    assert_eq!(
        prom.value(&format!("max_over_time({}[5m])", q("running"))),
        Some(1.0)
    );
    let _ = done_tx.send(());
    let text = reader.join().expect("reader");
    assert!(text.contains("chaos_experiment_status"), "{text}");
    promtool_check(&text).unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
    drop((prom, svc));
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}

/// The value of the first sample of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `chaos run --pushgateway`: a real Pushgateway (Debian's) holds the run's outcome and counts
/// under job="chaos" once the run is over; with the Pushgateway gone, the next run refuses
/// before injecting.
#[test]
fn run_pushgateway_pushes_the_outcome_and_refuses_when_unreachable() {
    const TEST: &str = "run_pushgateway_pushes_the_outcome_and_refuses_when_unreachable";
    if !have("prometheus-pushgateway", TEST) {
        return;
    }
    let lab = Lab::new("expush");
    let svc = lab.http_service();
    let dir = std::env::temp_dir().join(format!("chaos-expush-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let file = experiment(&lab, &dir, "dep down (pushed)");
    let pg = Pushgateway::start(Some(&lab.sb.server_ns));
    let url = format!("http://127.0.0.1:{}", pg.port);
    let report = dir.join("report");
    let users = lab.poll_dep();
    let args = [
        "--json",
        "run",
        file.to_str().expect("utf-8"),
        "--report",
        report.to_str().expect("utf-8"),
        "--pushgateway",
        &url,
    ];
    let (code, out, err) = lab.chaos_run(&args);
    drop(users);
    assert_eq!(code, 0, "{out}{err}");
    let r: Value = serde_json::from_str(out.trim()).expect("report JSON");
    let injected = r["faults"][0]["injected"].as_f64().expect("injected");
    assert!(injected > 0.0, "{r}");
    let text = pg.metrics();
    let group = ["job=\"chaos\"", "experiment=\"dep down (pushed)\""];
    let status = |s: &str| {
        let label = format!("status=\"{s}\"");
        let mut want = group.to_vec();
        want.push(&label);
        sample(&text, "chaos_experiment_status", &want)
    };
    assert_eq!(status("held"), Some(1.0), "{text}");
    assert_eq!(status("running"), Some(0.0), "{text}");
    let mut fault = group.to_vec();
    fault.push("fault=\"dep-refused\"");
    assert_eq!(
        sample(&text, "chaos_fault_injected_total", &fault),
        Some(injected),
        "the Pushgateway has the report's count: {text}"
    );
    assert!(
        sample(&text, "push_time_seconds", &group).is_some_and(|t| t > 0.0),
        "{text}"
    );
    // The Pushgateway gone: refused before anything is injected (lab.finish checks).
    drop(pg);
    let (code, _, err) = lab.chaos_run(&args);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--pushgateway") && err.contains("nothing was injected"),
        "{err}"
    );
    drop(svc);
    let _ = std::fs::remove_dir_all(&dir);
    lab.finish();
}
