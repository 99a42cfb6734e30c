//! One fault on several targets (the containers or pods a Kubernetes target chose): a part per
//! target, each an attached fault of its own with what it acts on. Counters add up; each part's
//! own are the summary's breakdown, named by its target. A part whose target vanishes is
//! detached alone and the others go on; a part that can follow its target (a restarted
//! container: new pid, new cgroup) is applied again to the new one; the fault ends with
//! `target gone` when no part is left.

use crate::{
    ebpf::Counters,
    error::Result,
    events::EventSink,
    fault::Fault,
    watch::{Watched, first_gone},
};

/// What following a vanished target found.
pub enum Reattach {
    /// The target is back (a container restarted): the fault on it, and what it acts on now.
    Again {
        fault: Box<dyn Fault>,
        watched: Vec<Watched>,
    },
    /// Not back yet: asked again at the next look.
    Wait,
    /// It will not come back (the pod was deleted): why.
    Gone(String),
}

/// Looks for a part's target again (`Part::follow`).
pub type Follow = Box<dyn FnMut() -> Result<Reattach>>;

/// One target's share of the fault.
pub struct Part {
    /// `namespace/pod/container` or `namespace/pod`.
    pub label: String,
    fault: Option<Box<dyn Fault>>,
    watched: Vec<Watched>,
    follow: Option<Follow>,
    /// Counters of its earlier incarnations, and how many times it was followed.
    past: Counters,
    followed: u32,
    /// Detached and waiting for its target to come back: what vanished.
    waiting: Option<String>,
    /// Detached for good, and why.
    ended: Option<String>,
}

fn add(a: &mut Counters, c: Counters) {
    a.matched += c.matched;
    a.injected += c.injected;
    a.over_budget += c.over_budget;
    a.events_lost += c.events_lost;
    a.lost += c.lost;
}

impl Part {
    pub fn new(label: String, fault: Box<dyn Fault>, watched: Vec<Watched>) -> Self {
        Part {
            label,
            fault: Some(fault),
            watched,
            follow: None,
            past: Counters::default(),
            followed: 0,
            waiting: None,
            ended: None,
        }
    }

    /// When its target vanishes, `follow` looks for it again (at every look of the session,
    /// four a second) instead of ending this part.
    pub fn following(mut self, follow: Follow) -> Self {
        self.follow = Some(follow);
        self
    }

    fn counters(&self) -> Result<Counters> {
        let mut c = self.past;
        if let Some(f) = &self.fault {
            add(&mut c, f.counters()?);
        }
        Ok(c)
    }

    /// Detaches it if its target vanished; follows a waiting one. Says what happened.
    fn look(&mut self) -> Option<String> {
        if let Some(f) = &self.fault {
            let what = first_gone(&self.watched)?;
            add(&mut self.past, f.counters().unwrap_or_default());
            self.fault = None; // detaches this part
            if self.follow.is_none() {
                self.ended = Some(what.clone());
                return Some(format!("detached from {}: {what}", self.label));
            }
            self.waiting = Some(what);
        }
        self.waiting.as_ref()?;
        let follow = self.follow.as_mut()?;
        match follow() {
            Ok(Reattach::Wait) => None,
            Ok(Reattach::Again { fault, watched }) => {
                self.fault = Some(fault);
                self.watched = watched;
                self.followed += 1;
                let what = self.waiting.take().unwrap_or_default();
                Some(format!(
                    "{} came back ({what}): the fault follows it",
                    self.label
                ))
            }
            Ok(Reattach::Gone(why)) => self.end(why),
            Err(e) => self.end(format!("following it failed: {e}")),
        }
    }

    fn end(&mut self, why: String) -> Option<String> {
        self.waiting = None;
        let msg = format!("detached from {}: {why}", self.label);
        self.ended = Some(why);
        Some(msg)
    }

    fn over(&self) -> bool {
        self.fault.is_none() && self.waiting.is_none()
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

    fn live(&self) -> impl Iterator<Item = &dyn Fault> {
        self.parts.iter().filter_map(|p| p.fault.as_deref())
    }
}

impl Fault for MultiFault {
    fn counters(&self) -> Result<Counters> {
        let mut sum = Counters::default();
        for p in &self.parts {
            add(&mut sum, p.counters()?);
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

    fn disarm(&mut self) -> Result<()> {
        for p in &mut self.parts {
            if let Some(f) = p.fault.as_mut() {
                f.disarm()?;
            }
        }
        Ok(())
    }

    fn rules(&self) -> Result<Vec<(String, Counters)>> {
        self.parts
            .iter()
            .map(|p| {
                let mut label = p.label.clone();
                if p.followed > 0 {
                    label.push_str(&format!(" (followed {} restart(s))", p.followed));
                }
                if let Some(why) = &p.ended {
                    label.push_str(&format!(" (detached: {why})"));
                }
                Ok((label, p.counters()?))
            })
            .collect()
    }

    fn detach_gone(&mut self) -> (Vec<String>, bool) {
        let news = self.parts.iter_mut().filter_map(Part::look).collect();
        (news, self.parts.iter().all(Part::over))
    }
}
