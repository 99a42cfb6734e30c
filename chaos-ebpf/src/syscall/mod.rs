//! Syscall faults: cgroup sock_addr programs for connect, sendmsg and bind (`sock_addr`), and
//! programs on LSM hooks (BPF LSM, fmod_ret or kprobe) for the rest (`hook`), as in
//! chaos-user/src/syscall; crash faults signal the caller from syscall-entry tracepoints
//! (`crash`).

mod crash;
mod hook;
mod sock_addr;
