//! Process and container kill (the seeds' Chaos Monkey): a signal (default SIGKILL) to a
//! target's processes, once or every interval for a duration. For Kubernetes containers the
//! container's init process is killed, as Chaos Mesh's container-kill does, and the run reports
//! whether the runtime started the container again and how long that took (the time to
//! recover). Nothing is attached to the kernel: there is nothing to undo.

mod fault;
mod input;
mod recovery;
mod run;
mod victims;

pub use fault::KillFault;
pub use input::{DEFAULT_RECOVERY_TIMEOUT, KillFaultSpec};
pub use run::{KillEvent, KillSpec, KillSummary, KillTarget, run};
pub use victims::{Victim, of_container, of_target, signal as send};
