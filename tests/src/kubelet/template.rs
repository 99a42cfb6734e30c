//! A pod from a manifest's pod template, created through CRI as the kubelet translates it:
//! hostNetwork and hostPID as the sandbox's namespaces, each container's image, args, env
//! (values and the downward API's spec.nodeName), volume mounts (hostPath volumes, or a source
//! the test gives for secrets and for host paths that differ on this node), security context
//! (privileged, capabilities added and dropped, runAsUser, readOnlyRootFilesystem,
//! allowPrivilegeEscalation) and resource limits.

use super::{Node, Pod, new_uid};
use k8s_cri::v1::{
    Capability, ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, Int64Value,
    KeyValue, LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, RunPodSandboxRequest,
};
use serde_json::Value;
use std::{collections::HashMap, path::PathBuf};

/// CRI's NamespaceMode NODE: the host's namespace.
const NODE: i32 = 2;

/// What the test decides in the kubelet's place.
pub struct Placement<'a> {
    /// The node's name (the downward API's spec.nodeName).
    pub node_name: &'a str,
    /// Host paths for volumes by name: secrets (a directory holding the keys as files) and host
    /// paths that are elsewhere on this node (containerd's socket, a state directory).
    pub sources: HashMap<&'a str, PathBuf>,
    /// Capabilities to leave out of every container's `add` list, each with why (printed): what
    /// this node's bounding set lacks, or the one a test takes away.
    pub without: Vec<(&'a str, String)>,
}

