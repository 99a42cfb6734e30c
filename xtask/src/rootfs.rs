//! Filling a root filesystem (the VM guests' initramfs, the agent's image) with host binaries
//! and the shared libraries they load, at the paths they have here.

use anyhow::{Context, Result};
use std::{fs, path::Path, process::Command};

/// Copies `src` to `root` + `dst` (following symlinks), creating directories.
pub fn put(root: &Path, src: &Path, dst: &Path) -> Result<()> {
    let to = root.join(dst.strip_prefix("/").unwrap_or(dst));
    fs::create_dir_all(to.parent().context("parent")?)?;
    fs::copy(src, &to).with_context(|| format!("copying {}", src.display()))?;
    Ok(())
}

/// An executable or shared object plus every library ldd lists, at the same paths.
pub fn put_with_libs(root: &Path, bin: &Path, dst: &Path) -> Result<()> {
    put(root, bin, dst)?;
    let ldd = Command::new("ldd").arg(bin).output()?;
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let lib = Path::new(lib);
        if !root.join(lib.strip_prefix("/")?).exists() {
            put(root, lib, lib)?;
        }
    }
    Ok(())
}
