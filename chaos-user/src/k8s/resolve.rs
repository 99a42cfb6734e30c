//! Kubernetes targets (`--pod`, `--selector` with `--namespace`, `--container`, `--mode`)
//! resolved on this node through CRI: sandboxes by the kubelet's labels, their running
//! containers, each container's pid, and from the pid its cgroup v2 path and network
//! namespace. Errors name what was looked for and where.

use super::{
    Mode, Selector,
    cri::{Container, Runtime, Sandbox},
};
use crate::error::{Error, Result};
use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Which containers a fault is for, as given.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `NAMESPACE/NAME`.
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub selector: Option<Selector>,
    /// Only this container of each pod (default: every container).
    pub container: Option<String>,
    pub mode: Mode,
    /// The runtime's socket; default: the first of `cri::DEFAULT_ENDPOINTS` that exists.
    pub endpoint: Option<PathBuf>,
}

/// One container on this node, with what faults need of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resolved {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub container_id: String,
    /// Host pid of the container's init process.
    pub pid: u32,
    /// cgroup v2 path relative to the mount (`/kubepods/besteffort/pod<uid>/<id>`).
    pub cgroup: String,
    /// `/proc/PID/ns/net` of the pod's sandbox process (of the container's where the runtime
    /// does not give the sandbox's pid).
    pub netns: PathBuf,
    /// The network namespace's inode: containers of one pod share it.
    pub netns_inode: u64,
    /// How many containers of its pod run (chosen or not): a network fault covers the whole
    /// pod only when every one of them was chosen.
    pub siblings: usize,
}

impl Resolved {
    /// `namespace/pod/container`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.pod, self.container)
    }

    /// `namespace/pod`.
    pub fn pod_label(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }

    /// Whether the container uses the node's own network namespace (hostNetwork).
    pub fn host_network(&self) -> bool {
        let own = std::fs::metadata("/proc/self/ns/net").map(|m| m.ino()).ok();
        own == Some(self.netns_inode)
    }
}

impl Query {
    /// Whether any Kubernetes target was given.
    pub fn is_set(&self) -> bool {
        self.pod.is_some() || self.selector.is_some()
    }

    /// The checks that need no runtime: one of `--pod` or `--selector`, a namespace for the
    /// selector, `NAMESPACE/NAME` for the pod.
    pub fn check(&self) -> Result<()> {
        match (&self.pod, &self.selector) {
            (Some(_), Some(_)) => Err(Error::input(
                "--pod",
                "give --pod NAMESPACE/NAME or --selector with --namespace, not both",
            )),
            (Some(p), None) => pod_name(p).map(|_| ()),
            (None, Some(_)) if self.namespace.is_none() => Err(Error::input(
                "--namespace",
                "a selector is looked up in one namespace: give --namespace NS",
            )),
            (None, None) if self.container.is_some() => Err(Error::input(
                "--container",
                "a container is named within a pod: give --pod NAMESPACE/NAME or --selector",
            )),
            _ => Ok(()),
        }
    }

