//! The bytes the syscall programs read, pinned down without root.

use super::*;
use crate::{controls::Controls, syscall::SyscallFaultSpec, units::Percent};
use std::time::Duration;

fn spec(yaml: &str, target: Target) -> SyscallSpec {
    let f: SyscallFaultSpec = serde_norway::from_str(yaml).expect("parses");
    f.into_spec(target, Duration::from_secs(1), Controls::default())
}

fn cgroup() -> Cgroup {
    Cgroup {
        path: "/sys/fs/cgroup/app".into(),
        id: 4242,
        level: 3,
    }
}

#[test]
fn scope_is_the_cgroup_or_the_process_and_the_comm() {
    let by_cgroup = scope(
        &spec(
            "name: write\nerrno: EIO\ncomm: postgres",
            Target::Cgroup("app".into()),
        ),
        &cgroup(),
    )
    .expect("scope");
    assert_eq!(
        (by_cgroup.cgroup_id, by_cgroup.cgroup_level, by_cgroup.tgid),
        (4242, 3, 0)
    );
    assert_eq!(&by_cgroup.comm[..9], b"postgres\0");
    let by_pid =
        scope(&spec("name: write\nerrno: EIO", Target::Pid(77)), &cgroup()).expect("scope");
    assert_eq!(
        (by_pid.cgroup_id, by_pid.tgid, by_pid.comm),
        (0, 77, [0; 16])
    );
    for bad in ["''", "a-name-longer-than-15"] {
        let s = spec(
            &format!("name: write\nerrno: EIO\ncomm: {bad}"),
            Target::Pid(1),
        );
        match scope(&s, &cgroup()) {
            Err(Error::Input { flag, .. }) => assert_eq!(flag, "--comm"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn sock_rule_carries_the_filters_and_leaves_the_cgroup_to_the_attach() {
    let s = spec(
        "name: connect\nerrno: ECONNREFUSED\ndst: 10.0.0.0/8\ndport: 5432\nprotocol: tcp\npercent: 50",
        Target::Cgroup("app".into()),
    );
    let entry = crate::syscall::catalogue::find("connect").expect("in the catalogue");
    let sc = scope(&s, &cgroup()).expect("scope");
    let r = sock_rule(entry, &s, libc::ECONNREFUSED, sc, 9);
    assert_eq!((r.scope.cgroup_id, r.scope.cgroup_level), (0, 0));
    assert_eq!(r.dst, cidr::to_kernel(&"10.0.0.0/8".parse().expect("cidr")));
    assert_eq!((r.dport.lo, r.dport.hi), (5432, 5432));
    assert_eq!(r.protocol, PROTO_TCP);
    assert_eq!(r.errno, libc::ECONNREFUSED as u32);
    assert_eq!(
        r.threshold,
        "50".parse::<Percent>().expect("percent").threshold()
    );
    assert_eq!((r.op, r.fault_id, r.deadline_ns), (entry.op, 9, 0));
    let any = sock_rule(
        entry,
        &spec("name: connect\nerrno: 111", Target::Pid(1)),
        111,
        sc,
        1,
    );
    assert_eq!(
        (any.dst, any.dport, any.protocol),
        (Cidr::ANY, PortRange::ANY, PROTO_ANY)
    );
}

#[test]
fn sys_rule_carries_paths_file_types_and_the_negative_errno() {
    let entry = crate::syscall::catalogue::find("write").expect("in the catalogue");
    let s = spec("name: write\nerrno: ENOSPC\npath: /data", Target::Pid(5));
    let keys = [FileKey { dev: 8, ino: 2 }];
    let r = sys_rule(entry, &s, libc::ENOSPC, Scope::default(), &keys, 3);
    assert_eq!(
        (r.n_paths, r.paths[0], r.paths[1]),
        (1, keys[0], FileKey::default())
    );
    assert_eq!(
        r.file_types, FILES_REGULAR,
        "read/write spare pipes by default"
    );
    assert_eq!((r.errno, r.retval), (libc::ENOSPC as u32, -libc::ENOSPC));
    assert_eq!(r.port, PortRange::ANY);
    let all = spec(
        "name: write\nerrno: ENOSPC\nall_files: true",
        Target::Pid(5),
    );
    assert_eq!(
        sys_rule(entry, &all, 28, Scope::default(), &[], 3).file_types,
        FILES_ANY
    );
    let listen = crate::syscall::catalogue::find("listen").expect("in the catalogue");
    let l = spec(
        "name: listen\nerrno: EADDRINUSE\nport: 8000-8100",
        Target::Pid(5),
    );
    let r = sys_rule(listen, &l, libc::EADDRINUSE, Scope::default(), &[], 3);
    assert_eq!(
        (r.port.lo, r.port.hi, r.file_types),
        (8000, 8100, FILES_ANY)
    );
}
