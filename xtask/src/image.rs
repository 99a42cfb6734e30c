//! `cargo xtask image`: the agent's container image as a docker-archive tarball, for
//! `ctr -n k8s.io images import` or `docker load`, built here with neither a registry nor a
//! daemon: one layer holding chaos, the tools it runs (tc and ip for the cls_bpf fallback and
//! qdiscs, mount for bpffs/tracefs, sleep), the shared libraries they load, and nothing else
//! (no shell, no package manager).

use crate::{cargo, root, rootfs::put_with_libs, run, setup};
use anyhow::{Context, Result, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// The image's name, as deploy/daemonset.yaml refers to it (`imagePullPolicy: Never`).
pub const TAG: &str = "chaos.local/chaos:latest";

/// Where chaos is in the image (its entrypoint).
const BIN: &str = "/usr/local/bin/chaos";

#[derive(clap::Args)]
pub struct ImageArgs {
    /// The chaos binary to put in (default: a release build, made now).
    #[arg(long, value_name = "PATH")]
    chaos_bin: Option<PathBuf>,
    /// Where to write the archive (relative to the workspace).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "target/image/chaos-image.tar"
    )]
    out: PathBuf,
}

pub fn image(a: ImageArgs) -> Result<()> {
    let bin = match a.chaos_bin {
        Some(b) => b,
        None => {
            setup()?;
            run(cargo().args(["build", "--release", "-p", "chaos-user", "--bin", "chaos"]))?;
            root().join("target/release/chaos")
        }
    };
    let out = root().join(a.out);
    build(&bin, &out)?;
    let size = fs::metadata(&out)?.len();
    eprintln!(
        "xtask: {} ({TAG}, {:.1} MB): ctr -n k8s.io images import {0}",
        out.display(),
        size as f64 / 1e6
    );
    Ok(())
}

fn build(bin: &Path, out: &Path) -> Result<()> {
    let work = out.with_extension("d");
    let _ = fs::remove_dir_all(&work);
    let rootfs = work.join("rootfs");
    put_with_libs(&rootfs, bin, Path::new(BIN))?;
    sh(Command::new("strip")
        .arg("--strip-debug")
        .arg(rootfs.join(&BIN[1..])))?;
    for tool in ["tc", "ip", "mount", "sleep"] {
        let path = which(tool)?;
        put_with_libs(&rootfs, &path, &path)?;
        // Not setuid (mount is, here): the agent runs as root, nobody else runs in the image.
        let copied = rootfs.join(path.strip_prefix("/")?);
        fs::set_permissions(&copied, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    // Mount points (the root filesystem is read-only in the DaemonSet) and /tmp.
    for d in ["proc", "sys", "dev", "run/chaos", "tmp"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    sh(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "--sort=name"])
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(work.join("layer.tar"))
        .arg("."))?;
    let sum = sh(Command::new("sha256sum").arg(work.join("layer.tar")))?;
    let digest = sum.split_whitespace().next().context("sha256sum")?;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": [BIN],
            "Cmd": ["agent"],
            "Env": ["PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "User": "0",
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
    });
    fs::write(work.join("config.json"), config.to_string())?;
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [TAG],
        "Layers": ["layer.tar"],
    }]);
    fs::write(work.join("manifest.json"), manifest.to_string())?;
    fs::create_dir_all(out.parent().context("output directory")?)?;
    sh(Command::new("tar")
        .arg("-C")
        .arg(&work)
        .arg("-cf")
        .arg(out)
        .args(["manifest.json", "config.json", "layer.tar"]))?;
    fs::remove_dir_all(&work)?;
    Ok(())
}

/// A tool's path on this machine.
fn which(tool: &str) -> Result<PathBuf> {
    let p = sh(Command::new("sh").args(["-c", &format!("command -v {tool}")]))?;
    let p = p.trim();
    if p.is_empty() {
        bail!("{tool} is not installed (scripts/setup.sh installs iproute2)");
    }
    Ok(PathBuf::from(p))
}

/// The stdout of a command that must succeed.
fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
