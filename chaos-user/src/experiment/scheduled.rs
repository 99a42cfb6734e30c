//! `chaos schedule run FILE`: an experiment on its schedule (crate::schedule), in the
//! foreground, on this node.
//! Each run is the experiment as `chaos run` runs it (steady state first, then the faults,
//! rollback, recovery, a report), on a thread of its own so that the schedule keeps time while
//! it goes; a system already unhealthy at a tick is a skip (recorded, not a failure).

use crate::{
    error::{Error, Result},
    experiment::{self, ExperimentMetrics, Outcome},
    schedule::{Decision, Planner},
    session::{Ended, Stop, Wake},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// What ends a schedule: a stop signal (the foreground command), or its holder's say-so (the
/// agent deleting it or stopping).
pub trait Halt {
    /// Waits until `until`; true when the schedule must end now.
    fn wait(&mut self, until: Instant) -> impl std::future::Future<Output = bool>;
}

impl Halt for Stop {
    async fn wait(&mut self, until: Instant) -> bool {
        matches!(
            Stop::wait(self, until).await,
            Wake::End(Ended::Signal { .. })
        )
    }
}

impl Halt for tokio::sync::watch::Receiver<bool> {
    async fn wait(&mut self, until: Instant) -> bool {
        if *self.borrow() {
            return true;
        }
        tokio::select! {
            r = self.changed() => r.is_err() || *self.borrow(),
            _ = tokio::time::sleep_until(until.into()) => false,
        }
    }
}

/// A schedule as its holder shows it: what it did so far and its next ticks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Live {
    pub summary: Summary,
    pub upcoming: Vec<String>,
}

/// Where a schedule stands, kept in a file so that the next holder (the agent after a
/// restart) reports the ticks missed meanwhile instead of replaying them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    /// The start of the `@every` grid.
    pub anchor: DateTime<Utc>,
    /// The last time the planner looked at the clock.
    pub last: DateTime<Utc>,
    pub seed: u64,
}

pub struct Options {
    /// Stop planning after this long (runs going on then finish); default: until a signal.
    pub duration: Option<Duration>,
    /// Each run's report goes into a directory of its own here, named by its tick.
    pub report_dir: PathBuf,
    /// Runs and skips counted for Prometheus (`--metrics-addr`).
    pub metrics: Option<ExperimentMetrics>,
    /// While set, ticks are skipped ("paused"): the agent's pause and resume.
    pub paused: Option<Arc<AtomicBool>>,
    /// Kept up to date for whoever shows the schedule (the agent's API).
    pub live: Option<Arc<Mutex<Live>>>,
    /// Where `Mark` is written after each look at the clock that decided something.
    pub mark: Option<PathBuf>,
}

/// What the schedule did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub experiment: String,
    pub seed: u64,
    pub runs: u64,
    /// Runs by outcome (held, not_held, aborted, ...).
    pub outcomes: BTreeMap<String, u64>,
    /// Ticks skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Ticks that passed while the scheduler was not running.
    pub missed: u64,
    /// Runs that failed to run (an error other than an unhealthy system).
    pub errors: u64,
}

impl Summary {
    /// 0 when every run held, 1 when one did not, 2 when one could not run.
    pub fn exit_code(&self) -> u8 {
        let not_held = self
            .outcomes
            .iter()
            .filter(|(o, _)| *o != "held")
            .map(|(_, n)| n)
            .sum::<u64>();
        match (self.errors, not_held) {
            (0, 0) => 0,
            (0, _) => 1,
            _ => 2,
        }
    }
}

/// How one run ended.
enum Ran {
    Report(Outcome, PathBuf),
    Unhealthy(String),
    Failed(String),
}

