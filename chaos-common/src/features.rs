//! The optional parts of the packet programs a loaded object keeps: one bit each, in the
//! read-only global `FEATURES` (`.rodata`), written by userspace when it loads the object.
//!
//! Why: the kernel freezes `.rodata` before the programs load, and the verifier reads a value
//! from a frozen read-only map as a constant, so a branch behind a cleared bit is never walked
//! (nor JIT-compiled). A one-rule drop is then verified without the code of delay, rate,
//! corrupt, prefix sets, events, ... (`tests/verifier-budget.json` holds the counts).
//!
//! A cleared bit fails closed where it guards a filter (a prefix set or a cgroup then matches
//! nothing), and userspace refuses to write a rule that needs a part its object lacks
//! (`needs`), so a rule never silently loses a filter or an action.

use crate::{
    FLAG_AFTER, FLAG_BUDGET, FLAG_EVENTS, MAX_RULES, NetRule, filter::FAMILY_SET,
    syscall::MAX_PATHS,
};

/// The bit of action `ACTION_*` (1..=9): bits 1 to 9.
pub const fn action(action: u8) -> u32 {
    1 << (action & 15)
}
/// Extra loss next to the main action (`NetRule::loss`).
pub const LOSS: u32 = 1 << 16;
/// Prefix sets (a `Cidr` of family `FAMILY_SET`): the first stage and the LPM tries.
pub const SETS: u32 = 1 << 17;
/// A cgroup filter (`NetRule::cgroup_id`).
pub const CGROUP: u32 = 1 << 18;
/// Audit events (`FLAG_EVENTS`).
pub const EVENTS: u32 = 1 << 19;
/// Correlated decisions or jitter draws (`NetRule::correlation`).
pub const CORRELATION: u32 = 1 << 20;
/// The budget and skip queues (`FLAG_BUDGET`, `FLAG_AFTER`).
pub const QUEUES: u32 = 1 << 21;
/// Jitter around a delay (`NetRule::jitter_ns`).
pub const JITTER: u32 = 1 << 22;
/// Everything: the object's own value, for loads that name no rule (doctor, tests).
pub const ALL: u32 = u32::MAX;

/// The number of rule slots the classifier walks (bits 24-27), so that a one-rule fault is
/// not verified as eight.
pub const fn slots(n: u32) -> u32 {
    (n & 15) << 24
}

/// The slots `features` walks: 1 to `MAX_RULES` (0 and anything larger: `MAX_RULES`).
pub const fn slots_of(features: u32) -> u32 {
    let n = (features >> 24) & 15;
    if n == 0 || n > MAX_RULES {
        MAX_RULES
    } else {
        n
    }
}

/// The bits that count the `--path` objects the file and crash programs compare (`paths`).
pub const PATHS: u32 = 15 << 28;

/// `n` `--path` objects (bits 28-31): the directory walk of the file and crash programs
/// compares each level with this many objects only, and is not walked at all for 0, so a fault
/// with one path is not verified as one with `MAX_PATHS`.
pub const fn paths(n: u32) -> u32 {
    (n & 15) << 28
}

/// The `--path` objects `features` compares: 0 to `MAX_PATHS` (anything larger, as in `ALL`:
/// `MAX_PATHS`).
pub const fn paths_of(features: u32) -> u32 {
    let n = (features & PATHS) >> 28;
    if n > MAX_PATHS as u32 {
        MAX_PATHS as u32
    } else {
        n
    }
}

/// What a socket or syscall fault loads besides what its rule needs (`needs`): every part but
/// the prefix sets, events and queues, which only packet rules and flags use, and no `--path`
/// objects (the rule says how many).
pub const NOT_PACKETS: u32 = ALL & !(SETS | EVENTS | QUEUES | PATHS);

/// Whether an object loaded with `loaded` keeps what a rule needing `needs` uses: every part
/// it names, and at least as many `--path` objects. Returns the missing parts (0: none) and
/// whether paths are missing.
pub const fn missing(needs: u32, loaded: u32) -> (u32, bool) {
    (needs & !PATHS & !loaded, paths_of(needs) > paths_of(loaded))
}

/// The parts a rule's flags (`FLAG_*`) need: events, the budget and skip queues.
pub fn of_flags(flags: u8) -> u32 {
    let flag = |bit: u8, feature: u32| if flags & bit != 0 { feature } else { 0 };
    flag(FLAG_EVENTS, EVENTS) | flag(FLAG_BUDGET | FLAG_AFTER, QUEUES)
}

