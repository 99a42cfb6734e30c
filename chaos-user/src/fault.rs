//! What every attached fault has, whatever its family: the loaded object with its rule (config
//! map) and counters, the in-kernel deadline, dry-run switching, and the audit stream.

use crate::{
    controls::Controls,
    ebpf::{self, Counters},
    error::Result,
    events::EventSink,
};
use aya::{Ebpf, Pod};
use chaos_common::{FLAG_DRY_RUN, NetRule, SockRule, features, syscall::SysRule};
use std::time::Duration;

/// What every attached fault offers the runner.
pub trait Fault {
    fn counters(&self) -> Result<Counters>;
    fn program_ids(&self) -> Vec<u32>;
    fn dry_run(&self) -> bool;
    /// Leaves dry-run mode with one map update.
    fn go_live(&mut self) -> Result<()>;
    fn take_events(&mut self) -> Option<EventSink>;
    fn fault_id(&self) -> u32;
    /// A rule set's rules, or a fault's targets, with their own counters (empty for a single
    /// rule on a single target).
    fn rules(&self) -> Result<Vec<(String, Counters)>> {
        Ok(Vec::new())
    }
    /// For a fault on several targets (`multi::MultiFault`): detaches the parts whose target
    /// vanished and follows those that can, says what happened (one sentence each), and
    /// whether no part is left. A fault on one target has none: the session watches its
    /// target itself.
    fn detach_gone(&mut self) -> (Vec<String>, bool) {
        (Vec::new(), false)
    }
    /// Ends the fault in the kernel at once (one map update: its rule's deadline in the past,
    /// which every program checks before acting), before its counters are read for the last
    /// time and its links are closed. Closing can take long (a tracepoint's perf event waits
    /// for RCU grace periods, 350-430 ms for a crash fault's five here): nothing is faulted
    /// meanwhile, and the summary counts every fault injected. Faults without a deadline in
    /// the kernel do nothing.
    fn disarm(&mut self) -> Result<()> {
        Ok(())
    }
}

/// `Fault` through the fault's `core`; the counters (and a rule set's breakdown) may come from
/// the fault itself.
macro_rules! delegate_to_core {
    ($t:ty) => {
        $crate::fault::delegate_to_core!(
            $t,
            |f: &$t| f.core.counters(),
            |_: &$t| Ok(Vec::new()),
            |f: &mut $t| f.core.go_live()
        );
    };
    ($t:ty, $counters:expr, $rules:expr, $go_live:expr) => {
        impl $crate::fault::Fault for $t {
            fn counters(&self) -> $crate::Result<$crate::ebpf::Counters> {
                ($counters)(self)
            }
            fn program_ids(&self) -> Vec<u32> {
                <$t>::program_ids(self)
            }
            fn dry_run(&self) -> bool {
                self.core.dry_run()
            }
            fn go_live(&mut self) -> $crate::Result<()> {
                ($go_live)(self)
            }
            fn take_events(&mut self) -> Option<$crate::events::EventSink> {
                self.core.take_events()
            }
            fn fault_id(&self) -> u32 {
                self.core.fault_id()
            }
            fn rules(&self) -> $crate::Result<Vec<(String, $crate::ebpf::Counters)>> {
                ($rules)(self)
            }
            fn disarm(&mut self) -> $crate::Result<()> {
                self.core.disarm()
            }
        }
    };
}
pub(crate) use delegate_to_core;

/// A kernel rule type (one-entry config map value).
pub trait Rule: Pod {
    fn set_deadline(&mut self, ns: u64);
    fn flags_mut(&mut self) -> &mut u8;
    fn fault_id(&self) -> u32;
    /// The optional program parts (`chaos_common::features`) the rule needs loaded.
    fn needs(&self) -> u32;
    /// The object whose programs read this rule.
    const PROGRAMS: ebpf::Programs;
}

macro_rules! impl_rule {
    ($t:ty, $programs:ident, $needs:expr) => {
        impl Rule for $t {
            fn set_deadline(&mut self, ns: u64) {
                self.deadline_ns = ns;
            }
            fn flags_mut(&mut self) -> &mut u8 {
                &mut self.flags
            }
            fn fault_id(&self) -> u32 {
                self.fault_id
            }
            fn needs(&self) -> u32 {
                ($needs)(self)
            }
            const PROGRAMS: ebpf::Programs = ebpf::Programs::$programs;
        }
    };
}
impl_rule!(NetRule, Packets, features::needs);
impl_rule!(SockRule, Calls, |r: &SockRule| features::of_flags(r.flags));
impl_rule!(SysRule, Calls, |r: &SysRule| features::of_flags(r.flags)
    | features::paths(u32::from(r.n_paths)));

/// The program parts a socket, syscall or crash fault loads (`FaultCore::load`, experiments'
/// preloads): every part but the packet-only ones, and what the rule needs (its flags' parts,
/// its number of `--path` objects).
pub fn call_parts(rule: &impl Rule) -> u32 {
    features::NOT_PACKETS | rule.needs()
}

pub struct FaultCore<R: Rule> {
    pub ebpf: Ebpf,
    rule: R,
    deadline_ns: u64,
    duration: Duration,
    cfg_map: &'static str,
    stats_map: &'static str,
    events: Option<EventSink>,
    /// The optional program parts the object was loaded with (`ebpf::load`).
    features: u32,
}

