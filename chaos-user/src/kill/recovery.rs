//! Whether a killed container runs again: the runtime lists a running container of the same
//! pod and name with another id (the kubelet starts a new one; CRI containers do not restart in
//! place).

use crate::{
    error::Error,
    k8s::{Query, Resolved},
};
use std::path::Path;

/// What the runtime says of a killed container now.
pub enum Seen {
    /// Running again, as this container.
    Again(Resolved),
    /// Not running (yet).
    Down,
    /// The pod itself is gone (deleted): it will not come back.
    PodGone,
}

pub async fn look(killed: &Resolved, endpoint: Option<&Path>) -> crate::error::Result<Seen> {
    let q = Query {
        pod: Some(killed.pod_label()),
        container: Some(killed.container.clone()),
        endpoint: endpoint.map(Path::to_path_buf),
        ..Query::default()
    };
    match q.resolve_all().await {
        Ok(found) => Ok(found
            .into_iter()
            .find(|c| c.container_id != killed.container_id)
            .map_or(Seen::Down, Seen::Again)),
        Err(Error::Input {
            flag: "--container",
            ..
        }) => Ok(Seen::Down),
        Err(Error::NoTarget { flag: "--pod", .. }) => Ok(Seen::PodGone),
        Err(e) => Err(e),
    }
}
