//! cgroup v2 targets: where the v2 hierarchy is mounted, and a cgroup's id and depth.

use crate::error::{Error, Result};
use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// A cgroup v2 directory that faults are scoped to (it and its descendants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub path: PathBuf,
    /// The kernel's cgroup id (the kernfs inode number).
    pub id: u64,
    /// Depth below the v2 root (root = 0), for bpf_skb_ancestor_cgroup_id.
    pub level: u32,
}

/// The cgroup v2 mount point: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid.
pub fn v2_mount() -> Result<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("reading /proc/self/mountinfo", e))?;
    mount_from_mountinfo(&info).ok_or_else(|| Error::Unsupported {
        feature: "a mounted cgroup v2 hierarchy",
        hint: "mount it with `mount -t cgroup2 none /sys/fs/cgroup` (or /sys/fs/cgroup/unified)"
            .into(),
    })
}

fn mount_from_mountinfo(info: &str) -> Option<PathBuf> {
    info.lines().find_map(|line| {
        // "... mountpoint opts - fstype source superopts"
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| PathBuf::from(left.split_whitespace().nth(4).unwrap_or("/")))
    })
}

impl Cgroup {
    /// Resolves `--cgroup`: absolute under the v2 mount, or relative to it (with or without a
    /// leading `/`, as /proc/PID/cgroup prints it).
    pub fn resolve(arg: &str) -> Result<Self> {
        let mount = v2_mount()?;
        let p = Path::new(arg);
        let path = if p.starts_with(&mount) {
            p.to_path_buf()
        } else {
            mount.join(arg.trim_start_matches('/'))
        };
        Self::at(&mount, path, "--cgroup", arg)
    }

    /// The cgroup v2 of process `pid`, for `--pid`.
    pub fn of_pid(pid: u32) -> Result<Self> {
        let file = format!("/proc/{pid}/cgroup");
        let text = fs::read_to_string(&file).map_err(|_| {
            Error::input(
                "--pid",
                format!("no process {pid}; give the PID of a running process"),
            )
        })?;
        let rel = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| {
                Error::input(
                    "--pid",
                    format!("process {pid} has no cgroup v2 membership in {file}"),
                )
            })?;
        let mount = v2_mount()?;
        Self::at(
            &mount,
            mount.join(rel.trim_start_matches('/')),
            "--pid",
            &pid.to_string(),
        )
    }

    fn at(mount: &Path, path: PathBuf, flag: &'static str, arg: &str) -> Result<Self> {
        let meta = fs::metadata(&path).map_err(|_| {
            // An absolute path that exists elsewhere (a cgroup v1 hierarchy on a hybrid host)
            // was read as relative to the mount: say so rather than name a path nobody gave.
            if Path::new(arg).is_absolute() && Path::new(arg).exists() {
                return Error::input(
                    flag,
                    format!(
                        "{arg} is not under the cgroup v2 mount {} (a cgroup v1 hierarchy?);                          give a cgroup v2 path under {} (see /proc/PID/cgroup, line 0::)",
                        mount.display(),
                        mount.display()
                    ),
                );
            }
            Error::input(
                flag,
                format!(
                    "cgroup '{arg}' not found at {}; give a cgroup v2 path under {} \
                     (see /proc/PID/cgroup, line 0::)",
                    path.display(),
                    mount.display()
                ),
            )
        })?;
        // `..` and symlinks resolved first: `app/..` is the root cgroup, and the guards must
        // see it as such.
        let path = fs::canonicalize(&path)
            .map_err(|e| Error::input(flag, format!("cannot resolve {}: {e}", path.display())))?;
        if !path.starts_with(mount) {
            return Err(Error::input(
                flag,
                format!(
                    "'{arg}' leads to {}, outside the cgroup v2 mount {}",
                    path.display(),
                    mount.display()
                ),
            ));
        }
        if !meta.is_dir() || !path.join("cgroup.procs").exists() {
            return Err(Error::input(
                flag,
                format!(
                    "{} is not a cgroup v2 directory (no cgroup.procs)",
                    path.display()
                ),
            ));
        }
        let level = path
            .strip_prefix(mount)
            .map(|r| r.components().count())
            .unwrap_or(0);
        Ok(Self {
            id: meta.ino(),
            level: level as u32,
            path,
        })
    }

    pub fn is_root(&self) -> bool {
        self.level == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v2_mount_in_hybrid_and_unified_layouts() {
        let hybrid = "30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_from_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_from_mountinfo(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            mount_from_mountinfo("1 2 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }
}
