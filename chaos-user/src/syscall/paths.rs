//! `--path` prefixes, resolved when the fault starts to the filesystem objects they name.
//!
//! The kernel side compares objects (superblock device and inode number), not strings: a file
//! matches when it, or a directory above it on the same filesystem, is one of them. So symlinks
//! in PATH are resolved once here, every bind mount of a matching directory matches, hard links
//! match through any of their names' directories, and a filesystem mounted below PATH needs its
//! own --path (its files' ancestors stop at its root). For a container, name the path through
//! /proc/PID/root/... to resolve it in the container's mount namespace.

use crate::error::{Error, Result};
use chaos_common::syscall::{FileKey, kernel_dev};
use std::{os::unix::fs::MetadataExt, path::PathBuf};

pub fn resolve(paths: &[PathBuf]) -> Result<Vec<FileKey>> {
    paths.iter().map(key).collect()
}

fn key(p: &PathBuf) -> Result<FileKey> {
    if !p.is_absolute() {
        return Err(Error::input(
            "--path",
            format!(
                "'{}' is not absolute; give the full path, e.g. /var/lib/app",
                p.display()
            ),
        ));
    }
    let m = std::fs::metadata(p).map_err(|e| {
        Error::input(
            "--path",
            format!(
                "cannot resolve {} ({e}); it must exist when the fault starts (create the \
                 directory first, or name its parent)",
                p.display()
            ),
        )
    })?;
    Ok(FileKey {
        dev: from_user_dev(m.dev()),
        ino: m.ino(),
    })
}

/// glibc's dev_t encoding (what stat returns) to the kernel's internal one (MKDEV).
fn from_user_dev(dev: u64) -> u64 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    kernel_dev(major as u32, minor as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic")]
mod tests {
    use super::*;

    #[test]
    fn devices_and_errors() {
        // 8:1 (sda1) and 0:45 (a tmpfs) in glibc's encoding.
        assert_eq!(from_user_dev(0x801), kernel_dev(8, 1));
        assert_eq!(from_user_dev(45), kernel_dev(0, 45));
        // major 259, minor 300: both spill into the high bits.
        let user = (259u64 & 0xfff) << 8 | (300 & 0xff) | ((300u64 & !0xff) << 12);
        assert_eq!(from_user_dev(user), kernel_dev(259, 300));
        let e = resolve(&["relative/x".into()]).unwrap_err().to_string();
        assert!(e.starts_with("--path") && e.contains("not absolute"), "{e}");
        let e = resolve(&["/no/such/dir/here".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("must exist"), "{e}");
        let k = resolve(&["/".into()]).expect("root resolves");
        assert_eq!(k[0].ino, std::fs::metadata("/").expect("stat /").ino());
    }
}
