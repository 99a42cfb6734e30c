//! Kernels built from Debian's source, for what no Debian kernel image offers: `6.12-kprobe`
//! lets BPF override a kprobed function's return value (CONFIG_BPF_KPROBE_OVERRIDE) and has
//! neither BPF LSM nor trampolines (xtask/kernel/kprobe.config). Built once per cache: the
//! source package comes from apt, the configuration is x86_64_defconfig + kvm_guest.config +
//! the fragment, checked after olddefconfig so that an option the source cannot give fails the
//! build by name instead of producing a kernel that silently lacks it.

use super::kernel::{Kernel, download, run};
use anyhow::{Context, Result, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// A kernel built here from a Debian source package.
pub struct Built {
    /// Its name in `--kernel` and tests/expect.toml.
    pub short: &'static str,
    /// The source package apt fetches.
    pub package: &'static str,
    /// The config fragment under xtask/kernel/.
    pub fragment: &'static str,
    /// Added to the guest's kernel command line.
    pub cmdline: &'static str,
}

pub const BUILT: &[Built] = &[Built {
    short: "6.12-kprobe",
    package: "linux-source-6.12",
    fragment: "kprobe.config",
    // Without the function tracer kprobes are breakpoints that the kernel optimizes into jumps,
    // and an optimized kprobe ignores bpf_override_return (chaos refuses then, tested).
    cmdline: "sysctl.debug.kprobes-optimization=0",
}];

/// The fragment's `CONFIG_X=y` and `# CONFIG_X is not set` lines as (option, wanted).
fn wanted(fragment: &str) -> Vec<(String, bool)> {
    fragment
        .lines()
        .filter_map(|l| {
            if let Some(on) = l.strip_suffix("=y") {
                Some((on.trim().to_string(), true))
            } else {
                let off = l.strip_prefix("# ")?.strip_suffix(" is not set")?;
                Some((off.to_string(), false))
            }
        })
        .collect()
}

/// Options of the fragment that the final .config does not have as asked.
fn unmet(fragment: &str, config: &str) -> Vec<String> {
    wanted(fragment)
        .into_iter()
        .filter(|(opt, on)| config.lines().any(|l| l == format!("{opt}=y")) != *on)
        .map(|(opt, on)| format!("{opt}={}", if on { "y" } else { "n" }))
        .collect()
}

fn make(src: &Path, args: &[&str]) -> Result<String> {
    run(Command::new("make")
        .current_dir(src)
        .args(["-s", "ARCH=x86_64"])
        .args(args))
}

/// `short`'s entry in BUILT.
fn spec(short: &str) -> Result<&'static Built> {
    BUILT
        .iter()
        .find(|b| b.short == short)
        .with_context(|| format!("unknown built kernel {short}"))
}

/// Where `short` is built: a tree keyed by the fragment's content (changing it rebuilds).
fn tree(short: &str, cache: &Path, xtask_dir: &Path) -> Result<(PathBuf, PathBuf, String)> {
    let frag_name = spec(short)?.fragment;
    let fragment_path = xtask_dir.join("kernel").join(frag_name);
    let fragment = fs::read_to_string(&fragment_path)
        .with_context(|| format!("reading {}", fragment_path.display()))?;
    let key = format!("{:016x}", fnv1a(fragment.as_bytes()));
    Ok((
        cache.join("built").join(format!("{short}-{key}")),
        fragment_path,
        fragment,
    ))
}

/// Whether `short` is one of the kernels built here and its tree is not complete yet.
pub fn needs_build(short: &str, cache: &Path, xtask_dir: &Path) -> bool {
    tree(short, cache, xtask_dir).is_ok_and(|(dir, ..)| !dir.join(".done").exists())
}

pub fn build(short: &str, cache: &Path, xtask_dir: &Path) -> Result<Kernel> {
    let Built {
        package: pkg,
        cmdline,
        ..
    } = spec(short)?;
    let (dir, fragment_path, fragment) = tree(short, cache, xtask_dir)?;
    let src = dir.join("src");
    let image = src.join("arch/x86/boot/bzImage");
    if !dir.join(".done").exists() {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let deb = download(pkg, &[], &cache.join("debs"))?;
        eprintln!("vm: building {short} from {}", deb.display());
        let unpacked = dir.join("deb");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
        let tarball = find_tarball(&unpacked.join("usr/src"))?;
        fs::create_dir_all(&src)?;
        run(Command::new("tar")
            .arg("xaf")
            .arg(&tarball)
            .arg("-C")
            .arg(&src)
            .arg("--strip-components=1"))?;
        fs::remove_dir_all(&unpacked)?;
        make(&src, &["x86_64_defconfig"])?;
        run(Command::new("scripts/kconfig/merge_config.sh")
            .current_dir(&src)
            .args(["-m", ".config", "kernel/configs/kvm_guest.config"])
            .arg(&fragment_path))?;
        make(&src, &["olddefconfig"])?;
        let config = fs::read_to_string(src.join(".config"))?;
        let missing = unmet(&fragment, &config);
        if !missing.is_empty() {
            bail!(
                "{pkg} cannot be configured as {}: {} (see make menuconfig for what they \
                 depend on)",
                fragment_path.display(),
                missing.join(", ")
            );
        }
        let jobs = format!(
            "-j{}",
            std::thread::available_parallelism().map_or(2, |n| n.get())
        );
        let started = std::time::Instant::now();
        make(&src, &[&jobs, "LOCALVERSION=-chaos", "bzImage"])
            .context("building the kernel (needs flex, bison, libelf-dev, dwarves, bc)")?;
        eprintln!(
            "vm: built {short} in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        fs::write(dir.join(".done"), "")?;
    }
    let release = make(&src, &["LOCALVERSION=-chaos", "kernelrelease"])?
        .trim()
        .to_string();
    // No modules; the initramfs builder still wants the directory.
    let root = dir.join("root");
    fs::create_dir_all(root.join("lib/modules").join(&release))?;
    Ok(Kernel {
        name: format!("{short} ({release})"),
        vmlinuz: image,
        root,
        release,
        cmdline,
    })
}

fn find_tarball(dir: &Path) -> Result<PathBuf> {
    fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .with_context(|| format!("no source tarball in {}", dir.display()))
}

/// A stable hash of the fragment (std's hasher is not stable across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_options_are_checked_both_ways() {
        let frag = "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\n";
        let config = "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n";
        assert_eq!(unmet(frag, config), vec!["CONFIG_B=n", "CONFIG_C=y"]);
        assert!(unmet(frag, "CONFIG_A=y\nCONFIG_C=y\n").is_empty());
    }
}
