//! Background faults: links and maps pinned in bpffs so the fault outlives the chaos process
//! (still ending in the kernel at its deadline), listed by `chaos status`, removed by
//! `chaos stop` and `chaos cleanup`.

use crate::{
    ebpf::{self, Counters},
    error::{Error, Result},
    fault::Rule,
    state::{self, Record, RuleKind},
};
use aya::{
    Ebpf,
    maps::{Array, Map, MapData},
};
use chaos_common::{FLAG_DRY_RUN, NetRule, SockRule, syscall::SysRule};
use serde::Serialize;
use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

const BPF_FS_MAGIC: i64 = 0xcafe4a11;
const CFG: &str = "cfg";
const STATS: &str = "stats";

fn is_bpffs(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs into a zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated; st is a valid out pointer.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC }
}

/// Makes sure the pin root sits on bpffs (mounting /sys/fs/bpf if needed) and creates the
/// directory for this fault.
pub fn pin_dir(record: &Record) -> Result<PathBuf> {
    let root = state::pin_root();
    let parent = root.parent().unwrap_or(Path::new("/")).to_path_buf();
    if !is_bpffs(&parent) {
        let target = CString::new("/sys/fs/bpf").expect("no NUL");
        let bpf = CString::new("bpf").expect("no NUL");
        // SAFETY: mount with valid C strings and no data.
        let rc = unsafe {
            libc::mount(
                bpf.as_ptr(),
                target.as_ptr(),
                bpf.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 || !is_bpffs(&parent) {
            return Err(Error::Unsupported {
                feature: "a bpf filesystem to pin background faults in",
                hint: format!(
                    "mount it: mount -t bpf bpf /sys/fs/bpf ({} is not bpffs)",
                    parent.display()
                ),
            });
        }
    }
    let dir = root.join(&record.id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// Turns a fault's record into a background one: creates its pin directory and saves the record
/// (before anything is pinned, so a crash half-way leaves something `cleanup` knows about).
pub fn adopt(record: &mut Record) -> Result<PathBuf> {
    let dir = pin_dir(record)?;
    record.pins = Some(dir.clone());
    record.background = true;
    record.save()?;
    Ok(dir)
}

pub fn pin_maps(ebpf: &Ebpf, dir: &Path, cfg: &'static str, stats: &'static str) -> Result<()> {
    for (name, file) in [(cfg, CFG), (stats, STATS)] {
        let map = ebpf.map(name).ok_or(Error::MapNotFound(name))?;
        let path = dir.join(file);
        map.pin(&path)
            .map_err(|e| Error::pin(format!("pinning {}", path.display()), e))?;
    }
    Ok(())
}

fn pinned(dir: &Path, file: &str) -> Result<Map> {
    let path = dir.join(file);
    let data = MapData::from_pin(&path)
        .map_err(|e| Error::map(format!("opening {}", path.display()), e))?;
    Map::from_map_data(data).map_err(|e| Error::map(format!("opening {}", path.display()), e))
}

/// What `chaos status` shows for one fault.
#[derive(Debug, Serialize)]
pub struct Status {
    pub id: String,
    pub fault: String,
    pub detail: String,
    /// "active", "expired" (inert, still pinned until stop/cleanup), or "orphaned" (a foreground
    /// fault whose chaos died leaving cls_bpf filters, qdiscs, an ifb or workers; removed by the
    /// next command or `chaos cleanup`). A dead chaos's fault that left nothing (TCX and cgroup
    /// links go with its process) is not listed: its record is removed.
    pub state: &'static str,
    pub background: bool,
    pub owner_pid: u32,
    pub remaining_ms: u64,
    pub counters: Option<Counters>,
}

pub fn status() -> Vec<Status> {
    let now = ebpf::monotonic_ns();
    Record::load_all()
        .into_iter()
        .filter(|r| {
            let gone = !r.background && !r.owner_alive() && r.holds_nothing_after_exit();
            if gone {
                tracing::debug!(
                    "fault {}: its chaos died and left nothing; record removed",
                    r.id
                );
                r.delete();
            }
            !gone
        })
        .map(|r| {
            let state = if !r.background && !r.owner_alive() {
                "orphaned"
            } else if r.expired() {
                "expired"
            } else {
                "active"
            };
            let counters = r
                .pins
                .as_ref()
                .and_then(|d| pinned(d, STATS).ok())
                .and_then(|m| ebpf::counters_in(&m, STATS).ok());
            Status {
                remaining_ms: r.deadline_mono_ns.saturating_sub(now) / 1_000_000,
                id: r.id,
                fault: r.fault,
                detail: r.detail,
                state,
                background: r.background,
                owner_pid: r.owner_pid,
                counters,
            }
        })
        .collect()
}

/// Pins an attachment's link at `path` (it becomes fd-owned first), so that it outlives chaos.
pub fn pin_link<L>(link: L, what: &str, path: &Path) -> Result<()>
where
    L: TryInto<aya::programs::links::FdLink, Error = aya::programs::links::LinkError>,
{
    let fd = link.try_into().map_err(|e| Error::link(what, e))?;
    fd.pin(path)
        .map_err(|e| Error::pin(format!("pinning {} at {}", what, path.display()), e))?;
    Ok(())
}

/// Switches a background dry run to live: one update of the pinned config map.
pub fn go_live(id: &str) -> Result<()> {
    let r = Record::find(id)?;
    let dir = r.pins.as_ref().ok_or_else(|| {
        Error::input(
            "ID",
            format!("fault {id} runs in the foreground; send its chaos SIGUSR1"),
        )
    })?;
    change_pinned(dir, r.rule, Change::GoLive)
}

/// Ends a pinned fault in the kernel: slot 0's deadline 1 ns after boot, in the past, as
/// `FaultCore::disarm` does for a fault chaos holds. Done before its links are unpinned and its
/// filters removed: the kernel lets those go one by one, and a crash fault's programs would
/// otherwise still kill until the last is gone.
///
/// Errors: no pinned config map in `dir`, or one that is not a `kind` rule.
pub fn disarm_pinned(dir: &Path, kind: RuleKind) -> Result<()> {
    change_pinned(dir, kind, Change::Disarm)
}

/// What `change_pinned` does to a pinned rule.
#[derive(Clone, Copy)]
enum Change {
    /// Clears the dry-run flag.
    GoLive,
    /// Moves the deadline into the past.
    Disarm,
}

/// Rewrites slot 0 of the config map pinned in `dir`, a `kind` rule.
fn change_pinned(dir: &Path, kind: RuleKind, change: Change) -> Result<()> {
    let mut map = pinned(dir, CFG)?;
    match kind {
        RuleKind::Net => change_rule::<NetRule>(&mut map, change),
        RuleKind::Sock => change_rule::<SockRule>(&mut map, change),
        RuleKind::Sys => change_rule::<SysRule>(&mut map, change),
    }
}

fn change_rule<R: Rule>(map: &mut Map, change: Change) -> Result<()> {
    let mut cfg: Array<_, R> =
        Array::try_from(map).map_err(|e| Error::map("opening the config", e))?;
    let mut rule = cfg
        .get(&0, 0)
        .map_err(|e| Error::map("reading the config", e))?;
    match change {
        Change::GoLive => *rule.flags_mut() &= !FLAG_DRY_RUN,
        Change::Disarm => rule.set_deadline(1),
    }
    cfg.set(0, rule, 0)
        .map_err(|e| Error::map("writing the config", e))
}

/// Removes what `r` recorded, its pinned fault disarmed first (`disarm_pinned`); returns the
/// parts that could not be removed.
fn end(r: &Record) -> usize {
    if let Some(dir) = &r.pins {
        match disarm_pinned(dir, r.rule) {
            Ok(()) => tracing::debug!("fault {}: disarmed in the kernel", r.id),
            Err(e) => tracing::warn!("fault {}: {}", r.id, crate::error::chain(&e)),
        }
    }
    r.remove_all()
}

/// Stops one fault: background ones are unpinned and their filters removed; a foreground one
/// is asked to stop (SIGTERM) and cleans up after itself.
pub fn stop(id: &str) -> Result<()> {
    let r = Record::find(id)?;
    if !r.background && r.owner_alive() && held_by_agent(r.owner_pid) {
        // Signalling the owner would stop the agent and every fault it holds.
        return Err(Error::input(
            "ID",
            format!(
                "{id} is held by `chaos agent` (pid {}): stop it through the agent \
                 (chaos --agent URL --token-file F stop AGENT-ID; see its /v1/faults)",
                r.owner_pid
            ),
        ));
    }
    if !r.background && r.owner_alive() {
        // SAFETY: kill with a pid from our own record, checked alive with its start time.
        unsafe { libc::kill(r.owner_pid as i32, libc::SIGTERM) };
        return Ok(());
    }
    match end(&r) {
        0 => Ok(()),
        n => Err(Error::io(
            format!("stopping {id}"),
            std::io::Error::other(format!("{n} parts could not be removed (see warnings)")),
        )),
    }
}

/// Stops every fault: running foreground ones are asked to stop (SIGTERM), the rest removed.
/// Returns (stopped, failures).
pub fn stop_all() -> (usize, usize) {
    let (mut stopped, mut failed) = (0, 0);
    for r in Record::load_all() {
        if !r.background && r.owner_alive() && held_by_agent(r.owner_pid) {
            tracing::warn!(
                "{} is held by chaos agent (pid {}): left to it",
                r.id,
                r.owner_pid
            );
            continue;
        }
        match stop(&r.id) {
            Ok(()) => stopped += 1,
            Err(e) => {
                tracing::warn!("{}", crate::error::chain(&e));
                failed += 1;
            }
        }
    }
    let (removed, more) = cleanup();
    (stopped + removed, failed + more)
}

/// Removes everything chaos attached that outlived its command: background faults (active or
/// expired) and the leftovers of crashed foreground faults. Returns (removed, failures).
pub fn cleanup() -> (usize, usize) {
    let (mut removed, mut failed) = (0, 0);
    for r in Record::load_all() {
        if !r.background && r.owner_alive() {
            continue; // a running foreground fault cleans up after itself
        }
        match end(&r) {
            0 => removed += 1,
            n => failed += n,
        }
    }
    // Pin directories without a record (a crash between pinning and saving).
    if let Ok(dirs) = std::fs::read_dir(state::pin_root()) {
        let known: Vec<String> = Record::load_all().into_iter().map(|r| r.id).collect();
        for d in dirs.filter_map(|d| d.ok()) {
            let name = d.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                let orphan = Record {
                    pins: Some(d.path()),
                    ..Record::new(0, "orphan", RuleKind::Net, String::new(), 0)
                };
                failed += orphan.remove_all();
                removed += 1;
            }
        }
    }
    (removed, failed)
}

/// Whether process `pid` is a `chaos agent` (its command line has the `agent` subcommand).
fn held_by_agent(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|&b| b == 0).skip(1).any(|a| a == b"agent"))
        .unwrap_or(false)
}