    /// Every matching container on this node (before `mode` picks among them), in pod then
    /// container order.
    pub async fn resolve_all(&self) -> Result<Vec<Resolved>> {
        self.check()?;
        let mut rt = Runtime::connect(self.endpoint.as_deref()).await?;
        let pods = self.pods(&mut rt).await?;
        let mut out = Vec::new();
        for pod in pods {
            let mut containers = rt.containers(&pod.id).await?;
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            let siblings = containers.len();
            let chosen = self.containers_of(&pod, containers, &rt)?;
            let holder = rt.sandbox_pid(&pod.id).await?;
            for c in chosen {
                let Some(pid) = rt.pid(&c.id).await? else {
                    continue; // exited since the listing
                };
                // Listed as running, but its process just exited (the runtime has not seen
                // it yet): not a target any more.
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    continue;
                }
                match located(&pod, c, pid, holder.unwrap_or(pid), siblings) {
                    Ok(r) => out.push(r),
                    // It exited while being looked at: not running any more.
                    Err(_) if !Path::new(&format!("/proc/{pid}")).exists() => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// `resolve_all` from synchronous code inside an async runtime: on a thread of its own,
    /// with a runtime of its own (tokio does not nest).
    pub fn resolve_blocking(&self) -> Result<Vec<Resolved>> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::io("starting a runtime to ask CRI", e))?;
                rt.block_on(self.resolve_all())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::Runtime {
                    endpoint: "CRI".into(),
                    message: "the lookup thread panicked".into(),
                })
            })
        })
    }

    /// The matching containers, `mode` applied (`seed` picks; chaos seeds it from the clock).
    pub async fn resolve(&self, seed: u64) -> Result<Vec<Resolved>> {
        let all = self.resolve_all().await?;
        Ok(self.mode.pick(all, seed))
    }

    async fn pods(&self, rt: &mut Runtime) -> Result<Vec<Sandbox>> {
        let where_ = format!("on this node (runtime {})", rt.endpoint.display());
        if let Some(p) = &self.pod {
            let (ns, name) = pod_name(p)?;
            let all = rt
                .sandboxes(HashMap::from([(
                    super::cri::POD_NAMESPACE.into(),
                    ns.into(),
                )]))
                .await?;
            let mut pods: Vec<Sandbox> = all.iter().filter(|s| s.name == name).cloned().collect();
            if pods.is_empty() {
                let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                let others = if names.is_empty() {
                    format!("no pods of namespace {ns} run here")
                } else {
                    format!("pods of namespace {ns} here: {}", names.join(", "))
                };
                return Err(Error::NoTarget {
                    flag: "--pod",
                    message: format!("no running pod {ns}/{name} {where_}; {others}"),
                });
            }
            // A ready pod has one ready sandbox (a re-created one replaces the old).
            pods.truncate(1);
            return Ok(pods);
        }
        let ns = self.namespace.clone().unwrap_or_default();
        let sel = self.selector.clone().unwrap_or_default();
        let mut equal = sel.equalities();
        equal.insert(super::cri::POD_NAMESPACE.into(), ns.clone());
        let mut pods: Vec<Sandbox> = rt
            .sandboxes(equal)
            .await?
            .into_iter()
            .filter(|s| sel.matches(&s.labels))
            .collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        if pods.is_empty() {
            return Err(Error::NoTarget {
                flag: "--selector",
                message: format!("no running pod of namespace {ns} matches the selector {where_}"),
            });
        }
        Ok(pods)
    }

    fn containers_of(
        &self,
        pod: &Sandbox,
        containers: Vec<Container>,
        rt: &Runtime,
    ) -> Result<Vec<Container>> {
        let Some(want) = &self.container else {
            if containers.is_empty() && self.pod.is_some() {
                return Err(Error::NoTarget {
                    flag: "--pod",
                    message: format!(
                        "pod {}/{} has no running container (runtime {})",
                        pod.namespace,
                        pod.name,
                        rt.endpoint.display()
                    ),
                });
            }
            return Ok(containers);
        };
        let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
        let chosen: Vec<Container> = containers.into_iter().filter(|c| &c.name == want).collect();
        if chosen.is_empty() && self.pod.is_some() {
            return Err(Error::input(
                "--container",
                format!(
                    "pod {}/{} has no running container '{want}'; its running containers: {}",
                    pod.namespace,
                    pod.name,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
        Ok(chosen)
    }
}

/// `NAMESPACE/NAME`.
fn pod_name(p: &str) -> Result<(&str, &str)> {
    p.split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| {
            Error::input(
                "--pod",
                format!("'{p}' is not NAMESPACE/NAME; e.g. --pod shop/payments-0"),
            )
        })
}

/// A container's cgroup, read from its pid, and its pod's network namespace, read from the pid
/// of the process that holds it (`netns_pid`: the sandbox's, which outlives container
/// restarts).
fn located(
    pod: &Sandbox,
    c: Container,
    pid: u32,
    netns_pid: u32,
    siblings: usize,
) -> Result<Resolved> {
    let file = format!("/proc/{pid}/cgroup");
    let text =
        std::fs::read_to_string(&file).map_err(|e| Error::io(format!("reading {file}"), e))?;
    let cgroup = super::cgroup_path::from_proc(&text).ok_or_else(|| Error::Runtime {
        endpoint: file.clone(),
        message: format!("container {} (pid {pid}) has no cgroup line", c.name),
    })?;
    // The kubelet's layout names the container (either driver): a path naming another one
    // means the runtime's pid is not this container's, and faulting it would miss.
    if let Some(k) = super::cgroup_path::parse(&cgroup)
        && k.container_id != c.id
    {
        return Err(Error::Runtime {
            endpoint: file,
            message: format!(
                "container {} (pid {pid}) is in cgroup {cgroup}, which names container {}",
                c.id, k.container_id
            ),
        });
    }
    let netns = PathBuf::from(format!("/proc/{netns_pid}/ns/net"));
    let netns_inode = inode(&netns)?;
    Ok(Resolved {
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        pod_uid: pod.uid.clone(),
        container: c.name,
        container_id: c.id,
        pid,
        cgroup,
        netns,
        netns_inode,
        siblings,
    })
}

fn inode(p: &Path) -> Result<u64> {
    std::fs::metadata(p)
        .map(|m| m.ino())
        .map_err(|e| Error::io(format!("reading {}", p.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_checked_before_any_runtime_call() {
        let flag = |q: Query| match q.check() {
            Err(Error::Input { flag, .. }) => flag,
            other => panic!("{other:?}"),
        };
        let sel = Some("app=web".parse().expect("selector"));
        assert_eq!(
            flag(Query {
                pod: Some("shop".into()),
                ..Query::default()
            }),
            "--pod"
        );
        assert_eq!(
            flag(Query {
                selector: sel.clone(),
                ..Query::default()
            }),
            "--namespace"
        );
        assert_eq!(
            flag(Query {
                pod: Some("shop/a".into()),
                selector: sel.clone(),
                ..Query::default()
            }),
            "--pod"
        );
        assert_eq!(
            flag(Query {
                container: Some("app".into()),
                ..Query::default()
            }),
            "--container"
        );
        assert!(
            Query {
                selector: sel,
                namespace: Some("shop".into()),
                ..Query::default()
            }
            .check()
            .is_ok()
        );
    }
}
