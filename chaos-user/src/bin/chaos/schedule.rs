//! `chaos schedule run|next FILE`: an experiment on the calendar of its `schedule:` block
//! (docs/schedules.md).

use crate::common::{self, out};
use chaos::{
    experiment::{self, scheduled as runner},
    schedule::Planner,
    session::Stop,
};
use clap::{Args, Subcommand};
use std::{path::PathBuf, process::ExitCode, time::Duration};

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ScheduleCommand {
    /// Run the experiment at each tick of its schedule, in the foreground on this node, until
    /// --for ends or a signal: each run checks the steady state first (an unhealthy system is
    /// a skip, not a failure) and writes its report. Exit status: 0 every run held, 1 one did
    /// not, 2 one could not run.
    ///
    /// Example: chaos schedule run examples/business-hours-outage.yaml --for 8h
    Run(RunArgs),
    /// Print the schedule's next ticks (blackouts included, marked).
    Next(NextArgs),
    /// Have the agent (--agent URL) hold the file's schedule: it runs on the agent's node from
    /// now on, and across the agent's restarts when loaded from its --schedules DIR.
    Add(FileArg),
    /// The agent's schedules: paused or not, runs by outcome, skips by reason, missed ticks,
    /// next ticks.
    List,
    /// Skip the schedule's ticks (recorded as "paused") until resumed.
    Pause(NameArg),
    /// Run the schedule's ticks again after a pause.
    Resume(NameArg),
    /// End a schedule on the agent (a run going on finishes first).
    Delete(NameArg),
}

