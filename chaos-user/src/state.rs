//! Records of what chaos attached that the kernel would not remove by itself: cls_bpf filters
//! (and the clsact qdisc chaos added), and background faults pinned in bpffs. A record is
//! written before the state it describes is created, so that `chaos cleanup` and the next
//! fault command can remove what a crashed chaos left behind.

use crate::{
    error::{Error, Result},
    netns::{self, Netns},
    tc_cmd::tc,
};
use serde::{Deserialize, Serialize};
use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// tc filter priority of chaos's cls_bpf filters: first, so that nothing redirects a packet
/// before the fault sees it.
pub const TC_PRIORITY: u16 = 1;

/// Records live on tmpfs: they vanish at reboot together with the kernel state they describe.
pub fn state_dir() -> PathBuf {
    std::env::var_os("CHAOS_STATE_DIR").map_or_else(|| PathBuf::from("/run/chaos"), PathBuf::from)
}

/// Where background faults pin their links and maps.
pub fn pin_root() -> PathBuf {
    std::env::var_os("CHAOS_PIN_DIR")
        .map_or_else(|| PathBuf::from("/sys/fs/bpf/chaos"), PathBuf::from)
}

/// One cls_bpf filter chaos creates (or created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcEntry {
    /// The namespace as given (/run/netns/NAME, /proc/PID/ns/net), and its inode to be sure a
    /// later cleanup enters the same one.
    pub netns: Option<PathBuf>,
    pub netns_ino: Option<u64>,
    pub iface: String,
    pub ingress: bool,
    pub priority: u16,
    pub handle: u32,
    /// chaos may have added the clsact qdisc; it is removed only if no filter is left on it.
    pub clsact_added: bool,
}

/// A root qdisc chaos replaced with fq (for delay); restoring means deleting it, which puts the
/// kernel's default back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QdiscEntry {
    pub netns: Option<PathBuf>,
    pub netns_ino: Option<u64>,
    pub iface: String,
}

impl QdiscEntry {
    /// The same interface in the same namespace (however each fault named the namespace).
    pub fn same_place(&self, other: &QdiscEntry) -> bool {
        self.iface == other.iface && self.netns_ino == other.netns_ino
    }
}

/// An ifb device chaos created (delay of arriving packets); removing means deleting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfbEntry {
    pub netns: Option<PathBuf>,
    pub netns_ino: Option<u64>,
    pub name: String,
}

/// Which kernel rule type a fault's config map holds, so that `chaos live` can switch a
/// background fault without knowing its family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// chaos_common::NetRule (packet faults).
    #[default]
    Net,
    /// chaos_common::SockRule (cgroup sock_addr syscall faults).
    Sock,
    /// chaos_common::syscall::SysRule (LSM / fmod_ret / kprobe syscall faults).
    Sys,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub fault: String,
    /// The rule type in its pinned config map.
    #[serde(default)]
    pub rule: RuleKind,
    pub detail: String,
    pub owner_pid: u32,
    /// /proc/PID/stat start time of the owner, so a recycled PID is not taken for it.
    pub owner_start: u64,
    pub background: bool,
    /// CLOCK_MONOTONIC deadline (the kernel's clock, shared by all processes).
    pub deadline_mono_ns: u64,
    /// Directory of pinned links and maps (background faults).
    pub pins: Option<PathBuf>,
    pub tc: Vec<TcEntry>,
    #[serde(default)]
    pub qdiscs: Vec<QdiscEntry>,
    #[serde(default)]
    pub ifbs: Vec<IfbEntry>,
    /// Worker processes of a stress (`chaos stress`); killed by a cleanup.
    #[serde(default)]
    pub workers: Vec<WorkerEntry>,
}

/// A process chaos started that must not outlive it (a stress worker), with its start time so
/// that a recycled pid is never signalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEntry {
    pub pid: u32,
    /// /proc/PID/stat start time (field 22).
    pub start: u64,
}

impl WorkerEntry {
    /// The entry of a running process (None: it is gone already).
    pub fn of(pid: u32) -> Option<Self> {
        start_time(pid).map(|start| Self { pid, start })
    }

