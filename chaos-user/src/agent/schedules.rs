//! Schedules held by the agent: experiment files with a `schedule:` block, loaded from
//! `--schedules DIR` at start or added over the API, each run by `experiment::scheduled` on a
//! thread of its own; listed with their next ticks and counts, paused, resumed, deleted. Each
//! keeps its mark (where it stands) under the state directory, and one added over the API its
//! file too, so that an agent restarted mid-schedule holds them again, reports the ticks it
//! missed and does not replay them.

use super::Limits;
use crate::{
    error::{Error, Result},
    experiment::{
        self,
        scheduled::{self, Live, Mark},
    },
    schedule::Planner,
};
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

struct Held {
    paused: Arc<AtomicBool>,
    live: Arc<Mutex<Live>>,
    halt: tokio::sync::watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    mark: PathBuf,
}

pub struct Schedules {
    held: Mutex<BTreeMap<String, Held>>,
    /// Every schedule's runs, skips and run status, on the agent's /metrics.
    pub metrics: experiment::ExperimentMetrics,
    /// Each schedule's reports, in a directory of its own here.
    reports: PathBuf,
    limits: Limits,
}

/// Where the marks are: `<state dir>/schedules/`.
fn marks_dir() -> PathBuf {
    crate::state::state_dir().join("schedules")
}

impl Schedules {
    pub fn new(reports: PathBuf, limits: Limits) -> Schedules {
        Schedules {
            held: Mutex::default(),
            metrics: experiment::ExperimentMetrics::for_agent(),
            reports,
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every `*.yaml` of `dir`, resumed from its mark if it has one. Errors name the file.
    pub fn load_dir(&self, dir: &Path) -> Result<usize> {
        let files = std::fs::read_dir(dir)
            .map_err(|e| Error::input("--schedules", format!("{}: {e}", dir.display())))?;
        let mut n = 0;
        for f in files.flatten().map(|e| e.path()) {
            if f.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                let text = experiment::read_expanded(&f)?;
                self.add(&text, true)
                    .map_err(|e| experiment::in_file(&f, e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The schedules added over the API before a restart (their files are kept with their
    /// marks), resumed; those held already (from `--schedules`) are left alone.
    pub fn load_saved(&self) -> Result<usize> {
        let Ok(files) = std::fs::read_dir(marks_dir()) else {
            return Ok(0);
        };
        let mut n = 0;
        for f in files.flatten().map(|e| e.path()) {
            if f.extension().is_some_and(|x| x == "yaml") {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| Error::io(format!("reading {}", f.display()), e))?;
                match self.add(&text, true) {
                    Ok(_) => n += 1,
                    Err(Error::Input { flag: "name", .. }) => {}
                    Err(e) => return Err(experiment::in_file(&f, e)),
                }
            }
        }
        Ok(n)
    }

    /// A schedule added over the API: held as `add` does, and its file kept with its mark.
    pub fn add_saved(&self, text: &str) -> Result<Value> {
        let v = self.add(text, false)?;
        let name = v["name"].as_str().unwrap_or_default();
        let path = marks_dir().join(format!("{}.yaml", experiment::slug(name)));
        std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(v)
    }

    /// Checks and starts a schedule (`resume`: from its mark, as after a restart; else afresh).
    /// Errors: an invalid file, no `schedule:`, over the agent's limits, a name already held.
    pub fn add(&self, text: &str, resume: bool) -> Result<Value> {
        let exp = experiment::parse(text)?;
        let Some(schedule) = exp.schedule else {
            return Err(Error::input(
                "schedule",
                "the file has no schedule: block (POST /v1/experiments runs it once)",
            ));
        };
        if exp.duration > self.limits.max_duration {
            return Err(Error::input(
                "duration",
                format!(
                    "longer than this agent's limit of {:?} (chaos agent --max-duration)",
                    self.limits.max_duration
                ),
            ));
        }
        let name = exp.name.clone();
        let mut held = self.lock();
        if held.contains_key(&name) {
            return Err(Error::input(
                "name",
                format!("a schedule named '{name}' is held already; delete it first"),
            ));
        }
        std::fs::create_dir_all(marks_dir())
            .map_err(|e| Error::io(format!("creating {}", marks_dir().display()), e))?;
        let mark = marks_dir().join(format!("{}.json", experiment::slug(&name)));
        let now = chrono::Utc::now();
        let earlier: Option<Mark> = resume
            .then(|| std::fs::read_to_string(&mark).ok())
            .flatten()
            .and_then(|t| serde_json::from_str(&t).ok());
        let planner = match earlier {
            Some(m) => Planner::resume(schedule, m.anchor, m.last, m.seed),
            None => Planner::new(schedule, now, rand::random()),
        };
        let paused = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(Live::default()));
        let (halt, mut until) = tokio::sync::watch::channel(false);
        let opts = scheduled::Options {
            duration: None,
            report_dir: self.reports.join(experiment::slug(&name)),
            metrics: Some(self.metrics.clone()),
            paused: Some(paused.clone()),
            live: Some(live.clone()),
            mark: Some(mark.clone()),
        };
        let (text, tname) = (text.to_string(), name.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let Ok(rt) = rt else { return };
            let r = rt.block_on(scheduled::run(
                &text,
                &tname,
                planner,
                &opts,
                &mut until,
                |e| {
                    let mut e = e;
                    e["schedule"] = json!(tname);
                    eprintln!("{e}");
                },
            ));
            if let Err(e) = r {
                tracing::warn!("schedule {tname}: {}", crate::error::chain(&e));
            }
        });
        held.insert(
            name.clone(),
            Held {
                paused,
                live,
                halt,
                thread: Some(thread),
                mark,
            },
        );
        Ok(json!({"name": name}))
    }

    /// Every schedule: name, paused, its counts so far and next ticks.
    pub fn list(&self) -> Vec<Value> {
        self.lock()
            .iter()
            .map(|(name, h)| {
                let live = h.live.lock().unwrap_or_else(|p| p.into_inner()).clone();
                json!({
                    "name": name,
                    "paused": h.paused.load(Ordering::Relaxed),
                    "next": live.upcoming,
                    "summary": live.summary,
                })
            })
            .collect()
    }

    /// Pauses (its ticks are skipped as "paused") or resumes one.
    pub fn pause(&self, name: &str, paused: bool) -> Result<Value> {
        let held = self.lock();
        let h = held.get(name).ok_or_else(|| Error::NoTarget {
            flag: "name",
            message: format!("no schedule '{name}'"),
        })?;
        h.paused.store(paused, Ordering::Relaxed);
        Ok(json!({"name": name, "paused": paused}))
    }

    /// Ends one (a run going on finishes first) and forgets its mark.
    pub fn delete(&self, name: &str) -> Result<Value> {
        let h = self.lock().remove(name).ok_or_else(|| Error::NoTarget {
            flag: "name",
            message: format!("no schedule '{name}'"),
        })?;
        stop(h, true);
        Ok(json!({"name": name, "deleted": true}))
    }

    /// Ends them all, keeping their marks (the next agent resumes them).
    pub fn shutdown(&self) {
        let all = std::mem::take(&mut *self.lock());
        for (_, h) in all {
            stop(h, false);
        }
    }
}

fn stop(mut h: Held, forget: bool) {
    let _ = h.halt.send(true);
    if let Some(t) = h.thread.take() {
        let _ = t.join();
    }
    if forget {
        let _ = std::fs::remove_file(&h.mark);
        let _ = std::fs::remove_file(h.mark.with_extension("yaml"));
        let _ = std::fs::remove_dir(marks_dir());
    }
}
