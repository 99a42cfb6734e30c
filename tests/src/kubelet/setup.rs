//! The node's files: containerd's configuration and CNI network, the busybox image, pod
//! UIDs, and the pods' cgroups to remove afterwards.

use super::Path;
use std::{path::PathBuf, process::Command, time::Duration};

/// The image every pod and container runs (and the sandbox image).
pub const IMAGE: &str = "chaos.local/busybox:1";
/// busybox applets the containers use.
const APPLETS: &[&str] = &[
    "sh", "sleep", "nc", "ping", "wget", "httpd", "cat", "echo", "kill", "ip", "dd", "ls", "true",
    "tftp",
];

/// containerd's default configuration with this node's paths and what these machines need
/// (../shared/kubernetes.md): no CAP_SYS_RESOURCE for oom_score_adj, a local sandbox image,
/// netns mounts under our state directory, Debian's CNI plugin directory.
pub(super) fn write_config(dir: &Path, endpoint: &Path, bridge: &str, subnet: &str) {
    let out = Command::new("containerd")
        .args(["config", "default"])
        .output()
        .expect("containerd config default");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    let d = dir.display();
    for (from, to) in [
        (
            "root = \"/var/lib/containerd\"",
            format!("root = \"{d}/root\""),
        ),
        (
            "state = \"/run/containerd\"",
            format!("state = \"{d}/state\""),
        ),
        (
            "[grpc]\n  address = \"/run/containerd/containerd.sock\"",
            format!("[grpc]\n  address = \"{}\"", endpoint.display()),
        ),
        (
            "restrict_oom_score_adj = false",
            "restrict_oom_score_adj = true".into(),
        ),
        (
            "netns_mounts_under_state_dir = false",
            "netns_mounts_under_state_dir = true".into(),
        ),
        (
            "sandbox_image = \"registry.k8s.io/pause:3.6\"",
            format!("sandbox_image = \"{IMAGE}\""),
        ),
        (
            "bin_dir = \"/opt/cni/bin\"",
            "bin_dir = \"/usr/lib/cni\"".into(),
        ),
        (
            "conf_dir = \"/etc/cni/net.d\"",
            format!("conf_dir = \"{d}/net.d\""),
        ),
    ] {
        assert!(
            text.contains(from),
            "containerd's default config has no {from}"
        );
        text = text.replace(from, &to);
    }
    std::fs::write(dir.join("config.toml"), text).expect("config.toml");
    let cni = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": bridge,
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "dataDir": format!("{d}/ipam"),
                "ranges": [[{"subnet": format!("{subnet}.0/24")}]],
            },
        }],
    });
    std::fs::write(dir.join("net.d/10-chaos.conflist"), cni.to_string()).expect("conflist");
}

/// A docker-archive tarball (manifest.json, a config with Cmd, one layer) of busybox-static
/// and its applet links, which `ctr images import` takes.
pub(super) fn build_image(dir: &Path) -> PathBuf {
    let root = dir.join("image/rootfs/bin");
    std::fs::create_dir_all(&root).expect("rootfs");
    std::fs::copy("/bin/busybox", root.join("busybox")).expect("busybox-static at /bin/busybox");
    for a in APPLETS {
        let _ = std::os::unix::fs::symlink("busybox", root.join(a));
    }
    let img = dir.join("image");
    let tar = |args: &[&str], cwd: &Path| {
        let ok = Command::new("tar")
            .args(args)
            .current_dir(cwd)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tar {args:?}");
    };
    tar(&["-cf", "../layer.tar", "bin"], &img.join("rootfs"));
    let digest = Command::new("sha256sum")
        .arg(img.join("layer.tar"))
        .output()
        .expect("sha256sum");
    let digest = String::from_utf8_lossy(&digest.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sleep", "1000000"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
    });
    std::fs::write(img.join("config.json"), config.to_string()).expect("config.json");
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [IMAGE],
        "Layers": ["layer.tar"],
    }]);
    std::fs::write(img.join("manifest.json"), manifest.to_string()).expect("manifest.json");
    tar(
        &[
            "-cf",
            "image.tar",
            "manifest.json",
            "config.json",
            "layer.tar",
        ],
        &img,
    );
    img.join("image.tar")
}

/// An RFC 4122-shaped random UID, as the API server gives pods.
pub(super) fn new_uid() -> String {
    let mut b = [0u8; 16];
    let f = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read as _;
        f.read_exact(&mut b)
    });
    f.expect("/dev/urandom");
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The pod's cgroup (`/kubepods/{besteffort,burstable}/pod<uid>`, by its QoS class) in every
/// hierarchy that has it: runc removes the containers' own, not the parent the kubelet would.
pub(super) fn remove_pod_cgroups(uid: &str) {
    for root in cgroup_roots() {
        for qos in QOS {
            let dir = root.join(format!("kubepods/{qos}/pod{uid}"));
            if !dir.exists() {
                continue;
            }
            for _ in 0..50 {
                if std::fs::remove_dir(&dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The QoS classes' cgroups the test pods go in (run_pod: besteffort; a template with
/// requests below its limits: burstable).
const QOS: [&str; 2] = ["besteffort", "burstable"];

/// `/kubepods` and its QoS classes' cgroups once no test pod is left in them.
pub(super) fn remove_kubepods() {
    for root in cgroup_roots() {
        for qos in QOS {
            let _ = std::fs::remove_dir(root.join("kubepods").join(qos));
        }
        let _ = std::fs::remove_dir(root.join("kubepods"));
    }
}

fn cgroup_roots() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mounts
        .lines()
        .filter(|l| l.contains(" - cgroup"))
        .filter_map(|l| l.split_whitespace().nth(4).map(PathBuf::from))
        .collect()
}
