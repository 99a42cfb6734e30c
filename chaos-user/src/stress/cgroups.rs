//! Where a stress's workers go: the target's cgroup v2 and, on hybrid hosts (v1 controllers
//! mounted beside the v2 hierarchy, as here: memory, cpu, cpuacct under /sys/fs/cgroup), the
//! target's cgroups in the v1 resource hierarchies, so that its memory limit, CPU quota and OOM
//! killer act on the workers as on its own processes. Also the OOM-kill counters to watch and
//! the `chaos doctor` rows.

use crate::{
    cgroup::{self, Cgroup},
    error::{Error, Result},
    guards,
    support::{FaultSupport, row},
    target::Target,
};
use std::{
    fs,
    path::{Path, PathBuf},
};

/// The v1 hierarchies whose cgroup a worker joins: the resource controllers. Not freezer (a
/// frozen target would freeze the worker between fork and exec, and chaos waiting on it), not
/// devices or named hierarchies (name=systemd: the init system's own bookkeeping).
const JOINED: &[&str] = &["memory", "cpu", "cpuacct", "cpuset", "pids", "blkio"];

/// A target's cgroups, as workers join them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    /// `process PID`, the cgroup path, or `namespace/pod/container`.
    pub label: String,
    /// The cgroup v2 directory.
    pub v2: PathBuf,
    /// The v1 cgroups (hybrid hosts), each with its hierarchy's controllers (`memory`,
    /// `cpu,cpuacct`).
    pub v1: Vec<V1Group>,
    /// The process of a `--pid` (or container) target: when it exits, its workers are
    /// stopped (they would keep its cgroup from being removed).
    pub process: Option<crate::state::WorkerEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct V1Group {
    pub controllers: String,
    pub dir: PathBuf,
    /// The hierarchy's root (the target is in no cgroup of its own there).
    pub root: bool,
}

impl Placement {
    /// The cgroups of a `--pid` (its /proc/PID/cgroup) or `--cgroup` target (for the v1
    /// hierarchies: those of a process in it, else a directory of the same path in each).
    /// Errors (`Error::Input`, naming `flag`): no such process or cgroup; the guards (the root
    /// cgroup, one holding PID 1 or chaos) unless `force`.
    pub fn of_target(t: &Target, label: String, flag: &'static str, force: bool) -> Result<Self> {
        let cg = t.resolve()?;
        guards::check_cgroup(&cg, flag, force)?;
        let delegated =
            fs::read_to_string(cg.path.join("cgroup.subtree_control")).unwrap_or_default();
        if !delegated.trim().is_empty() {
            // cgroup v2's no-internal-process rule: the kernel would refuse the workers.
            return Err(Error::input(
                flag,
                format!(
                    "{} hands controllers ({}) to child cgroups, so no process may join it; \
                     give one of its leaf cgroups",
                    cg.path.display(),
                    delegated.trim()
                ),
            ));
        }
        let mounts = v1_mounts(&read("/proc/self/mountinfo")?);
        let v1 = match t {
            Target::Pid(pid) => of_process(*pid, &mounts),
            Target::Cgroup(_) => match first_process(&cg) {
                Some(pid) => of_process(pid, &mounts),
                None => same_path(&cg, &mounts)?,
            },
        };
        let process = match t {
            Target::Pid(pid) => crate::state::WorkerEntry::of(*pid),
            Target::Cgroup(_) => None,
        };
        Ok(Self {
            label,
            v2: cg.path,
            v1,
            process,
        })
    }

