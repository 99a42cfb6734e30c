//! Kubernetes pods and containers as targets, found on the node itself through the container
//! runtime (CRI), without an API server: `cri` (the runtime's gRPC API), `selector` (label
//! selectors), `mode` (how many of the matches), `cgroup_path` (the kubelet's cgroup layouts),
//! `resolve` (a query to containers with pid, cgroup and network namespace), `follow` (a
//! restarted container gets the fault again).

pub mod cgroup_path;
pub mod cri;
mod follow;
mod mode;
mod resolve;
mod selector;

pub use follow::{AttachTo, follow};
pub use mode::{Mode, clock_seed};
pub use resolve::{Query, Resolved};
pub use selector::{Requirement, Selector};
