//! Types shared by the kernel programs (chaos-ebpf) and userspace (chaos-user).
//!
//! Everything here is `#[repr(C)]` with explicit padding, and the sizes are checked at compile
//! time, because both sides read the same bytes out of BPF maps. No `bool` and no Rust enums in
//! map values: codes are plain integers, converted with `TryFrom` in userspace.
#![no_std]

pub mod dns;
pub mod features;
pub mod filter;
pub mod maps;
pub mod syscall;

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
/// Hold the packet back: set its Earliest Departure Time (honoured by the fq qdisc).
pub const ACTION_DELAY: u8 = 2;
/// Send the packet twice (a clone through the same device and direction).
pub const ACTION_DUPLICATE: u8 = 3;
/// Flip one random bit in the packet's L4 payload.
pub const ACTION_CORRUPT: u8 = 4;
/// Delay every matching packet like `ACTION_DELAY` except those the roll picks, which leave at
/// once and overtake the others.
pub const ACTION_REORDER: u8 = 5;
/// Bandwidth limit: pace matching packets with departure times (EDT), drop beyond a horizon.
pub const ACTION_RATE: u8 = 6;
/// Turn a TCP segment into a reset (RST, ACK kept), so that its receiver drops the connection.
pub const ACTION_RESET: u8 = 7;
/// Answer a DNS query for a matching name with an error RCODE (a program of its own,
/// `maps::PROG_TC_DNS`; the names and RCODE are in `maps::DNS_NAMES`).
pub const ACTION_DNS: u8 = 8;
/// Rewrite the status code of plaintext HTTP/1.x responses to `NetRule::http_status` (programs
/// of their own, `maps::PROG_TC_HTTP_IN` / `PROG_TC_HTTP_EG`).
pub const ACTION_HTTP_ABORT: u8 = 9;

/// Whether an action sets departure times, which only the fq qdisc honours.
pub const fn needs_fq(action: u8) -> bool {
    matches!(action, ACTION_DELAY | ACTION_REORDER | ACTION_RATE)
}

/// `NetRule::opts` for `ACTION_CORRUPT`: fix the L4 checksum so that the receiver accepts the
/// packet and the application reads the wrong bytes. Without it the checksum no longer matches
/// and a receiver that verifies it discards the packet.
pub const OPT_KEEP_CSUM: u8 = 1;
/// Rule sets: the rule applies at this hook only (neither bit: at every hook it is attached to).
pub const OPT_INGRESS: u8 = 4;
pub const OPT_EGRESS: u8 = 8;
/// Delay at ingress where bpf_redirect leaves the packet unmarked as redirected and the ifb
/// device would drop it (Linux 6.1): the classifier marks the packet (`HANDOFF_MARK` in
/// `cb[0]`) and passes, and a cls_bpf filter with a mirred action behind it hands the packet
/// to the ifb.
pub const OPT_HANDOFF: u8 = 16;
/// `--direction both`: the rule names its peer (addresses and ports) as the far end of one
/// conversation: the destination of a leaving packet and the source of an arriving one. At
/// ingress (TC ingress, cgroup_skb ingress) the packet's source and destination are swapped
/// before matching.
pub const OPT_PEER: u8 = 32;
/// See `OPT_HANDOFF`.
pub const HANDOFF_MARK: u32 = 0xC4A0_5EED;

/// Rules in one classifier's rule set (`maps::NET_CFG` slots).
pub const MAX_RULES: u32 = 8;

/// Delay/reorder: jitter drawn from a normal distribution (`jitter_ns` is its standard
/// deviation) instead of a uniform one.
pub const OPT_NORMAL: u8 = 2;

/// skb->mark bit carried by duplicates so that the classifier lets them pass when they come
/// through the hook again (it clears the bit). Packets that already carry it are not faulted.
pub const DUP_MARK: u32 = 0x4000_0000;

/// Inject with certainty: a `threshold` that every `bpf_get_prandom_u32()` value is below.
pub const THRESHOLD_ALWAYS: u64 = 1 << 32;

