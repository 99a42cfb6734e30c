//! A node for Kubernetes tests: a real containerd (Debian's, with runc and the CNI plugins)
//! started with its own root, state, socket and CNI configuration under a temporary directory,
//! a busybox image built here and imported (nothing can be pulled), and the tests acting as the
//! kubelet through CRI: pod sandboxes with the kubelet's labels and cgroup parents, containers
//! created and started in them. Everything is removed on drop: pods, containerd, its mounts,
//! the CNI bridge, the cgroups the pods had. See ../shared/kubernetes.md for what was measured.

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerStatusRequest, CreateContainerRequest, ImageSpec,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopContainerRequest, StopPodSandboxRequest, runtime_service_client::RuntimeServiceClient,
};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};
use tonic::transport::Channel;

mod setup;
mod template;
mod victims;

pub use setup::IMAGE;
use setup::{build_image, new_uid, remove_kubepods, remove_pod_cgroups, write_config};
pub use template::Placement;
pub use victims::{Counter, UdpCounter, connector, run, udp_sender, wait_moving};

static NODES: AtomicU32 = AtomicU32::new(0);

/// A pod the test created.
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub sandbox_id: String,
    /// The pod's IPv4 address on the node's bridge (POD network), if any.
    pub ip: Option<String>,
}

impl Pod {
    /// The labels the kubelet puts on container `name` of this pod.
    pub fn container_labels(&self, name: &str) -> HashMap<String, String> {
        HashMap::from([
            ("io.kubernetes.container.name".into(), name.into()),
            ("io.kubernetes.pod.name".into(), self.name.clone()),
            ("io.kubernetes.pod.namespace".into(), self.namespace.clone()),
            ("io.kubernetes.pod.uid".into(), self.uid.clone()),
        ])
    }

