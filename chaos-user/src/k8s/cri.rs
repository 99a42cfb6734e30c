//! The node's container runtime through CRI, the gRPC API the kubelet itself uses
//! (k8s.io/cri-api `runtime.v1`), over its Unix socket: the pod sandboxes and containers on this
//! node, and a container's pid (from `ContainerStatus` with `verbose`, whose `info` JSON carries
//! it in containerd and CRI-O alike). Nothing here needs a Kubernetes API server.

use crate::error::{Error, Result};
use k8s_cri::v1::{
    ContainerFilter, ContainerState, ContainerStateValue, ContainerStatusRequest,
    ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter, PodSandboxState,
    PodSandboxStateValue, PodSandboxStatusRequest, runtime_service_client::RuntimeServiceClient,
};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};
use tonic::transport::{Channel, Endpoint, Uri};

/// Where runtimes listen by default, probed in this order: containerd, then CRI-O (the paths
/// their packages and the kubelet's `--container-runtime-endpoint` docs use).
pub const DEFAULT_ENDPOINTS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/crio/crio.sock",
];

/// The labels the kubelet puts on every sandbox and container it creates.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// A connection to one runtime.
pub struct Runtime {
    client: RuntimeServiceClient<Channel>,
    pub endpoint: PathBuf,
}

/// A ready pod sandbox, by the kubelet's labels.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The pod's own labels (without the io.kubernetes.* ones the kubelet adds).
    pub labels: HashMap<String, String>,
}

/// A running container of a sandbox.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub sandbox_id: String,
}

/// A gRPC channel over the Unix socket at `path` (the kubelet's own transport to the runtime).
pub async fn channel(path: &Path) -> std::result::Result<Channel, tonic::transport::Error> {
    let sock = path.to_path_buf();
    // The URI is a placeholder: the connector ignores it and dials the socket.
    Endpoint::from_static("http://[::]:0")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move {
                let s = tokio::net::UnixStream::connect(sock).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
}

/// `--runtime-endpoint` as the kubelet writes it (`unix:///run/containerd/containerd.sock`) or
/// as a plain path.
pub fn endpoint_path(s: &str) -> PathBuf {
    PathBuf::from(s.strip_prefix("unix://").unwrap_or(s))
}

impl Runtime {
    /// Connects to `endpoint`, or to the first of `DEFAULT_ENDPOINTS` that exists. Errors
    /// (`Error::Input` on `--runtime-endpoint`) name every path tried.
    pub async fn connect(endpoint: Option<&Path>) -> Result<Self> {
        let path = match endpoint {
            Some(p) if p.exists() => p.to_path_buf(),
            Some(p) => {
                return Err(Error::input(
                    "--runtime-endpoint",
                    format!(
                        "no container runtime socket at {}; give the path of containerd's or \
                         CRI-O's socket (the kubelet's --container-runtime-endpoint)",
                        p.display()
                    ),
                ));
            }
            None => DEFAULT_ENDPOINTS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or_else(|| {
                    Error::input(
                        "--runtime-endpoint",
                        format!(
                            "no container runtime socket found (tried {}); give the path of \
                             containerd's or CRI-O's socket",
                            DEFAULT_ENDPOINTS.join(", ")
                        ),
                    )
                })?,
        };
        let channel = channel(&path).await.map_err(|e| {
            // tonic's own message is "transport error"; the cause is in its sources.
            let mut cause = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                cause = s.to_string();
                src = s.source();
            }
            Error::input(
                "--runtime-endpoint",
                format!(
                    "cannot connect to the container runtime at {}: {cause}; is containerd (or \
                     CRI-O) running, and is this its CRI socket?",
                    path.display()
                ),
            )
        })?;
        Ok(Runtime {
            client: RuntimeServiceClient::new(channel),
            endpoint: path,
        })
    }

    fn failed(&self, what: &str, e: tonic::Status) -> Error {
        Error::Runtime {
            endpoint: self.endpoint.display().to_string(),
            message: format!("{what}: {}", e.message()),
        }
    }

    /// The ready sandboxes whose labels include `equal` (the runtime filters on equalities).
    pub async fn sandboxes(&mut self, equal: HashMap<String, String>) -> Result<Vec<Sandbox>> {
        let req = ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                id: String::new(),
                state: Some(PodSandboxStateValue {
                    state: PodSandboxState::SandboxReady as i32,
                }),
                label_selector: equal,
            }),
        };
        let items = match self.client.list_pod_sandbox(req).await {
            Ok(r) => r.into_inner().items,
            Err(e) => return Err(self.failed("listing pod sandboxes", e)),
        };
        Ok(items
            .into_iter()
            .filter_map(|s| {
                let meta = s.metadata?;
                let labels = s
                    .labels
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("io.kubernetes."))
                    .collect();
                Some(Sandbox {
                    id: s.id,
                    namespace: meta.namespace,
                    name: meta.name,
                    uid: meta.uid,
                    labels,
                })
            })
            .collect())
    }

    /// The running containers of a sandbox.
    pub async fn containers(&mut self, sandbox_id: &str) -> Result<Vec<Container>> {
        let req = ListContainersRequest {
            filter: Some(ContainerFilter {
                id: String::new(),
                state: Some(ContainerStateValue {
                    state: ContainerState::ContainerRunning as i32,
                }),
                pod_sandbox_id: sandbox_id.to_string(),
                label_selector: HashMap::new(),
            }),
        };
        let items = match self.client.list_containers(req).await {
            Ok(r) => r.into_inner().containers,
            Err(e) => return Err(self.failed("listing containers", e)),
        };
        Ok(items
            .into_iter()
            .map(|c| Container {
                name: c
                    .metadata
                    .map(|m| m.name)
                    .or_else(|| c.labels.get(CONTAINER_NAME).cloned())
                    .unwrap_or_default(),
                id: c.id,
                sandbox_id: c.pod_sandbox_id,
            })
            .collect())
    }

    /// The host pid of a container's init process (`info.pid` of the verbose status); None
    /// when it has none any more or is gone (it exited after the runtime listed it running).
    pub async fn pid(&mut self, container_id: &str) -> Result<Option<u32>> {
        let req = ContainerStatusRequest {
            container_id: container_id.to_string(),
            verbose: true,
        };
        match self.client.container_status(req).await {
            Ok(r) => Ok(info_pid(&r.into_inner().info)),
            Err(e) if e.code() == tonic::Code::NotFound => Ok(None),
            Err(e) => Err(self.failed("reading a container's status", e)),
        }
    }

    /// The host pid of a sandbox's own process (the pause container), which holds the pod's
    /// network namespace for as long as the pod lives; None where the runtime does not say.
    pub async fn sandbox_pid(&mut self, sandbox_id: &str) -> Result<Option<u32>> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            verbose: true,
        };
        match self.client.pod_sandbox_status(req).await {
            Ok(r) => Ok(info_pid(&r.into_inner().info)),
            Err(e) => Err(self.failed("reading a pod sandbox's status", e)),
        }
    }
}

/// `pid` of the JSON in a verbose status's `info` entry (containerd and CRI-O both put it
/// there).
fn info_pid(info: &HashMap<String, String>) -> Option<u32> {
    info.get("info")
        .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        .and_then(|v| v.get("pid")?.as_u64())
        .filter(|&p| p > 0)
        .map(|p| p as u32)
}
