//! What a running fault acts on, looked at while it runs: a process, a cgroup, an interface
//! and its network namespace. When one vanishes the fault can no longer reach anything there
//! (or would reach whatever takes its name next), so the foreground run ends with
//! `ended: target_gone` instead of running on to its deadline (README, "Exit status": 3).

use crate::{
    cgroup::Cgroup,
    error::Result,
    netns::{self, Netns},
    target::Target,
};
use std::{os::unix::fs::MetadataExt as _, path::PathBuf};

/// How often a running fault looks at its targets.
pub const EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// One thing a fault acts on.
pub enum Watched {
    /// A process (`--pid`): gone when it exited (a zombie counts as gone).
    Process(u32),
    /// A cgroup directory: gone when it was removed.
    Cgroup(PathBuf),
    /// A named network namespace (path and nsfs inode): gone when the path no longer names it.
    Netns { path: PathBuf, ino: u64 },
    /// An interface, by name and index, in a namespace (None: chaos's own): gone when the name
    /// no longer has that index (deleted, or deleted and made again).
    Interface {
        netns: Option<Netns>,
        name: String,
        ifindex: u32,
    },
}

impl Watched {
    /// The fault's scope (`--cgroup`/`--pid`).
    pub fn target(t: &Target) -> Result<Watched> {
        Ok(match t {
            Target::Pid(pid) => Watched::Process(*pid),
            Target::Cgroup(p) => Watched::Cgroup(Cgroup::resolve(p)?.path),
        })
    }

    /// An interface (and the namespace it lives in, when one was named), as it is now.
    pub fn interface(ns: Option<&Netns>, name: &str) -> Result<Vec<Watched>> {
        let ifindex = netns::within(ns, || netns::ifindex(name))?.unwrap_or(0);
        let mut out = Vec::new();
        if let Some(ns) = ns {
            let ino = std::fs::metadata(&ns.path).map_or(0, |m| m.ino());
            out.push(Watched::Netns {
                path: ns.path.clone(),
                ino,
            });
        }
        out.push(Watched::Interface {
            netns: ns.map(Netns::try_clone).transpose()?,
            name: name.to_string(),
            ifindex,
        });
        Ok(out)
    }

    /// None while it is there; else what vanished, for the summary.
    pub fn gone(&self) -> Option<String> {
        match self {
            Watched::Process(pid) => {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
                let zombie = stat.as_deref().and_then(|s| s.rsplit_once(") "));
                match zombie {
                    Some((_, rest)) if !rest.starts_with('Z') => None,
                    _ => Some(format!("process {pid} exited")),
                }
            }
            Watched::Cgroup(path) => {
                (!path.is_dir()).then(|| format!("cgroup {} was removed", path.display()))
            }
            Watched::Netns { path, ino } => {
                let now = std::fs::metadata(path).map(|m| m.ino()).ok();
                (now != Some(*ino))
                    .then(|| format!("network namespace {} was deleted", path.display()))
            }
            Watched::Interface {
                netns,
                name,
                ifindex,
            } => {
                let now = netns::within(netns.as_ref(), || netns::ifindex(name)).ok()?;
                (now != Some(*ifindex)).then(|| format!("interface {name} was deleted"))
            }
        }
    }
}

/// The first of `watched` that vanished, if any.
pub fn first_gone(watched: &[Watched]) -> Option<String> {
    watched.iter().find_map(Watched::gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_exits_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let w = Watched::Process(child.id());
        assert_eq!(w.gone(), None);
        child.kill().expect("kill");
        // Killed but not reaped: a zombie counts as gone.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(w.gone().is_some_and(|g| g.contains("exited")));
        child.wait().expect("reap");
        assert!(w.gone().is_some());
    }

    #[test]
    fn a_removed_directory_is_a_gone_cgroup() {
        let dir = std::env::temp_dir().join(format!("chaos-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let w = Watched::Cgroup(dir.clone());
        assert_eq!(w.gone(), None);
        std::fs::remove_dir(&dir).expect("rmdir");
        assert!(w.gone().is_some_and(|g| g.contains("removed")));
    }

    #[test]
    fn an_unknown_interface_is_gone() {
        let w = Watched::Interface {
            netns: None,
            name: "lo".into(),
            ifindex: 1,
        };
        assert_eq!(w.gone(), None, "lo is index 1");
        let w = Watched::Interface {
            netns: None,
            name: "chaos-nosuch0".into(),
            ifindex: 7,
        };
        assert!(w.gone().is_some());
    }
}
