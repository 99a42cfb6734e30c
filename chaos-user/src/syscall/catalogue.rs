//! The syscalls chaos can fail, the errnos each can really return, and the kernel hook that
//! carries each one. `chaos syscall --list` prints this table.

use chaos_common::{
    maps::{PROG_BIND4, PROG_BIND6, PROG_CONNECT4, PROG_CONNECT6, PROG_SENDMSG4, PROG_SENDMSG6},
    syscall::*,
};
use libc::*;

/// Where a syscall is intercepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// cgroup_sock_addr programs (IPv4, IPv6) attached to the target cgroup; errno set with
    /// bpf_set_retval.
    SockAddr { v4: &'static str, v6: &'static str },
    /// An LSM hook: program `prog` as BPF LSM on `hook`, or as fmod_ret on `security_<hook>`;
    /// else program `kprobe` on the entry point of each of `syscalls` (kprobe +
    /// bpf_override_return).
    Lsm {
        hook: &'static str,
        prog: &'static str,
        kprobe: &'static str,
        syscalls: &'static [&'static str],
    },
}

/// Which filters an entry accepts besides the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filters {
    /// --dst, --dport, --protocol.
    Address,
    /// --path; `rw`: also --all-files (read/write default to regular files only).
    Path {
        rw: bool,
    },
    /// --port (the socket's local port).
    LocalPort,
    None,
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    /// "syscall NAME", as faults are named in reports.
    pub full_name: &'static str,
    /// Other names accepted on the command line (the variants the same hook covers).
    pub aliases: &'static [&'static str],
    pub op: u8,
    pub hook: Hook,
    pub filters: Filters,
    /// Errnos the real syscall can return, per its man page, that a fault may simulate.
    pub errnos: &'static [i32],
    pub note: &'static str,
}

const fn lsm(
    hook: &'static str,
    prog: &'static str,
    kprobe: &'static str,
    syscalls: &'static [&'static str],
) -> Hook {
    Hook::Lsm {
        hook,
        prog,
        kprobe,
        syscalls,
    }
}

pub const CONNECT_ERRNOS: &[i32] = &[
    ECONNREFUSED,
    ETIMEDOUT,
    ENETUNREACH,
    EHOSTUNREACH,
    EADDRNOTAVAIL,
    EADDRINUSE,
    EACCES,
    EPERM,
    EAGAIN,
    EINTR,
    ECONNRESET,
    ENOBUFS,
    ENETDOWN,
];

/// The kprobe program for calls whose filters need no descriptor (scope only).
pub const KP_CALL: &str = "chaos_kp_call";
const READS: &[&str] = &["read", "pread64", "readv", "preadv", "preadv2"];
const WRITES: &[&str] = &["write", "pwrite64", "writev", "pwritev", "pwritev2"];

