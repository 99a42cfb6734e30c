//! The kernel object (built from chaos-ebpf by build.rs and embedded) and the map plumbing shared
//! by every fault family: load, write the one-entry config, read the per-CPU counters.

use crate::error::{Error, Result};
use aya::{
    Ebpf, Pod,
    maps::{Array, PerCpuArray, Queue},
};
use chaos_common::{
    STAT_EVENTS_LOST, STAT_INJECTED, STAT_LOSS, STAT_MATCHED, STAT_OVER_BUDGET,
    maps::{BUDGET, SKIP},
};
use serde::Serialize;
use std::time::Duration;

pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/chaos.bpf.o"));
/// The same object with only the packet programs (classifiers, cgroup_skb) or only the others
/// (build.rs): aya parses and links every program of what it is given.
static PACKETS: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/chaos-packets.bpf.o"));
pub static CALLS: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/chaos-calls.bpf.o"));

/// Which of the embedded objects to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Programs {
    /// Every program (`chaos doctor`, tests and benchmarks).
    All,
    /// The classifiers and the cgroup_skb program (packet faults).
    Packets,
    /// The socket, syscall and crash programs.
    Calls,
}

impl Programs {
    fn object(self) -> &'static [u8] {
        match self {
            Programs::All => OBJECT,
            Programs::Packets => PACKETS,
            Programs::Calls => CALLS,
        }
    }
}

/// `load`'s arguments: (object, budget, skip, features).
type Args = (Programs, Option<u32>, Option<u32>, u32);

