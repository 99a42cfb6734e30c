//! Syscall fault rules: who is targeted (`Scope`), and the rule the LSM / fmod_ret programs read
//! (`SysRule`), including the kernel struct offsets userspace looked up in the running kernel's
//! BTF (rustc cannot emit CO-RE relocations, so offsets travel in the rule instead).

use crate::PortRange;

/// Catalogue operations (`SysRule::op`, `SockRule::op`, `Event::action` for syscall events).
pub const OP_CONNECT: u8 = 1;
pub const OP_SENDMSG: u8 = 2;
pub const OP_BIND: u8 = 3;
pub const OP_OPEN: u8 = 4;
pub const OP_READ: u8 = 5;
pub const OP_WRITE: u8 = 6;
pub const OP_UNLINK: u8 = 7;
pub const OP_MKDIR: u8 = 8;
pub const OP_RENAME: u8 = 9;
pub const OP_TRUNCATE: u8 = 10;
pub const OP_MMAP: u8 = 11;
pub const OP_FORK: u8 = 12;
pub const OP_LISTEN: u8 = 13;
pub const OP_ACCEPT: u8 = 14;
/// Only crash faults (`chaos syscall fsync --signal ...`): no LSM hook sees these calls.
pub const OP_FSYNC: u8 = 15;
pub const OP_FDATASYNC: u8 = 16;

/// The syscall an `OP_*` code stands for (the catalogue's name, as events print it).
pub fn op_name(op: u8) -> Option<&'static str> {
    const NAMES: [&str; 16] = [
        "connect",
        "sendmsg",
        "bind",
        "open",
        "read",
        "write",
        "unlink",
        "mkdir",
        "rename",
        "truncate",
        "mmap",
        "fork",
        "listen",
        "accept",
        "fsync",
        "fdatasync",
    ];
    NAMES.get(usize::from(op).checked_sub(1)?).copied()
}

/// `--path` prefixes per rule.
pub const MAX_PATHS: usize = 8;
/// Directory levels walked up from a file looking for a `--path` prefix.
pub const MAX_DEPTH: u32 = 32;

/// Which processes a syscall fault applies to. Every set field must match.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// cgroup v2 id matched with `bpf_get_current_ancestor_cgroup_id(cgroup_level)`, so
    /// descendants match too; 0: any (cgroup hooks are attached to the cgroup instead).
    pub cgroup_id: u64,
    pub cgroup_level: u32,
    /// Thread-group id (`--pid`); 0: any.
    pub tgid: u32,
    /// `--comm`, NUL-padded as the kernel stores it; all zero: any.
    pub comm: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<Scope>() == 32);

/// A filesystem object named by `--path`: kernel `dev_t` of its superblock and inode number.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

/// Byte offsets of the kernel struct fields the programs read (with bpf_probe_read_kernel),
/// looked up by name in /sys/kernel/btf/vmlinux when the fault starts.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `file.f_path.dentry`
    pub file_dentry: u32,
    /// `file.f_inode`
    pub file_inode: u32,
    pub inode_mode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    /// `super_block.s_dev`
    pub sb_dev: u32,
    pub dentry_parent: u32,
    pub dentry_inode: u32,
    /// `path.dentry`
    pub path_dentry: u32,
    /// `socket.sk`
    pub socket_sk: u32,
    /// `sock.__sk_common.skc_num` (local port, host order)
    pub sk_num: u32,
    /// From a task to the open file of a descriptor (syscall entry kprobes): `task_struct.files`,
    /// `files_struct.fdt`, `fdtable.fd` and `fdtable.max_fds`.
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    /// `file.private_data` (the `struct socket` of a socket's file).
    pub file_private: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 64);

/// `SysRule::file_types`
pub const FILES_ANY: u8 = 0;
/// Read/write faults only on regular files, so pipes, sockets and ttys keep working.
pub const FILES_REGULAR: u8 = 1;

/// One syscall fault rule for the LSM / fmod_ret programs, from `CHAOS_SYS_CFG[0]`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SysRule {
    pub deadline_ns: u64,
    pub threshold: u64,
    pub scope: Scope,
    /// `--path` objects; a file matches if it or one of its ancestors is one of them.
    pub paths: [FileKey; MAX_PATHS],
    pub offsets: KernelOffsets,
    /// Positive errno returned to the caller.
    pub errno: u32,
    pub fault_id: u32,
    pub sample: u32,
    /// listen/accept: local port.
    pub port: PortRange,
    /// `OP_*`: which operation the shared programs (file_permission: read or write) fault.
    pub op: u8,
    /// `FLAG_*`.
    pub flags: u8,
    pub n_paths: u8,
    /// `FILES_*`.
    pub file_types: u8,
    /// `-errno`, what the program returns. Stored negated so that the program never negates:
    /// older verifiers lose a value's range through a negation, and LSM programs must return a
    /// provable [-4095, 0].
    pub retval: i32,
    /// Crash faults: the signal sent to the caller with bpf_send_signal (0 for errno faults).
    pub signal: u32,
}
const _: () = assert!(core::mem::size_of::<SysRule>() == 272);

/// S_IFMT / S_IFREG of `inode.i_mode`.
pub const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;

/// `file_permission`'s mask bits.
pub const MAY_WRITE: u32 = 2;
pub const MAY_READ: u32 = 4;

/// Kernel `dev_t` (MKDEV) from a major and minor, as `super_block.s_dev` holds it.
pub const fn kernel_dev(major: u32, minor: u32) -> u64 {
    ((major as u64) << 20) | (minor as u64 & 0xfffff)
}

impl Scope {
    /// Whether `comm` (the current task's, NUL-padded) is the one asked for.
    #[inline(always)]
    pub fn comm_matches(&self, comm: &[u8; 16]) -> bool {
        if self.comm[0] == 0 {
            return true;
        }
        let mut i = 0;
        while i < 16 {
            if self.comm[i] != comm[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_and_dev() {
        let mut s = Scope::default();
        let mut c = [0u8; 16];
        c[..3].copy_from_slice(b"cat");
        assert!(s.comm_matches(&c));
        s.comm[..2].copy_from_slice(b"dd");
        assert!(!s.comm_matches(&c));
        let mut d = [0u8; 16];
        d[..2].copy_from_slice(b"dd");
        assert!(s.comm_matches(&d));
        assert_eq!(kernel_dev(8, 1), 0x800001);
    }
}