pub const CATALOGUE: &[Entry] = &[
    Entry {
        name: "connect",
        full_name: "syscall connect",
        aliases: &[],
        op: OP_CONNECT,
        hook: Hook::SockAddr {
            v4: PROG_CONNECT4,
            v6: PROG_CONNECT6,
        },
        filters: Filters::Address,
        errnos: CONNECT_ERRNOS,
        note: "TCP connect and UDP connect, IPv4 and IPv6",
    },
    Entry {
        name: "sendmsg",
        full_name: "syscall sendmsg",
        aliases: &["sendto"],
        op: OP_SENDMSG,
        hook: Hook::SockAddr {
            v4: PROG_SENDMSG4,
            v6: PROG_SENDMSG6,
        },
        filters: Filters::Address,
        errnos: &[
            EPERM,
            EACCES,
            ENOBUFS,
            ENOMEM,
            EAGAIN,
            EINTR,
            EMSGSIZE,
            ENETUNREACH,
            EHOSTUNREACH,
            ENETDOWN,
            ECONNREFUSED,
        ],
        note: "UDP datagrams sent with a destination address (unconnected sockets)",
    },
    Entry {
        name: "bind",
        full_name: "syscall bind",
        aliases: &[],
        op: OP_BIND,
        hook: Hook::SockAddr {
            v4: PROG_BIND4,
            v6: PROG_BIND6,
        },
        filters: Filters::Address,
        errnos: &[EADDRINUSE, EADDRNOTAVAIL, EACCES, EPERM, ENOMEM, ENOBUFS],
        note: "--dst/--dport name the address and port being bound",
    },
    Entry {
        name: "listen",
        full_name: "syscall listen",
        aliases: &[],
        op: OP_LISTEN,
        hook: lsm(
            "socket_listen",
            "chaos_listen",
            "chaos_kp_listen",
            &["listen"],
        ),
        filters: Filters::LocalPort,
        errnos: &[EADDRINUSE, EACCES, EPERM, ENOBUFS, ENOMEM, EOPNOTSUPP],
        note: "--port is the socket's bound port",
    },
    Entry {
        name: "accept",
        full_name: "syscall accept",
        aliases: &["accept4"],
        op: OP_ACCEPT,
        hook: lsm(
            "socket_accept",
            "chaos_accept",
            "chaos_kp_accept",
            &["accept", "accept4"],
        ),
        filters: Filters::LocalPort,
        errnos: &[
            ECONNABORTED,
            EMFILE,
            ENFILE,
            ENOBUFS,
            ENOMEM,
            EPERM,
            EAGAIN,
            EINTR,
            EPROTO,
        ],
        note: "--port is the listening port",
    },
    Entry {
        name: "open",
        full_name: "syscall open",
        aliases: &["openat", "openat2", "creat"],
        op: OP_OPEN,
        hook: lsm(
            "file_open",
            "chaos_file_open",
            KP_CALL,
            &["open", "openat", "openat2", "creat"],
        ),
        filters: Filters::Path { rw: false },
        errnos: &[
            EACCES, EPERM, ENOENT, EMFILE, ENFILE, EROFS, ENOSPC, EDQUOT, EIO, EINTR, ENOMEM,
            ETXTBSY, ELOOP, ENXIO, EISDIR, ENODEV,
        ],
        note: "fails after the lookup: with O_CREAT the file is created, then open fails",
    },
    Entry {
        name: "read",
        full_name: "syscall read",
        aliases: &["pread", "pread64", "readv", "preadv"],
        op: OP_READ,
        hook: lsm("file_permission", "chaos_file_perm", "chaos_kp_read", READS),
        filters: Filters::Path { rw: true },
        errnos: &[EIO, EINTR, EAGAIN, EACCES, EPERM, EISDIR, ENOMEM, EINVAL],
        note: "regular files only unless --all-files",
    },
    Entry {
        name: "write",
        full_name: "syscall write",
        aliases: &["pwrite", "pwrite64", "writev", "pwritev"],
        op: OP_WRITE,
        hook: lsm(
            "file_permission",
            "chaos_file_perm",
            "chaos_kp_write",
            WRITES,
        ),
        filters: Filters::Path { rw: true },
        errnos: &[
            ENOSPC, EIO, EDQUOT, EFBIG, EAGAIN, EINTR, EROFS, EACCES, EPERM, EPIPE, ENOMEM,
        ],
        note: "regular files only unless --all-files",
    },
    Entry {
        name: "unlink",
        full_name: "syscall unlink",
        aliases: &["unlinkat"],
        op: OP_UNLINK,
        hook: lsm(
            "inode_unlink",
            "chaos_unlink",
            KP_CALL,
            &["unlink", "unlinkat"],
        ),
        filters: Filters::Path { rw: false },
        errnos: &[EACCES, EPERM, EBUSY, EIO, EROFS, ENOENT, ENOMEM],
        note: "",
    },
    Entry {
        name: "mkdir",
        full_name: "syscall mkdir",
        aliases: &["mkdirat"],
        op: OP_MKDIR,
        hook: lsm("inode_mkdir", "chaos_mkdir", KP_CALL, &["mkdir", "mkdirat"]),
        filters: Filters::Path { rw: false },
        errnos: &[
            EACCES, EPERM, EEXIST, ENOSPC, EDQUOT, EROFS, EMLINK, EIO, ENOMEM, ENOENT,
        ],
        note: "",
    },
    Entry {
        name: "rename",
        full_name: "syscall rename",
        aliases: &["renameat", "renameat2"],
        op: OP_RENAME,
        hook: lsm(
            "inode_rename",
            "chaos_rename",
            KP_CALL,
            &["rename", "renameat", "renameat2"],
        ),
        filters: Filters::Path { rw: false },
        errnos: &[
            EACCES, EPERM, EBUSY, EXDEV, ENOSPC, EDQUOT, EROFS, EIO, EMLINK, ENOTEMPTY,
        ],
        note: "matches when the source or the destination is under --path",
    },
    Entry {
        name: "truncate",
        full_name: "syscall truncate",
        aliases: &[],
        op: OP_TRUNCATE,
        hook: lsm("path_truncate", "chaos_truncate", KP_CALL, &["truncate"]),
        filters: Filters::Path { rw: false },
        errnos: &[EACCES, EPERM, EFBIG, EIO, EROFS, EINTR, ETXTBSY],
        note: "truncate(2); ftruncate(2) too on kernels before 6.2",
    },
    Entry {
        name: "mmap",
        full_name: "syscall mmap",
        aliases: &[],
        op: OP_MMAP,
        hook: lsm("mmap_file", "chaos_mmap_file", "chaos_kp_mmap", &["mmap"]),
        filters: Filters::Path { rw: false },
        errnos: &[ENOMEM, EACCES, EAGAIN, ENODEV, EPERM],
        note: "without --path anonymous mappings (malloc) fail too",
    },
    Entry {
        name: "fork",
        full_name: "syscall fork",
        aliases: &["clone", "clone3", "vfork"],
        op: OP_FORK,
        hook: lsm(
            "task_alloc",
            "chaos_fork",
            KP_CALL,
            &["fork", "vfork", "clone", "clone3"],
        ),
        filters: Filters::None,
        errnos: &[EAGAIN, ENOMEM],
        note: "new processes and threads",
    },
];

/// The entry for a name or alias (case-insensitive).
pub fn find(name: &str) -> Option<&'static Entry> {
    let n = name.trim();
    CATALOGUE.iter().find(|e| {
        e.name.eq_ignore_ascii_case(n) || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(n))
    })
}

pub fn names() -> String {
    CATALOGUE
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn by_op(op: u8) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.op == op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_errnos() {
        assert_eq!(find("openat").map(|e| e.name), Some("open"));
        assert_eq!(find("WRITE").map(|e| e.op), Some(OP_WRITE));
        assert!(find("ioctl").is_none());
        for e in CATALOGUE {
            assert!(!e.errnos.is_empty(), "{}", e.name);
            for &n in e.errnos {
                assert_ne!(
                    crate::errno::name(n),
                    "E?",
                    "{} errno {n} has no name",
                    e.name
                );
            }
            assert_eq!(by_op(e.op).map(|x| x.name), Some(e.name), "ops are unique");
            // Events name the syscall from chaos-common's table: the same name.
            assert_eq!(chaos_common::syscall::op_name(e.op), Some(e.name));
            assert_eq!(e.full_name, format!("syscall {}", e.name));
        }
    }
}