#[derive(Debug, Args)]
pub struct FileArg {
    /// The experiment file, with a `schedule:` block; its `${VAR}`s are taken from this
    /// environment, not the agent's.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// The experiment's name.
    name: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file, with a `schedule:` block.
    file: PathBuf,
    /// Stop planning after this long; runs going on finish first.
    #[arg(long = "for", value_name = "D", value_parser = common::duration)]
    duration: Option<Duration>,
    /// Each run's report in a directory named by its tick under this one (default
    /// chaos-report/schedule-<experiment>).
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Seed of the random moments (`random:`); printed at the start, to replay a plan.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Serve Prometheus metrics here: each run's status and counts as `chaos run
    /// --metrics-addr` does, plus chaos_schedule_runs_total{experiment, outcome} and
    /// chaos_schedule_skips_total{experiment, reason}.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct NextArgs {
    /// The experiment file, with a `schedule:` block.
    file: PathBuf,
    /// How many ticks to print.
    #[arg(long, default_value = "10")]
    count: usize,
    /// Seed of the random moments (`random:`): the moments `schedule run --seed N` will use.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

/// The file, its text (variables expanded) and its planner from now.
fn load(file: &std::path::Path, seed: Option<u64>) -> chaos::Result<(String, String, Planner)> {
    let exp = experiment::load(file)?;
    let text = experiment::read_expanded(file)?;
    let schedule = exp.schedule.ok_or_else(|| chaos::Error::Invalid {
        at: file.display().to_string(),
        message: "has no schedule: block; add one (e.g. schedule: {cron: \"@every 1h\"}) or \
                  run it once with chaos run"
            .into(),
    })?;
    let seed = seed.unwrap_or_else(rand::random);
    let planner = Planner::new(schedule, chrono::Utc::now(), seed);
    Ok((exp.name, text, planner))
}

/// The schedule commands held by an agent (`--agent URL`).
fn on_agent(
    cmd: ScheduleCommand,
    json: bool,
    agent: &crate::remote::Remote,
) -> chaos::Result<ExitCode> {
    let path = |name: &str, what: &str| format!("/v1/schedules/{}{what}", urlencode(name));
    let v = match cmd {
        ScheduleCommand::Add(a) => {
            experiment::load(&a.file)?;
            agent.call(
                "POST",
                "/v1/schedules",
                Some(experiment::read_expanded(&a.file)?),
            )?
        }
        ScheduleCommand::List => agent.call("GET", "/v1/schedules", None)?,
        ScheduleCommand::Pause(a) => {
            agent.call("POST", &path(&a.name, "/pause"), Some(String::new()))?
        }
        ScheduleCommand::Resume(a) => {
            agent.call("POST", &path(&a.name, "/resume"), Some(String::new()))?
        }
        ScheduleCommand::Delete(a) => agent.call("DELETE", &path(&a.name, ""), None)?,
        ScheduleCommand::Run(_) | ScheduleCommand::Next(_) => {
            return Err(chaos::Error::input(
                "--agent",
                "schedule run and next act here; give the agent the file with schedule add FILE",
            ));
        }
    };
    if json {
        common::print_json(&v);
    } else {
        for s in v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]) {
            out!("{}", s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A name as one path segment.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(
    cmd: ScheduleCommand,
    json: bool,
    agent: Option<&crate::remote::Remote>,
) -> chaos::Result<ExitCode> {
    if let Some(agent) = agent {
        return tokio::task::block_in_place(|| on_agent(cmd, json, agent));
    }
    match cmd {
        ScheduleCommand::Add(_)
        | ScheduleCommand::List
        | ScheduleCommand::Pause(_)
        | ScheduleCommand::Resume(_)
        | ScheduleCommand::Delete(_) => Err(chaos::Error::input(
            "--agent",
            "this one acts on a chaos agent's schedules: give --agent URL (on this node, in the \
             foreground: chaos schedule run FILE)",
        )),
        ScheduleCommand::Next(a) => {
            let now = chrono::Utc::now();
            let (_, _, planner) = load(&a.file, a.seed)?;
            for t in planner.upcoming(a.count) {
                let blackout = planner.schedule().blackout(t).is_some();
                let local = t.with_timezone(&planner.schedule().tz).to_rfc3339();
                if json {
                    let after = (t - now).num_milliseconds() as f64 / 1e3;
                    common::print_json(&serde_json::json!({
                        "at": local, "after_s": after, "blackout": blackout, "seed": planner.seed,
                    }));
                } else {
                    out!(
                        "{local}{}",
                        if blackout { " (blackout: skipped)" } else { "" }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ScheduleCommand::Run(a) => {
            let (name, text, planner) = load(&a.file, a.seed)?;
            let metrics = match a.metrics_addr {
                Some(addr) => Some(crate::metrics_server::serve(addr).await?),
                None => None,
            };
            let opts = runner::Options {
                duration: a.duration,
                report_dir: a.report_dir.unwrap_or_else(|| {
                    PathBuf::from("chaos-report")
                        .join(format!("schedule-{}", experiment::slug(&name)))
                }),
                metrics,
                paused: None,
                live: None,
                mark: None,
            };
            let mut stop = Stop::install()?;
            let first = planner.next().map(|t| t.to_rfc3339());
            let start = serde_json::json!({"event": "start", "experiment": name,
                                           "seed": planner.seed, "next": first});
            print(&start, json);
            let sum =
                runner::run(&text, &name, planner, &opts, &mut stop, |e| print(&e, json)).await?;
            if json {
                common::print_json(&sum);
            } else {
                out!(
                    "{}: {} runs {:?}, skipped {:?}, missed {}, errors {} (seed {})",
                    sum.experiment,
                    sum.runs,
                    sum.outcomes,
                    sum.skipped,
                    sum.missed,
                    sum.errors,
                    sum.seed
                );
            }
            Ok(ExitCode::from(sum.exit_code()))
        }
    }
}

/// One event: a JSON line with --json, else a line of text.
fn print(e: &serde_json::Value, json: bool) {
    if json {
        common::print_json(e);
        return;
    }
    let field = |k: &str| e[k].as_str().unwrap_or("").to_string();
    let line = match field("event").as_str() {
        "start" => format!(
            "schedule of {}: next tick {} (seed {})",
            field("experiment"),
            field("next"),
            e["seed"]
        ),
        "run" => format!(
            "{}: run (report in {})",
            field("at"),
            e["report"].as_str().unwrap_or("")
        ),
        "ran" => format!("{}: {}", field("at"), field("outcome")),
        "skip" => format!("{}: skipped: {}", field("at"), field("why")),
        "missed" => format!(
            "missed {} ticks from {} to {} (not replayed)",
            e["count"],
            field("first"),
            field("last")
        ),
        "error" => format!("{}: error: {}", field("at"), field("error")),
        _ => e.to_string(),
    };
    out!("{line}");
}
