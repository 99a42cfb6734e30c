//! Syscall faults: cgroup sock_addr programs for connect, sendmsg and bind (`sock_addr`), and
//! programs on LSM hooks (BPF LSM, fmod_ret or kprobe) for the rest (`hook`), as in
//! chaos-user/src/syscall.

mod hook;
mod sock_addr;
