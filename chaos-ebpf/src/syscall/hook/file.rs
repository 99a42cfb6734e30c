//! File faults: open, read, write, truncate, mmap (on the open file or path) and unlink, mkdir,
//! rename (on the directory entry), filtered by `--path` objects and, for read/write, file type.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use chaos_common::syscall::{
    FILES_REGULAR, MAX_DEPTH, MAY_READ, MAY_WRITE, OP_MKDIR, OP_MMAP, OP_OPEN, OP_READ, OP_RENAME,
    OP_TRUNCATE, OP_UNLINK, OP_WRITE, S_IFMT, S_IFREG, SysRule,
};

use super::{arg, field, read, respond};

/// Whether `dentry` or one of the directories above it (on the same filesystem) is one of the
/// rule's `--path` objects, compared by superblock device and inode number.
///
/// Shaped for the verifier, which walks every level of the loop: each level compares the
/// object's path count (`features::paths`, a constant to it) of slots, a fixed trip count,
/// and keeps no state that differs between outcomes, so what it has seen prunes the rest.
/// Slots beyond the rule's paths are zero and match no inode; a rule with more paths than its
/// object compares matches less, never more (userspace refuses to write one).
#[inline(always)]
fn under_paths(r: &SysRule, dentry: u64) -> bool {
    if r.n_paths == 0 {
        return true;
    }
    let n = crate::features::paths() as usize;
    if n == 0 {
        return false;
    }
    let o = &r.offsets;
    let mut d = dentry;
    for _ in 0..MAX_DEPTH {
        if d == 0 {
            return false;
        }
        // Negative dentries (a name mkdir is about to create) have no inode; their parent does.
        let inode = field(d, o.dentry_inode).unwrap_or(0);
        if inode != 0 && is_one_of(r, n, inode) {
            return true;
        }
        let parent = field(d, o.dentry_parent).unwrap_or(0);
        // The root of a filesystem is its own parent.
        if parent == d {
            return false;
        }
        d = parent;
    }
    false
}

/// Whether `inode` is one of the first `n` path slots: inode numbers first (no read), the
/// device only on a hit.
#[inline(always)]
fn is_one_of(r: &SysRule, n: usize, inode: u64) -> bool {
    let o = &r.offsets;
    let ino = field(inode, o.inode_ino).unwrap_or(0);
    if ino == 0 || !r.paths.iter().take(n).any(|p| p.ino == ino) {
        return false;
    }
    let dev = field(inode, o.inode_sb)
        .and_then(|sb| read::<u32>(sb.wrapping_add(o.sb_dev as u64)))
        .map_or(u64::MAX, u64::from);
    r.paths.iter().take(n).any(|p| p.ino == ino && p.dev == dev)
}

/// Type and path filters for an open file.
#[inline(always)]
pub(crate) fn file_matches(r: &SysRule, file: u64) -> bool {
    if file == 0 {
        // Anonymous mmap: only a rule without --path applies.
        return r.n_paths == 0;
    }
    let o = &r.offsets;
    if r.file_types == FILES_REGULAR {
        let mode = field(file, o.file_inode)
            .and_then(|i| read::<u16>(i.wrapping_add(o.inode_mode as u64)))
            .unwrap_or(0);
        if mode & S_IFMT != S_IFREG {
            return false;
        }
    }
    under_paths(r, field(file, o.file_dentry).unwrap_or(0))
}

#[lsm(hook = "file_open")]
pub fn chaos_file_open(ctx: LsmContext) -> i32 {
    let file = arg(&ctx, 0);
    respond(OP_OPEN, |r| file_matches(r, file))
}

/// read(2)/write(2) and their vector/positional forms all pass rw_verify_area().
#[lsm(hook = "file_permission")]
pub fn chaos_file_perm(ctx: LsmContext) -> i32 {
    let (file, mask) = (arg(&ctx, 0), arg(&ctx, 1) as u32);
    let op = if mask & MAY_WRITE != 0 {
        OP_WRITE
    } else if mask & MAY_READ != 0 {
        OP_READ
    } else {
        return 0;
    };
    respond(op, |r| file_matches(r, file))
}

#[lsm(hook = "path_truncate")]
pub fn chaos_truncate(ctx: LsmContext) -> i32 {
    let path = arg(&ctx, 0);
    respond(OP_TRUNCATE, |r| {
        under_paths(r, field(path, r.offsets.path_dentry).unwrap_or(0))
    })
}

#[lsm(hook = "mmap_file")]
pub fn chaos_mmap_file(ctx: LsmContext) -> i32 {
    let file = arg(&ctx, 0);
    respond(OP_MMAP, |r| file_matches(r, file))
}

#[lsm(hook = "inode_unlink")]
pub fn chaos_unlink(ctx: LsmContext) -> i32 {
    let dentry = arg(&ctx, 1);
    respond(OP_UNLINK, |r| under_paths(r, dentry))
}

#[lsm(hook = "inode_mkdir")]
pub fn chaos_mkdir(ctx: LsmContext) -> i32 {
    let dentry = arg(&ctx, 1);
    respond(OP_MKDIR, |r| under_paths(r, dentry))
}

/// A rename matches when the source or the destination is under a `--path`.
#[lsm(hook = "inode_rename")]
pub fn chaos_rename(ctx: LsmContext) -> i32 {
    let (old, new) = (arg(&ctx, 1), arg(&ctx, 3));
    respond(OP_RENAME, |r| under_paths(r, old) || under_paths(r, new))
}