    /// The `cgroup.procs` files a worker writes itself into, v2 first.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        std::iter::once(self.v2.join("cgroup.procs"))
            .chain(self.v1.iter().map(|g| g.dir.join("cgroup.procs")))
            .collect()
    }

    /// OOM kills counted so far in the target's memory cgroups: `oom_kill` of the v1
    /// `memory.oom_control` and of the v2 `memory.events` (whichever exist; 0 without).
    pub fn oom_kills(&self) -> u64 {
        let mut n = counter(&self.v2.join("memory.events"), "oom_kill");
        for g in self.v1.iter().filter(|g| has(&g.controllers, "memory")) {
            n += counter(&g.dir.join("memory.oom_control"), "oom_kill");
        }
        n
    }

    /// Where the memory limit comes from and what it is: `v1 memory /sys/fs/cgroup/memory/x
    /// (limit 32MiB)`, `v2 memory.max ...`, or that there is none.
    pub fn memory_limit(&self) -> String {
        if let Some(g) = self.v1.iter().find(|g| has(&g.controllers, "memory")) {
            let limit = fs::read_to_string(g.dir.join("memory.limit_in_bytes"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|&l| l < 1 << 62)
                .map_or("no limit".to_string(), |l| {
                    format!("limit {}", crate::units::format_size(l))
                });
            return format!("v1 memory cgroup {} ({limit})", g.dir.display());
        }
        match fs::read_to_string(self.v2.join("memory.max")) {
            Ok(max) => format!("v2 memory.max {} of {}", max.trim(), self.v2.display()),
            Err(_) => "no memory controller on the target's cgroups: no limit".into(),
        }
    }

    /// "cgroup v2 PATH; v1 memory PATH, cpu PATH".
    pub fn describe(&self) -> String {
        let mut s = format!("cgroup v2 {}", self.v2.display());
        let own: Vec<String> = self
            .v1
            .iter()
            .filter(|g| !g.root)
            .map(|g| format!("{} {}", g.controllers, g.dir.display()))
            .collect();
        if !own.is_empty() {
            s.push_str(&format!("; v1 {}", own.join(", ")));
        }
        let roots: Vec<&str> = self
            .v1
            .iter()
            .filter(|g| g.root)
            .map(|g| g.controllers.as_str())
            .collect();
        if !roots.is_empty() {
            s.push_str(&format!("; v1 root of {}", roots.join(", ")));
        }
        s
    }
}

fn has(controllers: &str, c: &str) -> bool {
    controllers.split(',').any(|x| x == c)
}

fn read(path: &str) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io(format!("reading {path}"), e))
}

/// A `KEY N` line of a cgroup's flat-keyed file (0 if absent).
fn counter(file: &Path, key: &str) -> u64 {
    fs::read_to_string(file)
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok())?
            })
        })
        .unwrap_or(0)
}

/// The mounted v1 hierarchies with a joined controller: their superblock options (the
/// controllers among them) and mount points. Named hierarchies (name=systemd) are left out.
fn v1_mounts(mountinfo: &str) -> Vec<(Vec<String>, PathBuf)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut r = right.split_whitespace();
            if r.next()? != "cgroup" {
                return None;
            }
            let opts = r.nth(1)?;
            if opts.contains("name=") {
                return None;
            }
            // Every option: the hierarchy's controllers among mount flags (rw, nosuid, ...).
            let opts: Vec<String> = opts.split(',').map(String::from).collect();
            let point = left.split_whitespace().nth(4)?;
            opts.iter()
                .any(|o| JOINED.contains(&o.as_str()))
                .then(|| (opts, PathBuf::from(point)))
        })
        .collect()
}

/// The v1 cgroups of `pid` in the joined hierarchies, from /proc/PID/cgroup
/// (`4:memory:/a/b`, `3:cpu,cpuacct:/a`). A process that is gone has none.
fn of_process(pid: u32, mounts: &[(Vec<String>, PathBuf)]) -> Vec<V1Group> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    v1_groups(&text, mounts)
}

fn v1_groups(proc_cgroup: &str, mounts: &[(Vec<String>, PathBuf)]) -> Vec<V1Group> {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            if controllers.is_empty() || !controllers.split(',').any(|c| JOINED.contains(&c)) {
                return None;
            }
            let (_, mount) = mounts
                .iter()
                .find(|(cs, _)| controllers.split(',').all(|c| cs.iter().any(|x| x == c)))?;
            let rel = path.trim().trim_start_matches('/');
            Some(V1Group {
                controllers: controllers.to_string(),
                dir: if rel.is_empty() {
                    mount.clone()
                } else {
                    mount.join(rel)
                },
                root: rel.is_empty(),
            })
        })
        .collect()
}

/// The joined controllers among a hierarchy's options, `cpu,cpuacct`.
fn joined(opts: &[String]) -> String {
    let cs: Vec<&str> = opts
        .iter()
        .map(String::as_str)
        .filter(|o| JOINED.contains(o))
        .collect();
    cs.join(",")
}

/// A process of the cgroup (the first listed), to take its v1 cgroups.
fn first_process(cg: &Cgroup) -> Option<u32> {
    fs::read_to_string(cg.path.join("cgroup.procs"))
        .ok()?
        .lines()
        .find_map(|l| l.trim().parse().ok())
}

