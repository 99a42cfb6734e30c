//! Container cgroups as the kubelet lays them out, for both cgroup drivers:
//! - cgroupfs: `/kubepods/besteffort/pod<uid>/<64-hex id>` (`/kubepods/pod<uid>/…` for
//!   Guaranteed pods);
//! - systemd: `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid with _>.slice/
//!   cri-containerd-<id>.scope` (`crio-<id>.scope` under CRI-O, `docker-<id>.scope` under
//!   cri-dockerd).
//!
//! The path comes from `/proc/PID/cgroup` (the v2 line `0::PATH`, or on a hybrid host the same
//! path in the v1 lines); it is relative to the cgroup2 mount.

/// What a kubelet cgroup path says: the pod's UID (with dashes, as in its metadata) and the
/// container's runtime id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeCgroup {
    pub pod_uid: String,
    pub container_id: String,
}

/// Parses a container's cgroup path of either driver; `None` for any other path.
pub fn parse(path: &str) -> Option<KubeCgroup> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (last, parent) = match parts.as_slice() {
        [.., parent, last] => (*last, *parent),
        _ => return None,
    };
    if let Some(uid) = parent.strip_prefix("pod") {
        // cgroupfs: .../pod<uid>/<id>
        return is_id(last).then(|| KubeCgroup {
            pod_uid: uid.to_string(),
            container_id: last.to_string(),
        });
    }
    // systemd: ...-pod<uid_with_underscores>.slice/<runtime>-<id>.scope
    let uid = parent.strip_suffix(".slice")?.rsplit_once("-pod")?.1;
    let id = last.strip_suffix(".scope")?.rsplit_once('-')?.1;
    is_id(id).then(|| KubeCgroup {
        pod_uid: uid.replace('_', "-"),
        container_id: id.to_string(),
    })
}

/// The cgroup path in a `/proc/PID/cgroup` text: the v2 line (`0::PATH`), else the first v1
/// line's path (hybrid hosts list the same kubelet path in every hierarchy).
pub fn from_proc(text: &str) -> Option<String> {
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (id, _, path) = (f.next()?, f.next()?, f.next()?);
            Some((id, path))
        })
        .collect();
    lines
        .iter()
        .find(|(id, _)| *id == "0")
        .or_else(|| lines.first())
        .map(|(_, p)| p.to_string())
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c6b1b0e0d4f7a9d2c5e8b7a6f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4";
    const UID: &str = "0b7e2a4c-5d61-4f0e-9a3b-2c1d0e9f8a7b";

    #[test]
    fn cgroupfs_driver() {
        for qos in ["/kubepods/besteffort", "/kubepods/burstable", "/kubepods"] {
            let p = format!("{qos}/pod{UID}/{ID}");
            assert_eq!(
                parse(&p),
                Some(KubeCgroup {
                    pod_uid: UID.into(),
                    container_id: ID.into()
                }),
                "{p}"
            );
        }
    }

    #[test]
    fn systemd_driver() {
        let u = UID.replace('-', "_");
        for (runtime, qos) in [
            ("cri-containerd", "besteffort"),
            ("crio", "burstable"),
            ("docker", "besteffort"),
        ] {
            let p = format!(
                "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice/{runtime}-{ID}.scope"
            );
            assert_eq!(
                parse(&p),
                Some(KubeCgroup {
                    pod_uid: UID.into(),
                    container_id: ID.into()
                }),
                "{p}"
            );
        }
        // Guaranteed pods sit directly under kubepods.slice.
        let p = format!("/kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{ID}.scope");
        assert_eq!(parse(&p).map(|k| k.pod_uid), Some(UID.to_string()));
    }

    #[test]
    fn other_paths_are_not_containers() {
        for p in [
            "/",
            "/system.slice/containerd.service",
            "/user.slice/user-0.slice/session-1.scope",
            &format!("/kubepods/besteffort/pod{UID}"),
            "/kubepods/besteffort/podX/not-an-id",
        ] {
            assert_eq!(parse(p), None, "{p}");
        }
    }

    #[test]
    fn proc_cgroup_lines() {
        let unified = format!("0::/kubepods/besteffort/pod{UID}/{ID}\n");
        assert_eq!(
            from_proc(&unified).as_deref(),
            Some(format!("/kubepods/besteffort/pod{UID}/{ID}").as_str())
        );
        let hybrid = format!(
            "12:memory:/kubepods/pod{UID}/{ID}\n1:name=systemd:/kubepods/pod{UID}/{ID}\n0::/kubepods/pod{UID}/{ID}\n"
        );
        assert_eq!(from_proc(&hybrid), Some(format!("/kubepods/pod{UID}/{ID}")));
        let v1_only = format!("4:cpu,cpuacct:/kubepods/pod{UID}/{ID}\n");
        assert_eq!(
            from_proc(&v1_only),
            Some(format!("/kubepods/pod{UID}/{ID}"))
        );
    }
}
