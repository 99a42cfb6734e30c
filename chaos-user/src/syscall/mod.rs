//! Syscall faults, in four steps as for packets: `spec` (`input` as written, with the defaults
//! applied in one place; `SyscallSpec::check` against the catalogue), `encode` (the kernel's
//! rule, pure), `plan` (`SyscallSpec::validate`: looked up on this system, nothing attached)
//! and `fault` (`SyscallFault::attach`). A catalogue of syscalls (`catalogue`), each carried by
//! cgroup sock_addr hooks (`sock_addr`) or by an LSM hook loaded as BPF LSM, fmod_ret or kprobe,
//! whichever the kernel accepts (`hook`); and crash faults, which signal the process at the
//! call from its entry tracepoints (`crash`).

pub mod catalogue;
pub mod crash;
mod encode;
mod fault;
mod hook;
mod input;
pub mod kernel_btf;
mod kernel_cache;
pub(crate) mod kprobe;
mod paths;
mod plan;
pub mod pods;
mod sock_addr;
mod spec;
mod support;
mod trampoline;

pub use catalogue::{CATALOGUE, Entry, Filters, Hook};
pub use crash::{CrashCall, CrashFault, CrashPlan};
pub use encode::{regular_only, scope, sock_rule, sys_rule};
pub use fault::SyscallFault;
pub use hook::{Backend, HookFault, HookPlan, lsm_active};
pub use input::SyscallFaultSpec;
pub use plan::SyscallPlan;
use plan::Validated;
pub use sock_addr::{SockFault, SockPlan, SockProtocol, set_retval_refused};
pub use spec::SyscallSpec;
pub use support::{needs, support};
