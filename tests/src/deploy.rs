//! deploy/ as Kubernetes would get it: `kubectl kustomize deploy/`, rendered offline.

use serde_json::Value;
use std::{path::PathBuf, process::Command};

/// The repository's deploy/ directory.
pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .join("deploy")
}

/// The rendered objects, as JSON values.
pub fn rendered() -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(deploy_dir())
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("\n---\n")
        .map(|doc| serde_norway::from_str::<Value>(doc).expect("a YAML object"))
        .collect()
}

/// The rendered DaemonSet.
pub fn daemonset() -> Value {
    rendered()
        .into_iter()
        .find(|o| o["kind"] == "DaemonSet")
        .expect("a DaemonSet in deploy/")
}