    /// `NAMESPACE/NAME`, as `--pod` takes it.
    pub fn arg(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// How a pod is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The node's namespace (hostNetwork: true).
    Host,
    /// Its own namespace on the node's CNI bridge.
    Pod,
}

pub struct Node {
    pub dir: PathBuf,
    pub endpoint: PathBuf,
    /// The bridge the POD network's pods are on, and its subnet's first three octets.
    pub bridge: String,
    pub subnet: String,
    daemon: Child,
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    pods: Vec<Pod>,
    /// Every container started, by name, oldest first.
    started: Vec<(String, String)>,
}

/// Why a node cannot start here (no containerd installed), for the test's skip line.
pub fn unavailable() -> Option<String> {
    for bin in ["containerd", "ctr", "runc", "/usr/lib/cni/bridge"] {
        let found = if bin.starts_with('/') {
            Path::new(bin).exists()
        } else {
            Command::new("sh")
                .args(["-c", &format!("command -v {bin}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !found {
            return Some(format!(
                "{bin} is not installed (apt-get install containerd runc containernetworking-plugins; \
                 scripts/setup.sh does it on the host)"
            ));
        }
    }
    None
}

/// A node for `test`, or None (the skip printed and counted) where containerd is missing and
/// the run allows it (tests/expect.toml: `containerd`).
pub fn node_for(test: &str) -> Option<Node> {
    crate::require_root();
    match unavailable() {
        None => Some(Node::start("k")),
        Some(why) => {
            let allowed = crate::expect::containerd() != Some(true);
            crate::expect::skip(test, &why, allowed);
            None
        }
    }
}

impl Node {
    /// Starts containerd and imports the image. Panics with containerd's log if it fails.
    pub fn start(tag: &str) -> Node {
        let n = NODES.fetch_add(1, Ordering::Relaxed);
        let id = format!("{tag}{}x{n}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("chaos-k8s-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("net.d")).expect("node dir");
        let endpoint = dir.join("containerd.sock");
        // Unique per node: tests of one binary run at once.
        let octet = 100 + (std::process::id() as usize * 7 + n as usize) % 150;
        let subnet = format!("10.{octet}.{}", n % 250);
        let bridge = format!("chbr{}", id.chars().rev().take(9).collect::<String>());
        write_config(&dir, &endpoint, &bridge, &subnet);
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log");
        let daemon = Command::new("containerd")
            .args(["--config"])
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut daemon = daemon;
        // A containerd that never answers is stopped before the panic: no Node owns it yet.
        let mut fail = |why: &str| -> ! {
            let _ = daemon.kill();
            let _ = daemon.wait();
            let log = std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
            panic!("{why}: {log}")
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !endpoint.exists() {
            if Instant::now() > deadline {
                fail("containerd did not listen");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let client = match rt.block_on(connect(&endpoint)) {
            Ok(c) => c,
            Err(e) => fail(&format!("connect to containerd's CRI socket: {e}")),
        };
        let node = Node {
            dir,
            endpoint,
            bridge,
            subnet,
            daemon,
            rt,
            client,
            pods: Vec::new(),
            started: Vec::new(),
        };
        node.import_image();
        node
    }

    fn import_image(&self) {
        let tar = build_image(&self.dir);
        let out = Command::new("ctr")
            .arg("-a")
            .arg(&self.endpoint)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(&tar)
            .output()
            .expect("ctr");
        assert!(
            out.status.success(),
            "importing the image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a pod sandbox as the kubelet does: its labels plus the kubelet's, the cgroupfs
    /// driver's cgroup parent `/kubepods/besteffort/pod<uid>`.
    pub fn run_pod(
        &mut self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        network: Network,
    ) -> Pod {
        let uid = new_uid();
        let mut all: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.insert("io.kubernetes.pod.name".into(), name.into());
        all.insert("io.kubernetes.pod.namespace".into(), namespace.into());
        all.insert("io.kubernetes.pod.uid".into(), uid.clone());
        let ns_mode = match network {
            Network::Host => 2, // NODE
            Network::Pod => 0,  // POD
        };
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: namespace.into(),
                attempt: 0,
            }),
            hostname: if network == Network::Pod {
                name.into()
            } else {
                String::new()
            },
            log_directory: self.dir.join("logs").join(&uid).display().to_string(),
            labels: all,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: ns_mode,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let mut c = self.client.clone();
        let id = self
            .rt
            .block_on(c.run_pod_sandbox(req))
            .unwrap_or_else(|e| panic!("RunPodSandbox {namespace}/{name}: {e}"))
            .into_inner()
            .pod_sandbox_id;
        let ip = (network == Network::Pod)
            .then(|| self.pod_ip(&id))
            .flatten();
        let pod = Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid,
            sandbox_id: id,
            ip,
        };
        self.pods.push(pod.clone());
        self.configs().insert(pod.sandbox_id.clone(), config);
        pod
    }

    fn configs(&self) -> std::sync::MutexGuard<'static, HashMap<String, PodSandboxConfig>> {
        static CONFIGS: std::sync::OnceLock<std::sync::Mutex<HashMap<String, PodSandboxConfig>>> =
            std::sync::OnceLock::new();
        CONFIGS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn pod_ip(&mut self, sandbox_id: &str) -> Option<String> {
        let mut c = self.client.clone();
        let req = k8s_cri::v1::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox_id.into(),
            verbose: false,
        };
        let status = self
            .rt
            .block_on(c.pod_sandbox_status(req))
            .ok()?
            .into_inner();
        status
            .status?
            .network
            .map(|n| n.ip)
            .filter(|ip| !ip.is_empty())
    }

    /// Creates and starts a container in `pod` running `cmd`; returns its id.
    pub fn run_container(&mut self, pod: &Pod, name: &str, cmd: &[&str]) -> String {
        self.start_attempt(pod, name, cmd, 0)
    }

    /// What the kubelet does when a container exits under `restartPolicy: Always`: a new
    /// container of the same name with the next attempt number.
    pub fn start_attempt(&mut self, pod: &Pod, name: &str, cmd: &[&str], attempt: u32) -> String {
        let sandbox_config = self.configs().get(&pod.sandbox_id).cloned();
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.sandbox_id.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: name.into(),
                    attempt,
                }),
                image: Some(ImageSpec {
                    image: IMAGE.into(),
                    ..Default::default()
                }),
                command: cmd.iter().map(|s| s.to_string()).collect(),
                labels: pod.container_labels(name),
                log_path: format!("{name}-{attempt}.log"),
                ..Default::default()
            }),
            sandbox_config,
        };
        self.create_and_start(req, name)
    }