/// The parts a packet rule needs.
pub fn needs(rule: &NetRule) -> u32 {
    let mut f = action(rule.action) | of_flags(rule.flags);
    if rule.loss > 0 {
        f |= LOSS;
    }
    if rule.src.family == FAMILY_SET || rule.dst.family == FAMILY_SET {
        f |= SETS;
    }
    if rule.cgroup_id != 0 {
        f |= CGROUP;
    }
    if rule.correlation > 0 {
        f |= CORRELATION;
    }
    if rule.jitter_ns > 0 {
        f |= JITTER;
    }
    f
}

/// Names of the parts in `bits` (for the error when a rule needs one its object lacks).
pub fn names(bits: u32) -> impl Iterator<Item = &'static str> {
    const NAMED: [(u32, &str); 7] = [
        (LOSS, "extra loss"),
        (SETS, "prefix sets"),
        (CGROUP, "cgroup filter"),
        (EVENTS, "audit events"),
        (CORRELATION, "correlation"),
        (QUEUES, "budget/after queues"),
        (JITTER, "jitter"),
    ];
    const ACTIONS: [&str; 10] = [
        "",
        "drop",
        "delay",
        "duplicate",
        "corrupt",
        "reorder",
        "rate",
        "reset",
        "dns",
        "http-abort",
    ];
    let actions = (1..ACTIONS.len() as u8)
        .filter(move |&a| bits & action(a) != 0)
        .map(|a| ACTIONS[a as usize]);
    NAMED
        .into_iter()
        .filter(move |(bit, _)| bits & bit != 0)
        .map(|(_, name)| name)
        .chain(actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ACTION_DELAY, ACTION_DROP, Cidr, FLAG_DRY_RUN};

    fn rule(action: u8) -> NetRule {
        // SAFETY: NetRule is #[repr(C)] plain data for which all-zero is valid.
        NetRule {
            action,
            ..unsafe { core::mem::zeroed() }
        }
    }

    #[test]
    fn a_rule_needs_its_action_and_what_it_uses() {
        assert_eq!(needs(&rule(ACTION_DROP)), action(ACTION_DROP));
        let dry = NetRule {
            flags: FLAG_DRY_RUN,
            ..rule(ACTION_DROP)
        };
        assert_eq!(needs(&dry), action(ACTION_DROP), "dry run is always there");
        let full = NetRule {
            flags: FLAG_EVENTS | FLAG_AFTER,
            loss: 1,
            cgroup_id: 7,
            correlation: 1,
            jitter_ns: 1,
            dst: Cidr {
                family: FAMILY_SET,
                ..Cidr::ANY
            },
            ..rule(ACTION_DELAY)
        };
        let all = action(ACTION_DELAY) | EVENTS | QUEUES | LOSS | CGROUP | CORRELATION | JITTER;
        assert_eq!(needs(&full), all | SETS);
        let named: usize = names(needs(&full)).count();
        assert_eq!(named, 8, "every part has a name");
    }

    #[test]
    fn slots_round_trip_and_default_to_all() {
        for n in 1..=MAX_RULES {
            assert_eq!(slots_of(slots(n) | action(ACTION_DROP)), n);
        }
        assert_eq!(slots_of(ALL), MAX_RULES);
        assert_eq!(slots_of(action(ACTION_DROP)), MAX_RULES);
        assert_eq!(
            needs(&rule(ACTION_DROP)) & slots(15),
            0,
            "no rule sets slot bits"
        );
    }

    #[test]
    fn paths_count_and_more_paths_than_loaded_is_missing() {
        for n in 0..=MAX_PATHS as u32 {
            assert_eq!(paths_of(paths(n) | of_flags(FLAG_EVENTS)), n);
        }
        assert_eq!(paths_of(ALL), MAX_PATHS as u32);
        assert_eq!(paths_of(NOT_PACKETS), 0);
        assert_eq!(paths(1) & slots(15), 0, "paths and slots do not overlap");
        let loaded = NOT_PACKETS | paths(2);
        assert_eq!(missing(paths(2), loaded), (0, false));
        assert_eq!(missing(paths(1), loaded), (0, false), "fewer paths fit");
        assert_eq!(missing(paths(3), loaded), (0, true));
        assert_eq!(missing(EVENTS | paths(0), NOT_PACKETS), (EVENTS, false));
    }
}
