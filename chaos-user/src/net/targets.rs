//! What a network fault acts on, for watching while it runs (crate::watch).

use super::NetPlan;
use crate::{error::Result, watch::Watched};

impl NetPlan {
    /// Its interface (and namespace) if it has one (a cgroup ingress drop has none), and its
    /// cgroup if scoped, as they are now.
    pub fn watched(&self) -> Result<Vec<Watched>> {
        let mut w = Vec::new();
        if !self.iface.is_empty() {
            w = Watched::interface(self.netns.as_ref(), &self.iface)?;
        }
        if let Some(cg) = &self.cgroup {
            w.push(Watched::Cgroup(cg.path.clone()));
        }
        Ok(w)
    }
}