    /// CreateContainer then StartContainer, as the kubelet does; the container's id.
    fn create_and_start(&mut self, req: CreateContainerRequest, name: &str) -> String {
        let mut c = self.client.clone();
        let id = self
            .rt
            .block_on(c.create_container(req))
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
            .into_inner()
            .container_id;
        self.rt
            .block_on(c.start_container(StartContainerRequest {
                container_id: id.clone(),
            }))
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
        self.started.push((name.to_string(), id.clone()));
        id
    }

    /// The id of the container named `name` started last.
    pub fn latest(&self, name: &str) -> String {
        let found = self.started.iter().rev().find(|(n, _)| n == name);
        found
            .map(|(_, id)| id.clone())
            .expect("a container of that name")
    }

    /// The host pid of a container's init process.
    pub fn pid(&mut self, container_id: &str) -> u32 {
        let mut c = self.client.clone();
        let info = self
            .rt
            .block_on(c.container_status(ContainerStatusRequest {
                container_id: container_id.into(),
                verbose: true,
            }))
            .expect("ContainerStatus")
            .into_inner()
            .info;
        let v: serde_json::Value =
            serde_json::from_str(info.get("info").expect("verbose info")).expect("info JSON");
        v["pid"].as_u64().expect("info.pid") as u32
    }

    /// The container's state as the runtime reports it (CONTAINER_RUNNING = 1,
    /// CONTAINER_EXITED = 2) and its exit code.
    pub fn container_state(&mut self, container_id: &str) -> (i32, i32) {
        let mut c = self.client.clone();
        let s = self
            .rt
            .block_on(c.container_status(ContainerStatusRequest {
                container_id: container_id.into(),
                verbose: false,
            }))
            .expect("ContainerStatus")
            .into_inner()
            .status
            .expect("status");
        (s.state, s.exit_code)
    }

    /// Stops and removes a pod (its containers with it), as the kubelet does on deletion.
    pub fn delete_pod(&mut self, pod: &Pod) {
        let mut c = self.client.clone();
        let id = pod.sandbox_id.clone();
        let _ = self.rt.block_on(c.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        }));
        let _ = self
            .rt
            .block_on(c.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            }));
        remove_pod_cgroups(&pod.uid);
        self.pods.retain(|p| p.sandbox_id != id);
    }

    /// Stops a container (SIGTERM, then SIGKILL after a second).
    pub fn stop_container(&mut self, container_id: &str) {
        self.stop_container_within(container_id, 1);
    }

    /// Stops a container as the kubelet does on pod deletion: SIGTERM, then SIGKILL after the
    /// pod's grace period (`terminationGracePeriodSeconds`). StopPodSandbox alone kills at once.
    pub fn stop_container_within(&mut self, container_id: &str, grace_s: i64) {
        let mut c = self.client.clone();
        self.rt
            .block_on(c.stop_container(StopContainerRequest {
                container_id: container_id.into(),
                timeout: grace_s,
            }))
            .expect("StopContainer");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for pod in self.pods.clone() {
            self.delete_pod(&pod);
        }
        // SAFETY: SIGTERM to our own child.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let _ = self.daemon.wait();
        // containerd's mounts (snapshots, netns, shm) under our directory, deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&*self.dir.to_string_lossy()))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        remove_kubepods();
    }
}

/// A client of the CRI socket; retried for 10 s: containerd creates the socket file before it
/// listens on it, and a connect in between is refused (seen with eight nodes starting at once).
async fn connect(endpoint: &Path) -> Result<RuntimeServiceClient<Channel>, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match chaos::k8s::cri::channel(endpoint).await {
            Ok(channel) => return Ok(RuntimeServiceClient::new(channel)),
            Err(e) if Instant::now() > deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