thread_local! {
    /// Objects loaded ahead of time (`preload`).
    static PRELOADED: std::cell::RefCell<Vec<(Args, Ebpf)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Loads an object now, with `programs` already through the verifier, for a later `load` with
/// the same arguments on this thread (first preloaded, first taken): an experiment's phase then
/// starts when planned instead of after parsing the object, creating its maps and verifying its
/// programs (tens of milliseconds natively, seconds under emulation).
pub fn preload(args: Args, programs: &[&'static str]) -> Result<()> {
    use aya::programs::Program;
    let mut ebpf = load_new(args)?;
    for &name in programs {
        let loaded = crate::startup::load(|| match ebpf.program_mut(name) {
            Some(Program::SchedClassifier(p)) => Some(p.load()),
            Some(Program::CgroupSockAddr(p)) => Some(p.load()),
            Some(Program::CgroupSkb(p)) => Some(p.load()),
            _ => None,
        });
        if let Some(loaded) = loaded {
            loaded.map_err(|e| {
                crate::startup::or_interrupted(|| Error::program(format!("loading {name}"), e))
            })?;
        }
    }
    PRELOADED.with(|p| p.borrow_mut().push((args, ebpf)));
    Ok(())
}

/// A program's load (`|| prog.load()`), where a preloaded program counts as loaded. A stop
/// signal cuts it short (`startup::load`): map its error with `startup::or_interrupted`.
pub fn load_once(
    load: impl FnOnce() -> std::result::Result<(), aya::programs::ProgramError>,
) -> std::result::Result<(), aya::programs::ProgramError> {
    match crate::startup::load(load) {
        Err(aya::programs::ProgramError::AlreadyLoaded) => Ok(()),
        r => r,
    }
}

/// Loads the object: creates its maps; programs are loaded one by one by their users.
/// With a budget, the budget queue is sized and filled with one token per allowed fault; with
/// `skip` (`--after N`), the skip queue with one token per match to let through first.
/// `features` (`chaos_common::features` bits, `ALL` for everything) are the optional parts of
/// the packet programs to keep: the verifier skips the others. `programs`: which object.
pub fn load(
    programs: Programs,
    budget: Option<u32>,
    skip: Option<u32>,
    features: u32,
) -> Result<Ebpf> {
    let key = (programs, budget, skip, features);
    let ready = PRELOADED.with(|p| {
        let mut p = p.borrow_mut();
        let i = p.iter().position(|(k, _)| *k == key)?;
        Some(p.remove(i).1)
    });
    match ready {
        Some(ebpf) => Ok(ebpf),
        None => load_new(key),
    }
}

fn load_new((programs, budget, skip, features): Args) -> Result<Ebpf> {
    raise_memlock();
    // No kernel BTF: these programs use only UAPI contexts (no CO-RE relocations), and parsing
    // /sys/kernel/btf/vmlinux would cost tens of milliseconds before every fault starts.
    let mut loader = crate::startup::loader();
    let queues = [(BUDGET, budget), (SKIP, skip)];
    for (name, n) in queues {
        if let Some(n) = n {
            loader.map_max_entries(name, n);
        }
    }
    loader.override_global(FEATURES, &features, true);
    // Maps only a part left out reads are made as small as the kernel allows: the first stage
    // of the prefix sets (256 KiB) and the event ring (256 KiB) are allocated and zeroed by
    // every map creation.
    if features & chaos_common::features::SETS == 0 {
        loader.map_max_entries(chaos_common::maps::NET_SET_HINT, 1);
    }
    if features & chaos_common::features::EVENTS == 0 {
        loader.map_max_entries(chaos_common::maps::EVENTS, page_size());
    }
    let mut ebpf = loader.load(programs.object())?;
    for (name, n) in queues {
        if let Some(n) = n {
            fill_tokens(&mut ebpf, name, n)?;
        }
    }
    Ok(ebpf)
}

fn fill_tokens(ebpf: &mut Ebpf, name: &'static str, n: u32) -> Result<()> {
    let mut q: Queue<_, u32> = ebpf
        .map_mut(name)
        .ok_or(Error::MapNotFound(name))?
        .try_into()
        .map_err(|e| Error::map(format!("opening {name}"), e))?;
    for i in 0..n {
        q.push(i, 0)
            .map_err(|e| Error::map(format!("filling {name}"), e))?;
    }
    Ok(())
}

/// The smallest ring buffer: one page.
fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(n).unwrap_or(4096)
}

/// The read-only global that holds the features (chaos-ebpf/src/features.rs).
const FEATURES: &str = "CHAOS_FEATURES";

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones ignore it.
fn raise_memlock() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        tracing::debug!(
            "could not raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Writes entry 0 of a one-entry config array.
pub fn set_config<V: Pod>(ebpf: &mut Ebpf, map: &'static str, value: V) -> Result<()> {
    set_config_at(ebpf, map, 0, value)
}

/// Writes entry `index` of an array map (a rule set's slot, a count).
pub fn set_config_at<V: Pod>(
    ebpf: &mut Ebpf,
    map: &'static str,
    index: u32,
    value: V,
) -> Result<()> {
    let mut cfg: Array<_, V> = ebpf
        .map_mut(map)
        .ok_or(Error::MapNotFound(map))?
        .try_into()
        .map_err(|e| Error::map(format!("opening {map}"), e))?;
    cfg.set(index, value, 0)
        .map_err(|e| Error::map(format!("writing {map}"), e))
}

/// What a fault's programs counted, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Packets or calls that matched every filter (before the probability roll).
    pub matched: u64,
    /// Of those, how many were faulted (in dry-run mode: would have been).
    pub injected: u64,
    /// Faults not injected because the budget was spent.
    pub over_budget: u64,
    /// Audit events dropped because the ring buffer was full.
    pub events_lost: u64,
    /// Packets dropped by the extra loss of a net rule (`--loss`).
    pub lost: u64,
}

pub fn counters(ebpf: &Ebpf, map: &'static str) -> Result<Counters> {
    counters_in(ebpf.map(map).ok_or(Error::MapNotFound(map))?, map)
}

/// Counters of rule `slot` of a rule set.
pub fn slot_counters(ebpf: &Ebpf, map: &'static str, slot: u32) -> Result<Counters> {
    let stats = ebpf.map(map).ok_or(Error::MapNotFound(map))?;
    counters_at(stats, map, slot * chaos_common::STAT_LEN)
}

/// Counters from a stats map (loaded here, or opened from a pin).
pub fn counters_in(stats: &aya::maps::Map, map: &str) -> Result<Counters> {
    counters_at(stats, map, 0)
}

fn counters_at(stats: &aya::maps::Map, map: &str, base: u32) -> Result<Counters> {
    let stats: PerCpuArray<_, u64> = stats
        .try_into()
        .map_err(|e| Error::map(format!("opening {map}"), e))?;
    let sum = |i: u32| -> Result<u64> {
        let v = stats
            .get(&(base + i), 0)
            .map_err(|e| Error::map(format!("reading {map}"), e))?;
        Ok(v.iter().sum())
    };
    Ok(Counters {
        matched: sum(STAT_MATCHED)?,
        injected: sum(STAT_INJECTED)?,
        over_budget: sum(STAT_OVER_BUDGET)?,
        events_lost: sum(STAT_EVENTS_LOST)?,
        lost: sum(STAT_LOSS)?,
    })
}

/// CLOCK_MONOTONIC now, the clock bpf_ktime_get_ns() reads.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime with a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The in-kernel deadline for a fault that starts now and lasts `d`.
pub fn deadline_after(d: Duration) -> u64 {
    monotonic_ns().saturating_add(d.as_nanos() as u64)
}

/// The fd of a map of the loaded object, for the map kinds chaos uses.
pub fn map_fd(m: &aya::maps::Map) -> Option<std::os::fd::RawFd> {
    use aya::maps::Map;
    use std::os::fd::{AsFd, AsRawFd};
    let data = match m {
        Map::Array(d) | Map::PerCpuArray(d) | Map::Queue(d) | Map::RingBuf(d) => d,
        Map::HashMap(d) | Map::PerCpuHashMap(d) | Map::LruHashMap(d) | Map::LpmTrie(d) => d,
        _ => return None,
    };
    Some(data.fd().as_fd().as_raw_fd())
}

/// Kernel id of a loaded program (for reports and for tests that check nothing is left).
pub fn program_id(prog: &aya::programs::Program) -> Option<u32> {
    prog.info().ok().map(|i| i.id())
}

/// The program `name` of `ebpf` as the program type `P` (`kind` names it in errors).
pub fn program_as<'a, P>(
    ebpf: &'a mut aya::Ebpf,
    name: &'static str,
    kind: &'static str,
) -> Result<&'a mut P>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(Error::ProgramNotFound(name))?
        .try_into()
        .map_err(|e| Error::program(kind, e))
}