/// Indices into the per-CPU counter arrays.
pub const STAT_MATCHED: u32 = 0;
/// Faults injected (in dry-run mode: faults that would have been injected).
pub const STAT_INJECTED: u32 = 1;
/// Audit events that did not fit in the ring buffer.
pub const STAT_EVENTS_LOST: u32 = 2;
/// Matches that would have been faulted but the budget (`--max-faults`) was spent.
pub const STAT_OVER_BUDGET: u32 = 3;
/// Packets dropped by a rule's extra loss (`--loss`), next to its main action.
pub const STAT_LOSS: u32 = 4;
pub const STAT_LEN: u32 = 5;

/// Rule flags (`NetRule::flags`, `SockRule::flags`).
/// Count what would be faulted but inject nothing (shadow mode). Cleared to go live.
pub const FLAG_DRY_RUN: u8 = 1;
/// Each injection takes a token from the budget queue; none left, no injection.
pub const FLAG_BUDGET: u8 = 2;
/// Emit an `Event` per injection (1 in `sample`) into the ring buffer.
pub const FLAG_EVENTS: u8 = 4;
/// Let matches pass while the skip queue (`--after N`) still has tokens.
pub const FLAG_AFTER: u8 = 8;

/// Largest `--max-faults`: the budget is a queue map pre-filled with one token per fault.
pub const MAX_BUDGET: u32 = 1_000_000;

/// Whether a fault fires, given the rule's threshold and one `bpf_get_prandom_u32()` value.
#[inline(always)]
pub fn roll(threshold: u64, random: u32) -> bool {
    (random as u64) < threshold
}

/// Burst faults: with probability `correlation` (a threshold like `roll`'s) repeat the previous
/// decision, else decide afresh. The long-run rate stays exactly the rule's probability p (unlike
/// netem's correlated uniforms), and the mean burst length is 1 / ((1 - correlation) (1 - p)).
#[inline(always)]
pub fn roll_correlated(threshold: u64, correlation: u64, last: bool, r1: u32, r2: u32) -> bool {
    if correlation > 0 && (r1 as u64) < correlation {
        last
    } else {
        roll(threshold, r2)
    }
}

/// One packet fault rule, read by the TC classifier from `CHAOS_NET_CFG[slot]`. What a miss
/// reads (deadline, ports, protocol, hooks, and in slot 0 the set's length) shares the first
/// 64 bytes: on a busy CPU each further cache line a packet touches shows in throughput.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) after which nothing is injected.
    pub deadline_ns: u64,
    pub sport: PortRange,
    pub dport: PortRange,
    /// `PROTO_*`.
    pub protocol: u8,
    /// `ACTION_*`.
    pub action: u8,
    /// `FLAG_*`.
    pub flags: u8,
    /// Action options (`OPT_*`).
    pub opts: u8,
    /// Slot 0 only: how many slots the rule set uses; 0 until the set is complete (the
    /// classifier passes every packet untouched).
    pub rules: u32,
    /// Depth of `cgroup_id` below the v2 root, for `bpf_skb_ancestor_cgroup_id`.
    pub cgroup_level: u32,
    /// Identifies the fault in audit events.
    pub fault_id: u32,
    /// cgroup v2 id whose processes (and descendants') packets match; 0 matches any.
    pub cgroup_id: u64,
    /// See [`roll`]; `THRESHOLD_ALWAYS` for 100 %.
    pub threshold: u64,
    /// See [`roll_correlated`]; 0 for independent decisions.
    pub correlation: u64,
    /// Extra loss on top of the main action (delay plus 5 % drop): a threshold for its own
    /// roll, 0 for none.
    pub loss: u64,
    pub src: Cidr,
    pub dst: Cidr,
    /// With `FLAG_EVENTS`: emit one event per `sample` injections on average (0 and 1: all).
    pub sample: u32,
    /// Delay at ingress: the ifb device arriving packets are redirected to (0: none).
    pub redirect_ifindex: u32,
    /// `ACTION_DELAY`: added latency, and the half-width of its uniform jitter (<= delay).
    pub delay_ns: u64,
    pub jitter_ns: u64,
    /// `ACTION_RATE`: nanoseconds of wire time per byte, in 1/65536 ns (so 10 Gbit/s is still
    /// exact to 0.01 %), and how far ahead a departure may be before the packet is dropped.
    pub ns_per_byte_q16: u64,
    pub horizon_ns: u64,
    /// `ACTION_HTTP_ABORT`: the status code responses get (100-599).
    pub http_status: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::offset_of!(NetRule, loss) + 8 == 64);
