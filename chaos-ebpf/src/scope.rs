//! Who a syscall fault applies to: the calling thread group, its comm, its cgroup (with
//! descendants). Shared by the cgroup hooks and the LSM / fmod_ret programs.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, generated::bpf_get_current_ancestor_cgroup_id,
};
use chaos_common::syscall::Scope;

/// `check_cgroup`: false for programs attached to the cgroup itself (the attachment scopes them).
#[inline(always)]
pub fn in_scope(s: &Scope, check_cgroup: bool) -> bool {
    if s.tgid != 0 && (bpf_get_current_pid_tgid() >> 32) as u32 != s.tgid {
        return false;
    }
    if check_cgroup
        && s.cgroup_id != 0
        // SAFETY: the helper only reads the current task.
        && unsafe { bpf_get_current_ancestor_cgroup_id(s.cgroup_level as i32) } != s.cgroup_id
    {
        return false;
    }
    if s.comm[0] != 0 {
        let comm = bpf_get_current_comm().unwrap_or([0; 16]);
        if !s.comm_matches(&comm) {
            return false;
        }
    }
    true
}
