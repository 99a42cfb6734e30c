//! `chaos run FILE`: an experiment (docs/experiments.md).

use crate::common::{self, out};
use chaos::{experiment, session::Stop};
use clap::Args;
use std::{path::PathBuf, process::ExitCode};

// Run an experiment file: check steady state, inject the faults in their phases while probing,
// abort and roll back when an abort condition trips, always roll back, measure the recovery,
// and write a report (report.json, report.md, timeline.svg).
//
// Exit status: 0 the hypothesis held, 1 it did not (or the run aborted), 2 error (bad file,
// unhealthy before injection, a fault that could not be attached, interrupted).
//
// Example: chaos run examples/dependency-down.yaml --report reports/dependency-down
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file (YAML; `${VAR}` and `${VAR:-default}` are taken from the environment).
    file: PathBuf,
    /// Shadow mode: attach every fault in dry-run mode (count what would be faulted, inject
    /// nothing), probe as usual; previews the blast radius.
    #[arg(long)]
    dry_run: bool,
    /// Only check the file and its faults against this system (interfaces, cgroups, filters,
    /// and whether this kernel can run each fault); attach nothing, probe nothing.
    #[arg(long, conflicts_with = "dry_run")]
    check: bool,
    /// Override the blast-radius guards for every fault of the file (the node's default-route
    /// or SSH interface, a cgroup holding chaos or PID 1, durations over 24h), as `--force`
    /// does for a single fault.
    #[arg(long)]
    force: bool,
    /// Directory for the report (default: chaos-report/<experiment>-<unix time>).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Serve Prometheus metrics on http://ADDR/metrics while the experiment runs:
    /// chaos_experiment_status, chaos_blast_radius, chaos_recovery_time_seconds and
    /// chaos_fault_injected_total (docs/experiments.md).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Keep serving the metrics this long after the run, so that a scraper sees the outcome.
    #[arg(long, value_name = "D", requires = "metrics_addr", value_parser = common::duration)]
    metrics_linger: Option<std::time::Duration>,
    /// Run the experiment across nodes: send each fault to these `chaos agent`s, each of which
    /// applies it to the targets it hosts (a node without any has nothing to do), while the
    /// probes run here; one report covers every node. `https://HOST:PORT` (a name stands for
    /// every address it resolves to: the DaemonSet's headless Service) or a comma-separated
    /// list. Takes --token-file, --cacert and --client-cert/--client-key; every agent must
    /// answer before anything is injected.
    #[arg(long, value_name = "URL[,URL...]")]
    agents: Option<String>,
    /// Push the experiment's metrics (those --metrics-addr serves) to this Prometheus
    /// Pushgateway, as group job="chaos", experiment=NAME: at the start (running; the run is
    /// refused, exit 2, when it cannot be reached) and at the end (the outcome).
    #[arg(long, value_name = "URL")]
    pushgateway: Option<String>,
    /// Also write the result as JUnit XML (one test case for the hypothesis, one per probe
    /// with its first failing sample, one for the recovery), for CI systems; a run that ends
    /// before it has a report (invalid file, unhealthy system) writes one case in error.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

/// Here, or on `agent` (`chaos --agent URL run`); `remote`: the global agent flags (token, CA,
/// client certificate) for `--agents`. With --junit, an error before the report still leaves
/// a JUnit file.
pub async fn run(
    a: RunArgs,
    json: bool,
    remote: &crate::remote::RemoteArgs,
    agent: Option<&crate::remote::Remote>,
) -> chaos::Result<ExitCode> {
    let (junit, file) = (a.junit.clone(), a.file.clone());
    let r = match agent {
        Some(agent) => on_agent(a, json, agent).await,
        None => run_here(a, json, remote).await,
    };
    junit_on_error(&r, junit.as_deref(), &file)?;
    r
}

/// With --junit, a run that ended in an error before its report still leaves a JUnit file
/// (one case in error), so that the CI job shows why.
fn junit_on_error(
    r: &chaos::Result<ExitCode>,
    junit: Option<&std::path::Path>,
    file: &std::path::Path,
) -> chaos::Result<()> {
    if let (Err(e), Some(path)) = (r, junit) {
        // The experiment's name when the file is valid (an unhealthy system), else the file's.
        let name = experiment::load(file).map_or_else(
            |_| {
                file.file_stem()
                    .map_or("experiment".into(), |s| s.to_string_lossy().into_owned())
            },
            |exp| exp.name,
        );
        write_junit(path, &experiment::junit::render_error(&name, e)?)?;
    }
    Ok(())
}

fn write_junit(path: &std::path::Path, xml: &str) -> chaos::Result<()> {
    std::fs::write(path, xml)
        .map_err(|e| chaos::Error::io(format!("writing {}", path.display()), e))
}