const _: () = assert!(core::mem::size_of::<NetRule>() == 184);

/// One socket-address fault rule (connect, sendmsg, bind), read from `CHAOS_SOCK_CFG[0]`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SockRule {
    pub deadline_ns: u64,
    pub threshold: u64,
    /// The programs are attached to the cgroup; this narrows to a process or a comm.
    pub scope: syscall::Scope,
    /// connect/sendmsg: destination; bind: the address being bound.
    pub dst: Cidr,
    pub dport: PortRange,
    /// Positive errno returned to the caller through `bpf_set_retval(-errno)`.
    pub errno: u32,
    /// `PROTO_ANY`, `PROTO_TCP` or `PROTO_UDP`.
    pub protocol: u8,
    /// `FLAG_*`.
    pub flags: u8,
    /// `syscall::OP_*`, for events.
    pub op: u8,
    pub _pad: u8,
    pub fault_id: u32,
    pub sample: u32,
}
const _: () = assert!(core::mem::size_of::<SockRule>() == 104);

/// Event kinds.
pub const EVENT_PACKET: u8 = 1;
pub const EVENT_CONNECT: u8 = 2;
/// Any other syscall; `Event::action` holds the `syscall::OP_*`.
pub const EVENT_SYSCALL: u8 = 3;
/// A process signalled at a syscall (crash faults); `Event::errno` holds the signal number.
pub const EVENT_CRASH: u8 = 4;

/// One injected (or, in dry-run mode, would-be) fault, sent through `CHAOS_EVENTS`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns()`.
    pub ts_ns: u64,
    /// The sending socket's cgroup (packets at egress) or the caller's cgroup (syscalls); 0 if
    /// unknown.
    pub cgroup_id: u64,
    pub fault_id: u32,
    /// Thread-group id of the caller (syscalls); 0 for packets, which run in no process context.
    pub pid: u32,
    pub comm: [u8; 16],
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    /// Positive errno for syscall faults.
    pub errno: u32,
    pub family: u8,
    pub protocol: u8,
    pub action: u8,
    /// `EVENT_*`.
    pub kind: u8,
    /// 1 when the fault was not injected because the rule is in dry-run mode.
    pub dry_run: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<Event>() == 88);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] data with explicit padding and no pointers.
    unsafe impl aya::Pod for super::NetRule {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockRule {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::syscall::SysRule {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift32: deterministic, good enough to check the statistics of the rolls.
    struct Rng(u32);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }
    }

    fn simulate(p: f64, rho: f64, n: u32) -> (f64, f64) {
        let (t, c) = ((p * 4294967296.0) as u64, (rho * 4294967296.0) as u64);
        let mut rng = Rng(0x1234_5678);
        let (mut last, mut faults, mut bursts) = (false, 0u32, 0u32);
        for _ in 0..n {
            let f = roll_correlated(t, c, last, rng.next(), rng.next());
            if f && !last {
                bursts += 1;
            }
            faults += f as u32;
            last = f;
        }
        (faults as f64 / n as f64, faults as f64 / bursts as f64)
    }

    #[test]
    fn correlation_keeps_the_rate_and_lengthens_bursts() {
        let (rate, burst) = simulate(0.3, 0.0, 1_000_000);
        assert!(
            (rate - 0.3).abs() < 0.005 && (burst - 1.0 / 0.7).abs() < 0.05,
            "{rate} {burst}"
        );
        let (rate, burst) = simulate(0.3, 0.8, 1_000_000);
        let expected = 1.0 / (0.2 * 0.7);
        assert!((rate - 0.3).abs() < 0.01, "rate {rate}");
        assert!(
            (burst - expected).abs() / expected < 0.05,
            "burst {burst} vs {expected}"
        );
    }
}