/// The short name of a skip's reason, for the counts and the metric's `reason` label
/// (`blackout 2026-12-24` is `blackout`, the previous run still going is `busy`).
fn reason_key(why: &str) -> String {
    let key = [
        ("blackout", "blackout"),
        ("not drawn", "not_drawn"),
        ("the previous run", "busy"),
        ("paused", "paused"),
        ("unhealthy", "unhealthy"),
    ]
    .iter()
    .find(|(prefix, _)| why.starts_with(prefix))
    .map_or("other", |(_, key)| key);
    key.to_string()
}

fn outcome_name(o: Outcome) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Runs the schedule until `opts.duration` passes or a stop signal; `event` gets each tick's
/// decision and each run's end as JSON (`{"event": "run"|"skip"|"missed"|"ran", ...}`).
pub async fn run(
    text: &str,
    name: &str,
    mut planner: Planner,
    opts: &Options,
    halt: &mut impl Halt,
    mut event: impl FnMut(Value),
) -> Result<Summary> {
    let mut sum = Summary {
        experiment: name.to_string(),
        seed: planner.seed,
        ..Summary::default()
    };
    let end = opts.duration.map(|d| Instant::now() + d);
    let mut going: Vec<(DateTime<Utc>, JoinHandle<Ran>)> = Vec::new();
    loop {
        reap(&mut going, false, &mut sum, opts, name, &mut event);
        let now = Utc::now();
        let next = planner.next().map(|t| {
            let ahead = (t - now).to_std().unwrap_or(Duration::ZERO);
            Instant::now() + ahead
        });
        // Wake for the next tick, the end, or to notice a run that finished.
        let poll = Instant::now() + Duration::from_millis(250);
        let wake = [next, end, Some(poll)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(poll);
        show(&planner, &sum, opts);
        if halt.wait(wake).await {
            break;
        }
        if end.is_some_and(|e| Instant::now() >= e) {
            break;
        }
        if planner.next().is_none() && going.is_empty() {
            event(json!({"event": "end", "why": "no next run within the lookahead"}));
            break;
        }
        let busy = going.iter().any(|(_, h)| !h.is_finished());
        let now = Utc::now();
        let decided = planner.due(now, busy);
        if !decided.is_empty() {
            keep_mark(&planner, now, opts);
        }
        let paused = opts
            .paused
            .as_ref()
            .is_some_and(|p| p.load(Ordering::Relaxed));
        for d in decided {
            let d = match d {
                Decision::Run(at) if paused => Decision::Skip {
                    at,
                    why: "paused".into(),
                },
                d => d,
            };
            match d {
                Decision::Run(at) => {
                    let dir = opts
                        .report_dir
                        .join(at.format("%Y%m%dT%H%M%SZ").to_string());
                    event(json!({"event": "run", "at": at.to_rfc3339(), "report": dir}));
                    let (text, m) = (text.to_string(), opts.metrics.clone());
                    going.push((at, std::thread::spawn(move || run_once(&text, &dir, m))));
                }
                Decision::Skip { at, why } => {
                    event(json!({"event": "skip", "at": at.to_rfc3339(), "why": why}));
                    count_skip(&mut sum, opts, name, &reason_key(&why));
                }
                Decision::Missed { count, first, last } => {
                    event(json!({"event": "missed", "count": count,
                                 "first": first.to_rfc3339(), "last": last.to_rfc3339()}));
                    sum.missed += count;
                    if let Some(m) = &opts.metrics {
                        (0..count).for_each(|_| m.skipped(name, "missed"));
                    }
                }
            }
        }
    }
    // Runs going on end by themselves (their durations; a signal reached them too).
    reap(&mut going, true, &mut sum, opts, name, &mut event);
    keep_mark(&planner, Utc::now(), opts);
    show(&planner, &sum, opts);
    Ok(sum)
}

/// The live view: the summary so far and the next three ticks.
fn show(planner: &Planner, sum: &Summary, opts: &Options) {
    if let Some(live) = &opts.live {
        let mut l = live.lock().unwrap_or_else(|p| p.into_inner());
        l.summary = sum.clone();
        l.upcoming = planner.upcoming(3).iter().map(|t| t.to_rfc3339()).collect();
    }
}

/// Writes where the schedule stands (best effort: a schedule without its mark only loses the
/// count of ticks missed across a restart).
fn keep_mark(planner: &Planner, now: DateTime<Utc>, opts: &Options) {
    let Some(path) = &opts.mark else { return };
    let mark = Mark {
        anchor: planner.anchor(),
        last: now,
        seed: planner.seed,
    };
    if let Ok(text) = serde_json::to_string(&mark)
        && let Err(e) = std::fs::write(path, text)
    {
        tracing::warn!("writing {}: {e}", path.display());
    }
}

fn count_skip(sum: &mut Summary, opts: &Options, name: &str, key: &str) {
    *sum.skipped.entry(key.to_string()).or_default() += 1;
    if let Some(m) = &opts.metrics {
        m.skipped(name, key);
    }
}

/// Collects the runs that finished (all of them, waiting, with `wait`).
fn reap(
    going: &mut Vec<(DateTime<Utc>, JoinHandle<Ran>)>,
    wait: bool,
    sum: &mut Summary,
    opts: &Options,
    name: &str,
    event: &mut impl FnMut(Value),
) {
    let mut i = 0;
    while i < going.len() {
        if !wait && !going[i].1.is_finished() {
            i += 1;
            continue;
        }
        let (at, handle) = going.remove(i);
        let ran = handle
            .join()
            .unwrap_or_else(|_| Ran::Failed("the run panicked".into()));
        let at = at.to_rfc3339();
        match ran {
            Ran::Report(o, dir) => {
                sum.runs += 1;
                let o = outcome_name(o);
                *sum.outcomes.entry(o.clone()).or_default() += 1;
                if let Some(m) = &opts.metrics {
                    m.scheduled_run(name, &o);
                }
                event(json!({"event": "ran", "at": at, "outcome": o, "report": dir}));
            }
            Ran::Unhealthy(why) => {
                event(json!({"event": "skip", "at": at, "why": format!("unhealthy: {why}")}));
                count_skip(sum, opts, name, "unhealthy");
            }
            Ran::Failed(why) => {
                sum.errors += 1;
                event(json!({"event": "error", "at": at, "error": why}));
            }
        }
    }
}

/// One run, on its own thread and runtime (its faults are not Send): the file checked again
/// (targets change), the experiment run, its report written into `dir`.
fn run_once(text: &str, dir: &Path, metrics: Option<ExperimentMetrics>) -> Ran {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Ran::Failed(format!("starting the run's runtime: {e}")),
    };
    let r: Result<experiment::Report> = rt.block_on(async {
        let exp = experiment::parse(text)?;
        let ready = experiment::prepare(&exp, false, false)?;
        experiment::check_kernel(&ready)?;
        let mut stop = Stop::install()?;
        let opts = experiment::Options {
            dry_run: false,
            quiet: true,
            metrics,
            progress: None,
        };
        experiment::run(&exp, ready, &opts, &mut stop).await
    });
    match r {
        Ok(report) => match experiment::write_report(&report, dir) {
            Ok(_) => Ran::Report(report.outcome, dir.to_path_buf()),
            Err(e) => Ran::Failed(crate::error::chain(&e)),
        },
        Err(Error::Unhealthy(why)) => Ran::Unhealthy(why),
        Err(e) => Ran::Failed(crate::error::chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn skip_reasons_have_short_keys() {
        for (why, key) in [
            ("blackout 2026-12-24 to 2026-12-26", "blackout"),
            ("not drawn (probability 0.1)", "not_drawn"),
            (
                "the previous run is still going (concurrency: forbid)",
                "busy",
            ),
            ("paused", "paused"),
            ("unhealthy: probe 'home' failed", "unhealthy"),
        ] {
            assert_eq!(super::reason_key(why), key);
        }
    }
}
