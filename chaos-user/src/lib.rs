//! chaos: kernel-level fault injection with eBPF.
//!
//! Each fault family validates its input into a plan (pure, testable without root), then
//! attaches programs whose links are owned by the returned fault object: dropping it detaches.

pub mod agent;
pub mod agent_client;
pub mod background;
pub mod bpf_sys;
pub mod cgroup;
pub mod child;
pub mod cidr;
pub mod controls;
pub mod doctor;
pub mod ebpf;
pub mod errno;
pub mod error;
pub mod events;
pub mod experiment;
pub mod exposition;
pub mod fault;
pub mod guards;
pub mod k8s;
pub mod kill;
pub mod multi;
pub mod net;
pub mod netns;
pub mod sandbox;
pub mod scalar;
pub mod schedule;
pub mod session;
pub mod signal;
pub mod startup;
pub mod state;
pub mod stress;
pub mod support;
pub mod syscall;
pub mod target;
pub mod tc_cmd;
pub mod units;
pub mod watch;

pub use error::{Error, Result};