    /// Whether the process recorded still runs (same pid, same start time, not a zombie).
    pub fn alive(&self) -> bool {
        let zombie = fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with(['Z', 'X'])))
            .unwrap_or(true);
        !zombie && start_time(self.pid) == Some(self.start)
    }

    /// SIGKILL to the process if it is still the one recorded: a pidfd is opened first and the
    /// start time checked after, so the signal cannot reach a pid reused in between.
    pub fn kill(&self) -> Result<()> {
        // SAFETY: plain syscalls with integer arguments; the fd is closed below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid as libc::c_int, 0) };
        if fd < 0 {
            return Ok(()); // gone
        }
        let r = if start_time(self.pid) == Some(self.start) {
            // SAFETY: as above.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd,
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            }
        } else {
            0
        };
        let err = std::io::Error::last_os_error();
        // SAFETY: our fd.
        unsafe { libc::close(fd as i32) };
        if r < 0 && err.raw_os_error() != Some(libc::ESRCH) {
            return Err(Error::io(format!("killing worker {}", self.pid), err));
        }
        Ok(())
    }
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the parenthesised command name (which may contain spaces).
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

impl Record {
    /// Notes that the clsact for the tc entry written last was there before (the entry says
    /// "added" while that is unknown), so that a cleanup keeps it.
    pub fn clsact_was_there(&mut self) -> Result<()> {
        if let Some(e) = self.tc.last_mut() {
            e.clsact_added = false;
        }
        self.save()
    }

    pub fn new(
        id: u32,
        fault: &str,
        rule: RuleKind,
        detail: String,
        deadline_mono_ns: u64,
    ) -> Self {
        let pid = std::process::id();
        Self {
            id: format!("{id:08x}"),
            fault: fault.into(),
            rule,
            detail,
            owner_pid: pid,
            owner_start: start_time(pid).unwrap_or(0),
            background: false,
            deadline_mono_ns,
            pins: None,
            tc: Vec::new(),
            qdiscs: Vec::new(),
            ifbs: Vec::new(),
            workers: Vec::new(),
        }
    }

    pub fn path(&self) -> PathBuf {
        state_dir().join(format!("{}.json", self.id))
    }

    /// Writes the record atomically (temporary file, then rename).
    pub fn save(&self) -> Result<()> {
        // What the record stands for outlives chaos: a stop signal must now undo it.
        crate::startup::undo_needed();
        let dir = state_dir();
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let tmp = dir.join(format!(".{}.tmp", self.id));
        let text = serde_json::to_vec_pretty(self).map_err(|source| Error::Json {
            context: "encoding a state record".into(),
            source,
        })?;
        fs::write(&tmp, text).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        fs::rename(&tmp, self.path())
            .map_err(|e| Error::io(format!("writing {}", self.path().display()), e))
    }

    pub fn delete(&self) {
        if let Err(e) = fs::remove_file(self.path())
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing {}: {e}", self.path().display());
        }
    }

    /// Whether the process that made this record is still running.
    pub fn owner_alive(&self) -> bool {
        start_time(self.owner_pid).is_some_and(|t| t == self.owner_start)
    }

    /// Whether the fault still acts: a background one until it is stopped, a foreground one
    /// while its chaos runs.
    pub fn in_force(&self) -> bool {
        self.background || self.owner_alive()
    }

    /// Whether nothing this record describes outlives its chaos: no cls_bpf filter, qdisc,
    /// ifb, worker or pin, only fd-owned links, which the kernel removed with the process.
    pub fn holds_nothing_after_exit(&self) -> bool {
        self.pins.is_none()
            && self.tc.is_empty()
            && self.qdiscs.is_empty()
            && self.ifbs.is_empty()
            && self.workers.is_empty()
    }

    pub fn expired(&self) -> bool {
        crate::ebpf::monotonic_ns() >= self.deadline_mono_ns
    }

    pub fn load_all() -> Vec<Record> {
        let Ok(dir) = fs::read_dir(state_dir()) else {
            return Vec::new();
        };
        let mut records: Vec<Record> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(
                |p| match fs::read(&p).map(|b| serde_json::from_slice::<Record>(&b)) {
                    Ok(Ok(r)) => Some(r),
                    other => {
                        tracing::warn!("unreadable state record {}: {other:?}", p.display());
                        None
                    }
                },
            )
            .collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        records
    }

    pub fn find(id: &str) -> Result<Record> {
        Self::load_all()
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::input("ID", format!("no fault {id}; `chaos status` lists them")))
    }

    /// Removes everything this record describes, then the record. Failures are logged and
    /// counted; the record stays if anything could not be removed, for a later retry.
    pub fn remove_all(&self) -> usize {
        let mut failures = 0;
        // Newest first, as the foreground run undoes them: the entry that added the clsact
        // (the first on the interface) is the last, when no filter of ours is left on it.
        for entry in self.tc.iter().rev() {
            if let Err(e) = remove_tc(entry) {
                tracing::warn!("fault {}: {}", self.id, crate::error::chain(&e));
                failures += 1;
            }
        }
        for q in &self.qdiscs {
            if let Err(e) = restore_qdisc(q, &self.id) {
                tracing::warn!("fault {}: {}", self.id, crate::error::chain(&e));
                failures += 1;
            }
        }
        for i in &self.ifbs {
            if let Err(e) = remove_ifb(i) {
                tracing::warn!("fault {}: {}", self.id, crate::error::chain(&e));
                failures += 1;
            }
        }
        for w in &self.workers {
            if let Err(e) = w.kill() {
                tracing::warn!("fault {}: {}", self.id, crate::error::chain(&e));
                failures += 1;
            }
        }
        if let Some(dir) = &self.pins
            && let Err(e) = remove_pins(dir)
        {
            tracing::warn!("fault {}: unpinning {}: {e}", self.id, dir.display());
            failures += 1;
        }
        if failures == 0 {
            self.delete();
        }
        failures
    }
}

