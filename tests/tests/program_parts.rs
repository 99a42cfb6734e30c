//! The packet programs load only the parts their rules need (`chaos_common::features`), and
//! that never costs a filter or an action:
//! - in the kernel, a part left out fails closed: a prefix-set rule matches nothing and a drop
//!   left out drops nothing (the real classifier, run with BPF_PROG_TEST_RUN);
//! - userspace refuses to write a rule that needs a part (or a slot) its object lacks;
//! - what a one-rule fault loads is verified as one slot, not eight (fewer instructions).

use aya::programs::SchedClassifier;
use chaos::{bpf_sys::prog_test_run, controls::Controls, ebpf, fault::FaultCore, net::fill_set};
use chaos_common::{
    ACTION_DROP, Cidr, NetRule, THRESHOLD_ALWAYS,
    features::{self, ALL, SETS, needs, slots},
    filter::FAMILY_SET,
    maps::{NET_CFG, NET_STATS, PROG_TC_INGRESS},
};
use std::time::Duration;

/// TC_ACT_SHOT: the classifier's verdict for a dropped packet.
const SHOT: u32 = 2;

/// A UDP datagram to port 53.
fn packet() -> Vec<u8> {
    chaos_tests::frames::ipv4(chaos_common::PROTO_UDP, 53)
}

/// A drop of everything, in force, in slot 0 of a one-rule set.
fn drop_all() -> NetRule {
    // SAFETY: NetRule is #[repr(C)] plain data for which all-zero is valid.
    let zero: NetRule = unsafe { std::mem::zeroed() };
    NetRule {
        deadline_ns: u64::MAX,
        threshold: THRESHOLD_ALWAYS,
        action: ACTION_DROP,
        rules: 1,
        src: Cidr::ANY,
        dst: Cidr::ANY,
        sport: chaos_common::PortRange::ANY,
        dport: chaos_common::PortRange::ANY,
        fault_id: 1,
        ..zero
    }
}

/// The same drop, for destinations in a prefix set that holds 10.0.0.2.
fn drop_to_set() -> NetRule {
    NetRule {
        dst: Cidr {
            family: FAMILY_SET,
            ..Cidr::ANY
        },
        ..drop_all()
    }
}

/// The ingress classifier's verdict on `packet()` for `rule` (written as is, past userspace's
/// check) in an object loaded with `features`.
fn verdict(features: u32, rule: NetRule) -> u32 {
    let mut obj =
        ebpf::load(ebpf::Programs::Packets, None, None, features).expect("load the object");
    if rule.dst.family == FAMILY_SET {
        let set = ["10.0.0.2/32", "192.0.2.0/24"].map(|n| n.parse().expect("prefix"));
        let filled = fill_set(&mut obj, true, 0, &set);
        // Without the sets, their first stage is a one-word map that cannot hold this set.
        assert_eq!(filled.is_ok(), features & SETS != 0, "{filled:?}");
    }
    ebpf::set_config_at(&mut obj, NET_CFG, 0, rule).expect("rule");
    let p: &mut SchedClassifier =
        ebpf::program_as(&mut obj, PROG_TC_INGRESS, "classifier").expect("classifier");
    p.load().expect("load the classifier");
    let (v, _) = prog_test_run(p.fd().expect("fd"), &packet(), 1).expect("BPF_PROG_TEST_RUN");
    v
}

#[test]
fn a_part_left_out_fails_closed_in_the_kernel() {
    chaos_tests::require_root();
    // With every part, and with just what each rule needs: both drop.
    assert_eq!(verdict(ALL, drop_to_set()), SHOT, "the set rule drops");
    assert_eq!(
        verdict(needs(&drop_to_set()) | slots(1), drop_to_set()),
        SHOT
    );
    assert_eq!(verdict(needs(&drop_all()) | slots(1), drop_all()), SHOT);
    // A prefix set without the sets loaded matches nothing (not everything).
    let no_sets = needs(&drop_all()) | slots(1);
    assert_eq!(no_sets & SETS, 0);
    assert_ne!(
        verdict(no_sets, drop_to_set()),
        SHOT,
        "a set left out matches nothing"
    );
    // A drop without the drop action loaded drops nothing.
    let no_drop = features::action(chaos_common::ACTION_DELAY) | slots(1);
    assert_ne!(
        verdict(no_drop, drop_all()),
        SHOT,
        "an action left out does nothing"
    );
}

#[test]
fn a_rule_needing_a_part_not_loaded_is_refused() {
    chaos_tests::require_root();
    let features = needs(&drop_all()) | slots(1);
    let maps = (NET_CFG, NET_STATS);
    let controls = Controls::default();
    let mut core = FaultCore::open(
        drop_all(),
        &controls,
        Duration::from_secs(5),
        maps,
        features,
    )
    .expect("open");
    core.write_at(0, drop_all())
        .expect("the rule it was loaded for");
    let e = core
        .write_at(0, drop_to_set())
        .expect_err("a prefix set was not loaded");
    assert!(e.to_string().contains("prefix sets"), "{e}");
    let e = core
        .write_at(1, drop_all())
        .expect_err("one slot was loaded");
    assert!(e.to_string().contains("rule slot 1"), "{e}");
}
