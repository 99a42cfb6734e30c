//! Map names shared by both sides. The kernel side names its `#[map] static`s exactly so
//! (aya's macro takes the identifier as the name); names stay within the kernel's 15 bytes.

/// `Array<NetRule>`, `MAX_RULES` slots (a rule set); a single fault uses slot 0.
pub const NET_CFG: &str = "CHAOS_NET_CFG";
/// `PerCpuArray<u64>` of `STAT_LEN` counters per rule slot for the TC classifier (slot i at
/// i * STAT_LEN).
pub const NET_STATS: &str = "CHAOS_NET_STATS";
/// `LpmTrie<[u32; 5], u8>` of source / destination prefixes (see `filter::lpm_data`), used when
/// the rule's `src` / `dst` has `FAMILY_SET`.
pub const NET_SRC_SET: &str = "CHAOS_NET_SRC";
pub const NET_DST_SET: &str = "CHAOS_NET_DST";
/// `Array<u64>` of `filter::HINT_WORDS`: the first stage in front of those tries.
pub const NET_SET_HINT: &str = "CHAOS_NET_HINT";
/// `Array<SockRule>`, one entry.
pub const SOCK_CFG: &str = "CHAOS_SOCK_CFG";
/// `PerCpuArray<u64>` of `STAT_LEN` counters for the sock_addr programs.
pub const SOCK_STATS: &str = "CHAOS_SOCK_STAT";

/// `Array<SysRule>`, one entry, for the LSM / fmod_ret programs.
pub const SYS_CFG: &str = "CHAOS_SYS_CFG";
/// `PerCpuArray<u64>` of `STAT_LEN` counters for them.
pub const SYS_STATS: &str = "CHAOS_SYS_STAT";
/// `Queue<u32>` of tokens for `--after N`: matches pass while one can be taken.
pub const SKIP: &str = "CHAOS_SKIP";

/// `Queue<u32>` of budget tokens, sized to `--max-faults` at load time.
pub const BUDGET: &str = "CHAOS_BUDGET";
/// `RingBuf` of `Event`s.
pub const EVENTS: &str = "CHAOS_EVENTS";

/// Program names (function names in chaos-ebpf).
/// The classifier, one entry point per hook (a duplicate must go back the way it came).
pub const PROG_TC_INGRESS: &str = "chaos_tc_in";
pub const PROG_TC_EGRESS: &str = "chaos_tc_eg";
/// Ingress delay: departure time, then redirect to an ifb device whose fq holds the packet.
pub const PROG_TC_INGRESS_IFB: &str = "chaos_tc_in_ifb";
/// The cls_bpf filter (no direct action, with mirred) that hands marked packets to the ifb.
pub const PROG_TC_HANDOFF: &str = "chaos_tc_handoff";
/// cgroup_skb ingress: drops scoped to a cgroup for arriving packets.
pub const PROG_CGROUP_INGRESS: &str = "chaos_cg_in";
pub const PROG_CONNECT4: &str = "chaos_connect4";
pub const PROG_CONNECT6: &str = "chaos_connect6";
pub const PROG_SENDMSG4: &str = "chaos_sendmsg4";
pub const PROG_SENDMSG6: &str = "chaos_sendmsg6";
pub const PROG_BIND4: &str = "chaos_bind4";
pub const PROG_BIND6: &str = "chaos_bind6";
/// DNS answers: the classifier that turns matching queries back as answers, and its names.
pub const PROG_TC_DNS: &str = "chaos_tc_dns";
pub const DNS_NAMES: &str = "CHAOS_DNS_NAMES";
/// Crash faults: tracepoints on syscall entry; the first filters by the descriptor's file.
pub const PROG_CRASH_FD: &str = "chaos_crash_fd";
pub const PROG_CRASH_CALL: &str = "chaos_crash_call";

const _: () = {
    assert!(NET_CFG.len() <= 15);
    assert!(NET_STATS.len() <= 15);
    assert!(NET_SRC_SET.len() <= 15);
    assert!(NET_DST_SET.len() <= 15);
    assert!(NET_SET_HINT.len() <= 15);
    assert!(SOCK_CFG.len() <= 15);
    assert!(SOCK_STATS.len() <= 15);
    assert!(BUDGET.len() <= 15);
    assert!(SYS_CFG.len() <= 15);
    assert!(SYS_STATS.len() <= 15);
    assert!(SKIP.len() <= 15);
    assert!(EVENTS.len() <= 15);
};