/// Removes a pin directory: unlinking a pinned link detaches it once no fd holds it. The
/// kernel releases a link on a work queue, after the unlink has returned, so this waits (up to
/// 2 s) until the links' programs are gone: when `chaos stop` returns, the fault is over (a
/// kprobe stayed in force for a few milliseconds after it in an emulated guest).
fn remove_pins(dir: &Path) -> std::io::Result<()> {
    let entries: Vec<_> = match fs::read_dir(dir) {
        Ok(entries) => entries.collect::<std::io::Result<_>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let programs: Vec<u32> = entries
        .iter()
        .filter(|e| e.file_name().to_string_lossy().starts_with("link"))
        .filter_map(|e| crate::bpf_sys::pinned_link_prog_id(&e.path()).ok())
        .collect();
    for e in &entries {
        fs::remove_file(e.path())?;
    }
    fs::remove_dir(dir)?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while programs.iter().any(|&id| crate::bpf_sys::prog_loaded(id))
        && std::time::Instant::now() < until
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(())
}

/// Whether a fault other than `except` that is still in force relies on the fq chaos
/// installed at `q`: the fq stays until the last of them ends, whichever installed it.
pub fn fq_in_use(q: &QdiscEntry, except: &str) -> bool {
    Record::load_all()
        .iter()
        .any(|r| r.id != except && r.in_force() && r.qdiscs.iter().any(|o| o.same_place(q)))
}

/// Serialises the check-then-change of shared qdiscs between chaos processes: held while a
/// fault decides whether fq is chaos's and installs it, or whether it is the last user and
/// removes it. The lock is on the state directory itself (no file to leave behind), released
/// when the returned handle closes.
pub fn qdisc_lock() -> Result<fs::File> {
    let dir = state_dir();
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let file =
        fs::File::open(&dir).map_err(|e| Error::io(format!("opening {}", dir.display()), e))?;
    // SAFETY: flock on an fd we own; blocks until no other chaos holds it.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
        return Err(Error::io(
            format!("locking {}", dir.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(file)
}

fn restore_qdisc(q: &QdiscEntry, owner: &str) -> Result<()> {
    let Some(ns) = open_netns(q.netns.as_deref(), q.netns_ino)? else {
        return Ok(());
    };
    release_fq(q, owner, ns.as_ref())
}

/// Puts the default root qdisc back at `q` (in `ns`) for the fault `owner`, unless another
/// fault in force still delays through the fq: the last one restores. Under the qdisc lock
/// when it can be taken (without it, a warning, and the restore still happens).
pub fn release_fq(q: &QdiscEntry, owner: &str, ns: Option<&Netns>) -> Result<()> {
    let _lock = qdisc_lock()
        .inspect_err(|e| tracing::warn!("{e}; restoring the qdisc of {} without it", q.iface))
        .ok();
    if fq_in_use(q, owner) {
        return Ok(());
    }
    netns::within(ns, || crate::tc_cmd::restore_default_qdisc(&q.iface))?
        .map_err(|e| Error::tool(format!("restoring the qdisc of {}", q.iface), e))
}

fn remove_ifb(i: &IfbEntry) -> Result<()> {
    let Some(ns) = open_netns(i.netns.as_deref(), i.netns_ino)? else {
        return Ok(());
    };
    netns::within(ns.as_ref(), || crate::tc_cmd::delete_link(&i.name))?
        .map_err(|e| Error::tool(format!("deleting the ifb device {}", i.name), e))
}

/// Opens the namespace of an entry, if it still exists and is the same one.
fn entry_netns(entry: &TcEntry) -> Result<Option<Option<Netns>>> {
    open_netns(entry.netns.as_deref(), entry.netns_ino)
}

fn open_netns(path: Option<&Path>, ino: Option<u64>) -> Result<Option<Option<Netns>>> {
    let Some(path) = path else {
        return Ok(Some(None));
    };
    match fs::metadata(path) {
        Ok(m) if Some(m.ino()) == ino => Ok(Some(Some(Netns::resolve(&path.to_string_lossy())?))),
        // Gone (or replaced): its interfaces, filters and qdiscs went with it.
        _ => Ok(None),
    }
}

/// Deletes one recorded filter, and the clsact qdisc when chaos added it and it is now empty.
pub fn remove_tc(entry: &TcEntry) -> Result<()> {
    let Some(ns) = entry_netns(entry)? else {
        return Ok(());
    };
    let dir = if entry.ingress { "ingress" } else { "egress" };
    let result = netns::within(ns.as_ref(), || {
        if netns::ifindex(&entry.iface).is_none() {
            return Ok(()); // the interface is gone, and its qdiscs with it
        }
        let (pref, handle) = (entry.priority.to_string(), format!("{:#x}", entry.handle));
        let del = tc(&[
            "filter",
            "del",
            "dev",
            &entry.iface,
            dir,
            "pref",
            &pref,
            "handle",
            &handle,
            "bpf",
        ]);
        if let Err(e) = del
            && !e.contains("No such file")
            && !e.contains("Cannot find")
        {
            return Err(format!(
                "deleting filter {handle} on {} {dir}: {e}",
                entry.iface
            ));
        }
        if entry.clsact_added {
            remove_clsact_if_empty(&entry.iface)?;
        }
        Ok(())
    })?;
    result.map_err(|e| Error::tool("removing a cls_bpf filter", e))
}

/// The mark that chaos added the clsact qdisc of `iface` in the current thread's network
/// namespace. Every chaos fault that finds it owns the qdisc together with the one that added
/// it, so that the last to leave removes it, whichever came first; a clsact without the mark
/// was there before chaos and is never removed.
pub fn clsact_mark(iface: &str) -> PathBuf {
    let ino = fs::metadata("/proc/thread-self/ns/net").map_or(0, |m| m.ino());
    state_dir().join(format!("clsact-{ino}-{iface}"))
}

/// Removes clsact from `iface` (current namespace) when no filter is left on either hook, and
/// its mark with it.
pub fn remove_clsact_if_empty(iface: &str) -> std::result::Result<(), String> {
    let qdiscs = tc(&["qdisc", "show", "dev", iface])?;
    if !qdiscs.contains("clsact") {
        let _ = fs::remove_file(clsact_mark(iface));
        return Ok(());
    }
    for dir in ["ingress", "egress"] {
        if !tc(&["filter", "show", "dev", iface, dir])?
            .trim()
            .is_empty()
        {
            return Ok(()); // someone else's filters live there
        }
    }
    tc(&["qdisc", "del", "dev", iface, "clsact"])?;
    if let Err(e) = fs::remove_file(clsact_mark(iface))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(format!("removing {}: {e}", clsact_mark(iface).display()));
    }
    Ok(())
}

/// Removes the leftovers of foreground faults whose chaos died (run by every fault command).
pub fn reap_stale() {
    for r in Record::load_all() {
        if !r.background && !r.owner_alive() {
            tracing::warn!(
                "removing leftovers of fault {} (chaos pid {} died): {}",
                r.id,
                r.owner_pid,
                r.detail
            );
            r.remove_all();
        }
    }
}
