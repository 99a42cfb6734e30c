//! Types shared by the kernel programs (chaos-ebpf) and userspace (chaos-user).
//!
//! Everything here is `#[repr(C)]` with explicit padding, and the sizes are checked at compile
//! time, because both sides read the same bytes out of BPF maps. No `bool` and no Rust enums in
//! map values: codes are plain integers, converted with `TryFrom` in userspace.
#![no_std]

pub mod filter;
pub mod maps;

pub use filter::{Cidr, PortRange};

/// Match any protocol.
pub const PROTO_ANY: u8 = 0;
/// ICMP for IPv4 and ICMPv6 for IPv6.
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// Network fault actions (`NetRule::action`).
pub const ACTION_DROP: u8 = 1;

/// Inject with certainty: a `threshold` that every `bpf_get_prandom_u32()` value is below.
pub const THRESHOLD_ALWAYS: u64 = 1 << 32;

/// Indices into the per-CPU counter arrays.
pub const STAT_MATCHED: u32 = 0;
pub const STAT_INJECTED: u32 = 1;
pub const STAT_LEN: u32 = 2;

/// Whether a fault fires, given the rule's threshold and one `bpf_get_prandom_u32()` value.
#[inline(always)]
pub fn roll(threshold: u64, random: u32) -> bool {
    (random as u64) < threshold
}

/// One packet fault rule, read by the TC classifier from `CHAOS_NET_CFG[0]`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) after which nothing is injected.
    pub deadline_ns: u64,
    /// cgroup v2 id whose processes (and descendants') packets match; 0 matches any.
    pub cgroup_id: u64,
    /// See [`roll`]; `THRESHOLD_ALWAYS` for 100 %.
    pub threshold: u64,
    pub src: Cidr,
    pub dst: Cidr,
    pub sport: PortRange,
    pub dport: PortRange,
    /// Depth of `cgroup_id` below the v2 root, for `bpf_skb_ancestor_cgroup_id`.
    pub cgroup_level: u32,
    /// `PROTO_*`.
    pub protocol: u8,
    /// `ACTION_*`.
    pub action: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<NetRule>() == 112);

/// One socket-address fault rule (connect), read from `CHAOS_SOCK_CFG[0]`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SockRule {
    pub deadline_ns: u64,
    pub threshold: u64,
    pub dst: Cidr,
    pub dport: PortRange,
    /// Positive errno returned to the caller through `bpf_set_retval(-errno)`.
    pub errno: u32,
    /// `PROTO_ANY`, `PROTO_TCP` or `PROTO_UDP`.
    pub protocol: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<SockRule>() == 64);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] data with explicit padding and no pointers.
    unsafe impl aya::Pod for super::NetRule {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockRule {}
}