impl<R: Rule> FaultCore<R> {
    /// Loads the object (with the budget, and the parts of a socket or syscall fault:
    /// `features::NOT_PACKETS` and what the rule's flags need), sets the deadline `duration`
    /// from now and writes the rule. Programs are loaded and attached by the caller, which
    /// calls `arm` once they are in force, so that the fault lasts its whole duration from then.
    pub fn load(
        rule: R,
        controls: &Controls,
        duration: Duration,
        cfg_map: &'static str,
        stats_map: &'static str,
    ) -> Result<Self> {
        let maps = (cfg_map, stats_map);
        let parts = call_parts(&rule);
        let mut core = Self::open(rule, controls, duration, maps, parts)?;
        core.arm()?;
        Ok(core)
    }

    /// Loads the object (with the budget) and keeps the rule without writing it: the config
    /// map stays all zero, which every program reads as "no rule", until `arm`. The deadline
    /// is provisional (`duration` from now) until then. `maps`: (config, counters);
    /// `features`: the optional program parts to load (`ebpf::load`), at least those the
    /// rules written later need.
    pub fn open(
        rule: R,
        controls: &Controls,
        duration: Duration,
        (cfg_map, stats_map): (&'static str, &'static str),
        features: u32,
    ) -> Result<Self> {
        // The next fault command removes what a crashed chaos left behind.
        crate::state::reap_stale();
        crate::startup::check()?;
        let mut ebpf = ebpf::load(R::PROGRAMS, controls.max_faults, controls.after, features)?;
        crate::startup::check()?;
        let events = controls
            .events
            .as_deref()
            .map(|p| EventSink::new(&mut ebpf, p))
            .transpose()?;
        Ok(Self {
            ebpf,
            rule,
            deadline_ns: ebpf::deadline_after(duration),
            duration,
            cfg_map,
            stats_map,
            events,
            features,
        })
    }

    /// The rule `arm` will write (slot 0).
    pub fn set_rule(&mut self, rule: R) {
        self.rule = rule;
    }

    pub fn counters(&self) -> Result<Counters> {
        ebpf::counters(&self.ebpf, self.stats_map)
    }

    pub fn dry_run(&self) -> bool {
        let mut r = self.rule;
        *r.flags_mut() & FLAG_DRY_RUN != 0
    }

    /// Sets the deadline `duration` from now and writes the rule (one map update): called when
    /// the fault is (about to be) in force, as loading and verifying can take seconds on a slow
    /// machine and the fault must last its whole duration. A deadline written before stays in
    /// force until this one replaces it. Returns it.
    pub fn arm(&mut self) -> Result<u64> {
        let ns = ebpf::deadline_after(self.duration);
        self.deadline_ns = ns;
        self.rule.set_deadline(ns);
        self.write_at(0, self.rule)?;
        Ok(ns)
    }

    /// Ends the fault in the kernel (slot 0's deadline in the past: 1 ns after boot, as 0
    /// marks an unused rule slot); `Fault::disarm`.
    pub fn disarm(&mut self) -> Result<()> {
        self.update(|r| r.set_deadline(1))
    }

    /// Changes the rule in the kernel (one map update).
    pub fn update(&mut self, change: impl FnOnce(&mut R)) -> Result<()> {
        change(&mut self.rule);
        self.write_at(0, self.rule)
    }

    /// Leaves dry-run mode: one map update, the programs stay attached.
    pub fn go_live(&mut self) -> Result<()> {
        *self.rule.flags_mut() &= !FLAG_DRY_RUN;
        self.write_at(0, self.rule)
    }

    /// Writes `rule` into slot `slot` of the config map, once it is sure the loaded programs
    /// keep every part the rule needs: a rule never silently loses a filter or an action.
    pub fn write_at(&mut self, slot: u32, rule: R) -> Result<()> {
        let (missing, paths) = features::missing(rule.needs(), self.features);
        if missing != 0 || paths {
            let names: Vec<&str> = features::names(missing)
                .chain(paths.then_some("--path objects"))
                .collect();
            return Err(crate::error::Error::NotLoaded(names.join(", ")));
        }
        if slot >= features::slots_of(self.features) {
            return Err(crate::error::Error::NotLoaded(format!("rule slot {slot}")));
        }
        ebpf::set_config_at(&mut self.ebpf, self.cfg_map, slot, rule)
    }

    /// fd of map `name`, also when the audit stream has taken it out of the object.
    pub fn map_fd(&self, name: &str) -> Option<std::os::fd::RawFd> {
        if name == chaos_common::maps::EVENTS
            && let Some(e) = &self.events
        {
            return Some(e.map_fd());
        }
        self.ebpf.map(name).and_then(ebpf::map_fd)
    }

    pub fn take_events(&mut self) -> Option<EventSink> {
        self.events.take()
    }

    pub fn fault_id(&self) -> u32 {
        self.rule.fault_id()
    }

    /// CLOCK_MONOTONIC time at which the kernel stops injecting.
    pub fn deadline_ns(&self) -> u64 {
        self.deadline_ns
    }
}
