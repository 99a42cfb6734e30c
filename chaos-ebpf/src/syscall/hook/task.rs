//! fork(2)/clone(2) faults: task_alloc runs in the parent for every new process or thread.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use chaos_common::syscall::OP_FORK;

use super::respond;

#[lsm(hook = "task_alloc")]
pub fn chaos_fork(_ctx: LsmContext) -> i32 {
    respond(OP_FORK, |_| true)
}
