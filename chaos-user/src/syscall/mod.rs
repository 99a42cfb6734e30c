//! Syscall faults. Today: connect(2) through cgroup_sock_addr hooks with bpf_set_retval.

mod connect;

pub use connect::{ConnectFault, ConnectPlan, ConnectSpec, SockProtocol, set_retval_refused};
