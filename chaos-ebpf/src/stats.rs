//! Per-CPU counters: the bpfel target has no atomic read-modify-write, and per-CPU slots need none.

use aya_ebpf::maps::PerCpuArray;

#[inline(always)]
pub fn bump(map: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // SAFETY: the slot belongs to this CPU and programs do not migrate while running.
        unsafe { *slot += 1 };
    }
}
