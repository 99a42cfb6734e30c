//! Following a container across restarts: the kubelet replaces a container that exited with a
//! new one of the same name in the same pod (new id, pid and cgroup); a fault on it is applied
//! again to the new one, for what is left of its duration.

use super::{Query, Resolved};
use crate::{
    error::{Error, Result},
    fault::Fault,
    multi::{Follow, Reattach},
    watch::Watched,
};
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

/// Attaches the fault to a container for a duration: what it acts on comes back with it.
pub type AttachTo = Box<dyn FnMut(&Resolved, Duration) -> Result<(Box<dyn Fault>, Vec<Watched>)>>;

/// A `Follow` for container `r`: waits while no other container of its pod and name runs,
/// attaches to the new one when it does, and gives up when the pod is deleted or `until`
/// passes. The runtime is asked on a thread of its own (the session's loop is async).
pub fn follow(
    r: &Resolved,
    endpoint: Option<PathBuf>,
    until: Instant,
    mut attach: AttachTo,
) -> Follow {
    let q = Query {
        pod: Some(r.pod_label()),
        container: Some(r.container.clone()),
        endpoint,
        ..Query::default()
    };
    let old = r.container_id.clone();
    Box::new(move || {
        let left = until.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(10) {
            return Ok(Reattach::Gone("the fault's duration is over".into()));
        }
        match q.resolve_blocking() {
            Err(Error::NoTarget { flag: "--pod", .. }) => {
                Ok(Reattach::Gone("its pod was deleted".into()))
            }
            Err(Error::Input {
                flag: "--container",
                ..
            }) => Ok(Reattach::Wait),
            Err(e) => Err(e),
            Ok(found) => match found.into_iter().find(|c| c.container_id != old) {
                None => Ok(Reattach::Wait),
                Some(new) => {
                    let (fault, watched) = attach(&new, left)?;
                    Ok(Reattach::Again { fault, watched })
                }
            },
        }
    })
}
