//! What happens after a match, the same for every program: count it, roll the probability,
//! charge the budget, honour dry-run mode, and emit an audit event.

use crate::features::on;
use aya_ebpf::{
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    macros::map,
    maps::{PerCpuArray, Queue, RingBuf},
};
use chaos_common::{
    Event, FLAG_AFTER, FLAG_BUDGET, FLAG_DRY_RUN, FLAG_EVENTS, MAX_RULES, STAT_EVENTS_LOST,
    STAT_INJECTED, STAT_LEN, STAT_MATCHED, STAT_OVER_BUDGET,
    features::{CORRELATION, EVENTS, QUEUES},
    roll, roll_correlated,
};

/// One token per allowed fault; userspace sizes and fills it when `--max-faults` is given.
#[map]
static CHAOS_BUDGET: Queue<u32> = Queue::with_max_entries(1, 0);

/// One token per match to let through first (`--after N`).
#[map]
static CHAOS_SKIP: Queue<u32> = Queue::with_max_entries(1, 0);

/// The previous decision on this CPU, per rule slot, for correlated (burst) faults.
#[map]
static CHAOS_LAST: PerCpuArray<u32> = PerCpuArray::with_max_entries(MAX_RULES, 0);

/// Audit events; userspace drains it continuously. 256 KiB holds ~2,700 events.
#[map]
static CHAOS_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// The outcome of a match.
pub enum Verdict {
    Pass,
    /// Fault it. `dry_run`: only count, do not act.
    Fault {
        dry_run: bool,
    },
}

#[inline(always)]
pub fn bump(map: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // SAFETY: the slot belongs to this CPU and programs do not migrate while running.
        unsafe { *slot += 1 };
    }
}

/// Called once per packet or call that matched every filter of the rule in `slot` (counters at
/// slot * STAT_LEN; programs with one rule use slot 0).
#[inline(always)]
pub fn decide(
    stats: &PerCpuArray<u64>,
    slot: u32,
    threshold: u64,
    correlation: u64,
    flags: u8,
) -> Verdict {
    let base = slot * STAT_LEN;
    bump(stats, base + STAT_MATCHED);
    // Exact across CPUs for the same reason as the budget below.
    if on(QUEUES) && flags & FLAG_AFTER != 0 && matches!(CHAOS_SKIP.pop(), Ok(Some(_))) {
        return Verdict::Pass;
    }
    // SAFETY: no preconditions.
    let (r1, r2) = unsafe { (bpf_get_prandom_u32(), bpf_get_prandom_u32()) };
    let hit = match CHAOS_LAST.get_ptr_mut(slot) {
        Some(last) if on(CORRELATION) && correlation > 0 => {
            // SAFETY: this CPU's slot; programs do not migrate while running.
            let hit = roll_correlated(threshold, correlation, unsafe { *last } != 0, r1, r2);
            // SAFETY: as above.
            unsafe { *last = hit as u32 };
            hit
        }
        _ => roll(threshold, r2),
    };
    if !hit {
        return Verdict::Pass;
    }
    // Popping from a queue map is serialised by the kernel, so the budget is exact across CPUs
    // without atomic read-modify-write (which this target lacks).
    if on(QUEUES) && flags & FLAG_BUDGET != 0 && !matches!(CHAOS_BUDGET.pop(), Ok(Some(_))) {
        bump(stats, base + STAT_OVER_BUDGET);
        return Verdict::Pass;
    }
    bump(stats, base + STAT_INJECTED);
    Verdict::Fault {
        dry_run: flags & FLAG_DRY_RUN != 0,
    }
}

/// Emits an event for a fault when the rule asks for them (1 in `sample`).
#[inline(always)]
pub fn emit(
    stats: &PerCpuArray<u64>,
    slot: u32,
    flags: u8,
    sample: u32,
    fill: impl FnOnce(&mut Event),
) {
    if !on(EVENTS) || flags & FLAG_EVENTS == 0 {
        return;
    }
    // SAFETY: no preconditions.
    if sample > 1 && unsafe { bpf_get_prandom_u32() } % sample != 0 {
        return;
    }
    let Some(mut entry) = CHAOS_EVENTS.reserve::<Event>(0) else {
        bump(stats, slot * STAT_LEN + STAT_EVENTS_LOST);
        return;
    };
    let mut ev = Event {
        // SAFETY: no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id: 0,
        fault_id: 0,
        pid: 0,
        comm: [0; 16],
        src: [0; 4],
        dst: [0; 4],
        sport: 0,
        dport: 0,
        errno: 0,
        family: 0,
        protocol: 0,
        action: 0,
        kind: 0,
        dry_run: (flags & FLAG_DRY_RUN != 0) as u8,
        _pad: [0; 3],
    };
    fill(&mut ev);
    entry.write(ev);
    entry.submit(0);
}
