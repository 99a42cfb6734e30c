//! One fault on several targets (the containers or pods a Kubernetes target chose): a part per
//! target, each an attached fault of its own with what it acts on. Counters add up; each part's
//! own are the summary's breakdown, named by its target. A part whose target vanishes (a pod
//! deleted, a container gone) is detached alone and the others go on; the fault ends with
//! `target gone` when none is left.

use crate::{
    ebpf::Counters,
    error::Result,
    events::EventSink,
    fault::Fault,
    watch::{Watched, first_gone},
};

/// One target's share of the fault.
pub struct Part {
    /// `namespace/pod/container` or `namespace/pod`.
    pub label: String,
    fault: Option<Box<dyn Fault>>,
    watched: Vec<Watched>,
    /// Its counters when it was detached, and why.
    ended: Option<(Counters, String)>,
}

impl Part {
    pub fn new(label: String, fault: Box<dyn Fault>, watched: Vec<Watched>) -> Self {
        Part {
            label,
            fault: Some(fault),
            watched,
            ended: None,
        }
    }

    fn counters(&self) -> Result<Counters> {
        match (&self.fault, &self.ended) {
            (Some(f), _) => f.counters(),
            (None, Some((c, _))) => Ok(*c),
            (None, None) => Ok(Counters::default()),
        }
    }
}

pub struct MultiFault {
    parts: Vec<Part>,
    /// The first part's id and every part's programs, as attached: the summary names them
    /// even once the parts are detached.
    id: u32,
    programs: Vec<u32>,
}

impl MultiFault {
    pub fn new(parts: Vec<Part>) -> Self {
        let live = || parts.iter().filter_map(|p| p.fault.as_deref());
        let id = live().next().map_or(0, |f| f.fault_id());
        let programs = live().flat_map(|f| f.program_ids()).collect();
        MultiFault {
            parts,
            id,
            programs,
        }
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    fn live(&self) -> impl Iterator<Item = &dyn Fault> {
        self.parts.iter().filter_map(|p| p.fault.as_deref())
    }
}

impl Fault for MultiFault {
    fn counters(&self) -> Result<Counters> {
        let mut sum = Counters::default();
        for p in &self.parts {
            let c = p.counters()?;
            sum.matched += c.matched;
            sum.injected += c.injected;
            sum.over_budget += c.over_budget;
            sum.events_lost += c.events_lost;
            sum.lost += c.lost;
        }
        Ok(sum)
    }

    fn program_ids(&self) -> Vec<u32> {
        self.programs.clone()
    }

    fn dry_run(&self) -> bool {
        self.live().any(|f| f.dry_run())
    }

    fn go_live(&mut self) -> Result<()> {
        for p in &mut self.parts {
            if let Some(f) = p.fault.as_mut() {
                f.go_live()?;
            }
        }
        Ok(())
    }

    /// The audit stream of a single part; several parts have one each, and the CLI refuses
    /// `--events` for them (one file per fault).
    fn take_events(&mut self) -> Option<EventSink> {
        match self.parts.as_mut_slice() {
            [one] => one.fault.as_mut()?.take_events(),
            _ => None,
        }
    }

    fn fault_id(&self) -> u32 {
        self.id
    }

    fn rules(&self) -> Result<Vec<(String, Counters)>> {
        self.parts
            .iter()
            .map(|p| {
                let label = match &p.ended {
                    Some((_, why)) => format!("{} (detached: {why})", p.label),
                    None => p.label.clone(),
                };
                Ok((label, p.counters()?))
            })
            .collect()
    }

    fn detach_gone(&mut self) -> (Vec<String>, bool) {
        let mut gone = Vec::new();
        for p in &mut self.parts {
            let Some(f) = p.fault.as_ref() else { continue };
            if let Some(what) = first_gone(&p.watched) {
                let last = f.counters().unwrap_or_default();
                p.fault = None; // detaches this part
                gone.push(format!("{}: {what}", p.label));
                p.ended = Some((last, what));
            }
        }
        let none_left = self.parts.iter().all(|p| p.fault.is_none());
        (gone, none_left)
    }
}
