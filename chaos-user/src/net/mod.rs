//! Packet faults at TC, in four steps: `spec` (what the user asked for: `input` as written, with
//! the defaults applied in one place, then checked on its own),
//! `encode` (the kernel's rule, pure), `plan` (`NetSpec::validate`: looked up on this system,
//! nothing attached) and `fault` (`NetFault::attach` applies a plan; undone on drop). `dns`
//! holds what DNS answers add: RCODEs and name patterns.

pub mod dns;
mod encode;
mod fault;
mod handoff;
mod ifb;
mod input;
mod plan;
pub mod pods;
mod qdisc;
mod set_hint;
mod spec;
mod support;
mod targets;
mod tc;
mod tcx_warmup;
#[cfg(test)]
mod tests;

pub use encode::{Encoded, Scope, action_code, encode};
pub use fault::{NetFault, classifier_for, fill_set};
pub use input::{DEFAULT_HORIZON, NetAction, NetFaultSpec};
pub use plan::NetPlan;
pub use spec::{Action, Direction, Distribution, NetSpec, Protocol};
pub use support::{needs, support};
pub use tc::AttachMode;
pub use tcx_warmup::{hold as hold_tcx_hooks, tcx_in_use};