/// For an empty v2 cgroup: the directory of the same path in each v1 hierarchy, where one
/// exists (systemd's hybrid layout names a unit's cgroups alike).
fn same_path(cg: &Cgroup, mounts: &[(Vec<String>, PathBuf)]) -> Result<Vec<V1Group>> {
    let mount = cgroup::v2_mount()?;
    let rel = cg.path.strip_prefix(&mount).unwrap_or(&cg.path);
    Ok(mounts
        .iter()
        .filter(|(cs, _)| cs.iter().any(|c| JOINED.contains(&c.as_str())))
        .map(|(cs, m)| V1Group {
            controllers: joined(cs),
            dir: m.join(rel),
            root: false,
        })
        .filter(|g| g.dir.join("cgroup.procs").exists())
        .collect())
}

/// `chaos doctor`'s rows: "stress cpu" needs the cgroup v2 mount; "stress memory" also a
/// memory controller, v1 (hybrid) or v2, and says which hierarchy sets the limits.
pub fn support() -> Vec<FaultSupport> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let v1 = v1_mounts(&mountinfo);
    let v2 = cgroup::v2_mount().ok();
    let controllers = v2
        .as_ref()
        .and_then(|m| fs::read_to_string(m.join("cgroup.controllers")).ok())
        .unwrap_or_default();
    let v2_has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    let v1_of = |c: &str| {
        v1.iter()
            .find(|(cs, _)| cs.iter().any(|x| x == c))
            .map(|(_, m)| m.display().to_string())
    };
    let Some(v2) = v2 else {
        let no = (false, "no cgroup v2 hierarchy is mounted".to_string());
        return vec![row("stress cpu", no.clone()), row("stress memory", no)];
    };
    let cpu = match (v2_has("cpu"), v1_of("cpu")) {
        (true, _) => format!(
            "workers join the target's cgroup v2 (cpu controller, {})",
            v2.display()
        ),
        (false, Some(m)) => format!(
            "workers join the target's cgroup v2 ({}) and v1 cpu hierarchy ({m})",
            v2.display()
        ),
        (false, None) => format!(
            "workers join the target's cgroup v2 ({}); no cpu controller: no CPU quota applies",
            v2.display()
        ),
    };
    let memory = match (v2_has("memory"), v1_of("memory")) {
        (true, _) => (
            true,
            format!(
                "limits and OOM kills from the cgroup v2 memory controller ({})",
                v2.display()
            ),
        ),
        (false, Some(m)) => (
            true,
            format!("limits and OOM kills from the v1 memory hierarchy ({m}); hybrid host"),
        ),
        (false, None) => (
            false,
            "no memory controller, v1 or v2: the target's memory limit cannot act on workers"
                .to_string(),
        ),
    };
    vec![row("stress cpu", (true, cpu)), row("stress memory", memory)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:40 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,nosuid,cpu,cpuacct
";

    #[test]
    fn v1_hierarchies_from_mountinfo() {
        let m = v1_mounts(HYBRID);
        let names: Vec<String> = m.iter().map(|(c, _)| joined(c)).collect();
        assert_eq!(names, ["cpu", "cpuacct", "memory", "cpu,cpuacct"]);
        assert_eq!(m[2].1, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn a_process_v1_cgroups_in_the_joined_hierarchies() {
        let m = v1_mounts(HYBRID);
        let proc_cgroup = "9:name=systemd:/\n5:devices:/x\n4:memory:/process_api/f2\n\
                           2:cpuacct:/\n1:cpu:/a\n0::/\n";
        let g = v1_groups(proc_cgroup, &m);
        assert_eq!(
            g,
            [
                V1Group {
                    controllers: "memory".into(),
                    dir: "/sys/fs/cgroup/memory/process_api/f2".into(),
                    root: false,
                },
                V1Group {
                    controllers: "cpuacct".into(),
                    dir: "/sys/fs/cgroup/cpuacct".into(),
                    root: true,
                },
                V1Group {
                    controllers: "cpu".into(),
                    dir: "/sys/fs/cgroup/cpu/a".into(),
                    root: false,
                },
            ]
        );
        // Where cpu and cpuacct share a hierarchy.
        let joint = v1_groups("3:cpu,cpuacct:/k\n", &m);
        assert_eq!(joint[0].dir, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/k"));
        // A unified host: no v1 line.
        assert!(v1_groups("0::/system.slice/x.service\n", &m).is_empty());
    }

    #[test]
    fn counters_from_flat_keyed_files() {
        let dir = std::env::temp_dir().join(format!("chaos-stress-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("memory.oom_control");
        fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").expect("write");
        assert_eq!(counter(&f, "oom_kill"), 3);
        assert_eq!(counter(&f, "under_oom"), 0);
        assert_eq!(counter(&dir.join("absent"), "oom_kill"), 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