async fn run_here(
    a: RunArgs,
    json: bool,
    remote: &crate::remote::RemoteArgs,
) -> chaos::Result<ExitCode> {
    let exp = experiment::load(&a.file)?;
    let ready = match &a.agents {
        Some(spec) => {
            let mut cfg = remote.client_config();
            // A node lost mid-run must not hold the run up longer than this.
            cfg.timeout = Some(std::time::Duration::from_secs(10));
            let agents = std::sync::Arc::new(experiment::Agents::resolve(spec, &cfg)?);
            let ready = experiment::prepare_remote(&exp, &agents, a.dry_run, a.force)
                .map_err(|e| experiment::in_file(&a.file, e))?;
            agents.check()?;
            ready
        }
        None => {
            let ready = experiment::prepare(&exp, a.dry_run, a.force)
                .map_err(|e| experiment::in_file(&a.file, e))?;
            experiment::check_kernel(&ready).map_err(|e| experiment::in_file(&a.file, e))?;
            ready
        }
    };
    if a.check {
        for r in &ready {
            out!(
                "{}: {} at {:?} for {:?}: {}",
                r.name,
                r.kind,
                r.start,
                r.duration,
                r.detail
            );
        }
        out!(
            "{}: valid ({} faults, {} probes)",
            a.file.display(),
            ready.len(),
            exp.probes.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut stop = Stop::install()?;
    let metrics = match a.metrics_addr {
        Some(addr) => Some(crate::metrics_server::serve(addr).await?),
        None => a
            .pushgateway
            .as_ref()
            .map(|_| experiment::ExperimentMetrics::new()),
    };
    let push = a
        .pushgateway
        .as_deref()
        .map(experiment::Pushgateway::new)
        .transpose()?;
    if let (Some(p), Some(m)) = (&push, &metrics) {
        m.running(&exp.name);
        p.push(m, &exp.name).map_err(|e| {
            chaos::Error::input(
                "--pushgateway",
                format!("{}; nothing was injected", chaos::error::chain(&e)),
            )
        })?;
    }
    let opts = experiment::Options {
        dry_run: a.dry_run,
        quiet: json,
        metrics: metrics.clone(),
        progress: None,
    };
    let report = experiment::run(&exp, ready, &opts, &mut stop).await?;
    if let (Some(p), Some(m)) = (&push, &metrics)
        && let Err(e) = p.push(m, &exp.name)
    {
        // The run happened: its report is written whatever the Pushgateway says.
        eprintln!("chaos: --pushgateway: {}", chaos::error::chain(&e));
    }
    if let (Some(_), Some(linger)) = (&metrics, a.metrics_linger) {
        tokio::time::sleep(linger).await;
    }
    finish(&report, a.report, a.junit.as_deref(), json)
}

/// Writes the report's files (into `dir`, default chaos-report/NAME-TIME), prints the summary
/// (or the report with --json), and the JUnit XML if asked; the exit status is the outcome's.
fn finish(
    report: &experiment::Report,
    dir: Option<PathBuf>,
    junit: Option<&std::path::Path>,
    json: bool,
) -> chaos::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| default_dir(&report.experiment));
    let mut files = experiment::write_report(report, &dir)?;
    if let Some(path) = junit {
        write_junit(path, &experiment::junit::render(report)?)?;
        files.push(path.to_path_buf());
    }
    if json {
        common::print_json(report);
    } else {
        out!("{}", summary(report));
        for f in files {
            out!("  {}", f.display());
        }
    }
    Ok(ExitCode::from(report.outcome.exit_code()))
}

/// `chaos --agent URL run FILE`: the file is checked here, then the agent runs it on its node
/// (its probes, its faults); its progress is printed as it comes and its report written here.
async fn on_agent(
    a: RunArgs,
    json: bool,
    agent: &crate::remote::Remote,
) -> chaos::Result<ExitCode> {
    let local_only = [
        ("--dry-run", a.dry_run),
        ("--check", a.check),
        ("--force", a.force),
        ("--metrics-addr", a.metrics_addr.is_some()),
        ("--agents", a.agents.is_some()),
        ("--pushgateway", a.pushgateway.is_some()),
    ];
    if let Some((flag, _)) = local_only.iter().find(|(_, set)| *set) {
        return Err(chaos::Error::input(
            flag,
            "is not sent to an agent yet: run the experiment on the node, or leave it out",
        ));
    }
    experiment::load(&a.file)?;
    let text = experiment::read_expanded(&a.file)?;
    let (mut report, mut failed) = (None, None);
    tokio::task::block_in_place(|| {
        agent.stream("/v1/experiments", text, |v| match v["event"].as_str() {
            Some("progress") if !json => eprintln!("{}", v["line"].as_str().unwrap_or("")),
            Some("report") => report = serde_json::from_value(v["report"].clone()).ok(),
            Some("error") => failed = v["error"].as_str().map(str::to_string),
            _ => {}
        })
    })?;
    let report: experiment::Report = match (report, failed) {
        (Some(r), _) => r,
        (None, why) => {
            return Err(chaos::Error::Tool {
                context: "the agent's run".into(),
                message: why.unwrap_or_else(|| "ended without a report".into()),
            });
        }
    };
    finish(&report, a.report, a.junit.as_deref(), json)
}

fn default_dir(name: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from("chaos-report").join(format!("{}-{secs}", experiment::slug(name)))
}

fn summary(r: &experiment::Report) -> String {
    let verdict = match r.outcome {
        experiment::Outcome::Held => "hypothesis HELD",
        experiment::Outcome::NotHeld => "hypothesis DID NOT HOLD",
        experiment::Outcome::Aborted => "ABORTED, hypothesis did not hold",
        experiment::Outcome::Interrupted => "INTERRUPTED",
        experiment::Outcome::Error => "ERROR",
        experiment::Outcome::TargetGone => "TARGET GONE, hypothesis not tested to the end",
    };
    let mut s = format!("{}: {verdict}", r.experiment);
    for reason in &r.reasons {
        s += &format!("\n  - {reason}");
    }
    match r.recovery.time_to_recover_s {
        Some(t) => s += &format!("\n  recovered {t:.2}s after the rollback"),
        None => s += "\n  did not recover within the recovery timeout",
    }
    s
}