impl Node {
    /// Imports a docker-archive tarball (`cargo xtask image`) into the node's k8s.io namespace.
    pub fn import(&self, tar: &std::path::Path) {
        let out = std::process::Command::new("ctr")
            .arg("-a")
            .arg(&self.endpoint)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(tar)
            .output()
            .expect("ctr");
        assert!(
            out.status.success(),
            "importing {}: {}",
            tar.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs the pod template `spec` (a DaemonSet's `spec.template.spec`) as pod NS/NAME with
    /// the template's `labels`; returns the pod and its containers' ids, in order.
    pub fn run_template(
        &mut self,
        namespace: &str,
        name: &str,
        labels: &Value,
        spec: &Value,
        at: &Placement<'_>,
    ) -> (Pod, Vec<String>) {
        let uid = new_uid();
        let mut all: HashMap<String, String> = labels
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        all.insert("io.kubernetes.pod.name".into(), name.into());
        all.insert("io.kubernetes.pod.namespace".into(), namespace.into());
        all.insert("io.kubernetes.pod.uid".into(), uid.clone());
        let namespaces = NamespaceOption {
            network: if spec["hostNetwork"] == true { NODE } else { 0 },
            pid: if spec["hostPID"] == true { NODE } else { 0 },
            ..Default::default()
        };
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: namespace.into(),
                attempt: 0,
            }),
            log_directory: self.dir.join("logs").join(&uid).display().to_string(),
            labels: all,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/burstable/pod{uid}"),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = self.client.clone();
        let id = self
            .rt
            .block_on(c.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }))
            .unwrap_or_else(|e| panic!("RunPodSandbox {namespace}/{name}: {e}"))
            .into_inner()
            .pod_sandbox_id;
        let pod = Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid,
            sandbox_id: id,
            ip: None,
        };
        self.pods.push(pod.clone());
        self.configs()
            .insert(pod.sandbox_id.clone(), config.clone());
        let ids = spec["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|ct| {
                let cc = container_config(&pod, ct, spec, namespaces.clone(), at);
                let req = CreateContainerRequest {
                    pod_sandbox_id: pod.sandbox_id.clone(),
                    config: Some(cc),
                    sandbox_config: Some(config.clone()),
                };
                self.create_and_start(req, ct["name"].as_str().unwrap_or(""))
            })
            .collect();
        (pod, ids)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn container_config(
    pod: &Pod,
    ct: &Value,
    spec: &Value,
    namespaces: NamespaceOption,
    at: &Placement<'_>,
) -> ContainerConfig {
    let name = ct["name"].as_str().expect("container name");
    let envs = ct["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("spec.nodeName") => at.node_name.to_string(),
                Some(other) => panic!("downward API field {other} is not translated here"),
                None => e["value"].as_str().unwrap_or("").to_string(),
            };
            KeyValue {
                key: e["name"].as_str().expect("env name").into(),
                value,
            }
        })
        .collect();
    let volumes: HashMap<&str, &Value> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["name"].as_str().unwrap_or(""), v))
        .collect();
    let mounts = ct["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let vname = m["name"].as_str().expect("mount name");
            let vol = volumes
                .get(vname)
                .unwrap_or_else(|| panic!("no volume {vname}"));
            let host =
                at.sources.get(vname).cloned().unwrap_or_else(|| {
                    PathBuf::from(vol["hostPath"]["path"].as_str().unwrap_or_else(|| {
                        panic!("volume {vname} is not a hostPath: give its source")
                    }))
                });
            Mount {
                container_path: m["mountPath"].as_str().expect("mountPath").into(),
                host_path: host.display().to_string(),
                // Secrets are read-only whatever the mount says, as the kubelet makes them.
                readonly: m["readOnly"] == true || vol.get("secret").is_some(),
                ..Default::default()
            }
        })
        .collect();
    let sc = &ct["securityContext"];
    let without: Vec<&str> = at.without.iter().map(|(c, _)| *c).collect();
    for (cap, why) in &at.without {
        println!("container {name}: without CAP_{cap}: {why}");
    }
    let add = strings(&sc["capabilities"]["add"])
        .into_iter()
        .filter(|c| !without.contains(&c.as_str()))
        .collect();
    let limits = &ct["resources"]["limits"];
    let resources = LinuxContainerResources {
        memory_limit_in_bytes: limits["memory"].as_str().map_or(0, bytes),
        // The kubelet's CFS quota for a CPU limit: millicores over a 100 ms period.
        cpu_period: 100_000,
        cpu_quota: limits["cpu"].as_str().map_or(0, |c| millicores(c) * 100),
        ..Default::default()
    };
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: ct["image"].as_str().expect("image").into(),
            ..Default::default()
        }),
        command: strings(&ct["command"]),
        args: strings(&ct["args"]),
        envs,
        mounts,
        labels: pod.container_labels(name),
        log_path: format!("{name}-0.log"),
        linux: Some(LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(LinuxContainerSecurityContext {
                capabilities: Some(Capability {
                    add_capabilities: add,
                    drop_capabilities: strings(&sc["capabilities"]["drop"]),
                    ..Default::default()
                }),
                privileged: sc["privileged"] == true,
                namespace_options: Some(namespaces),
                run_as_user: sc["runAsUser"].as_i64().map(|value| Int64Value { value }),
                readonly_rootfs: sc["readOnlyRootFilesystem"] == true,
                no_new_privs: sc["allowPrivilegeEscalation"] == false,
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A Kubernetes quantity of bytes: `256Mi`, `1Gi`, `4096`.
fn bytes(q: &str) -> i64 {
    let (n, unit) = split(q);
    match unit {
        "Ki" => n << 10,
        "Mi" => n << 20,
        "Gi" => n << 30,
        "" => n,
        other => panic!("quantity unit {other} is not translated here"),
    }
}

/// A CPU quantity in millicores: `500m`, `2`.
fn millicores(q: &str) -> i64 {
    match split(q) {
        (n, "m") => n,
        (n, "") => n * 1000,
        (_, other) => panic!("CPU unit {other} is not translated here"),
    }
}

fn split(q: &str) -> (i64, &str) {
    let at = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, unit) = q.split_at(at);
    (n.parse().unwrap_or_else(|_| panic!("quantity {q}")), unit)
}
