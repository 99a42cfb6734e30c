//! `cargo xtask vm`: the privileged test suite inside VMs with Debian kernels, for what the
//! host kernel refuses (BPF LSM, trampolines, kprobes, fq, netem).

mod build;
mod initramfs;
pub mod kernel;
pub mod matrix;
mod prebuild;
mod qemu;

pub use prebuild::Prebuild;

use anyhow::{Context, Result, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// Where downloaded kernels are kept between runs.
fn cache_dir() -> PathBuf {
    std::env::var_os("CHAOS_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home =
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
            home.join(".cache/chaos-vm")
        })
}

/// `cargo xtask build-kernel`: what `Prebuild` runs in the background.
pub fn build_kernel(root: &Path, short: &str) -> Result<()> {
    // Started by Prebuild as the leader of its own process group.
    crate::child::group_dies_on_term();
    kernel::fetch(short, &cache_dir(), root).map(|_| ())
}

/// Builds the integration test executables and returns the paths of the privileged ones (the
/// `tests` package): the other packages' tests do not depend on the kernel and run once, on the
/// host, rather than again in each slow guest (which has no source tree for them to read).
pub fn test_executables(root: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        // The same package set as the host run, so its build is reused (feature unification
        // differs with -p alone and would rebuild every dependency).
        .args([
            "test",
            "--workspace",
            "--exclude",
            "chaos-ebpf",
            "--tests",
            "--no-run",
        ])
        .arg("--message-format=json-render-diagnostics")
        .output()
        .context("cargo test --no-run")?;
    if !out.status.success() {
        bail!(
            "building the tests failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut exes = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = v["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        let privileged = v["target"]["src_path"]
            .as_str()
            .is_some_and(|p| Path::new(p).starts_with(root.join("tests/tests")));
        if let (true, true, Some(exe)) = (is_test, privileged, v["executable"].as_str()) {
            exes.push(PathBuf::from(exe));
        }
    }
    if exes.is_empty() {
        bail!("no integration test executables found");
    }
    exes.sort();
    Ok(exes)
}

/// Runs the suite on each kernel; fails when a test failed in any of them. Runs named in
/// tests/expect.toml are held to it (the guest's CHAOS_EXPECT).
pub fn run(root: &Path, kernels: &[String], test_args: &[String]) -> Result<crate::tally::Tally> {
    let tests = test_executables(root)?;
    let mut tally = crate::tally::Tally::default();
    let mut failed = Vec::new();
    for k in kernels {
        let g = run_guest(root, k, &tests, test_args)?;
        if !g.passed {
            failed.push(k.clone());
        }
        tally.add(g.tally);
    }
    if !failed.is_empty() {
        bail!("tests failed in the VM on kernel(s) {}", failed.join(", "));
    }
    Ok(tally)
}

/// One guest's run of the suite.
pub struct Guest {
    pub tally: crate::tally::Tally,
    /// The guest's status was 0 (every test binary passed, every module loaded).
    pub passed: bool,
}

/// Boots kernel `k` (a short name with an optional variant) and runs `tests` with `test_args`
/// in it. A guest that times out or crashes is a failed run; an error is a guest that could not
/// be built or started at all.
pub fn run_guest(root: &Path, k: &str, tests: &[PathBuf], test_args: &[String]) -> Result<Guest> {
    eprintln!("vm: === kernel {k}");
    let (base, append) = variant(k)?;
    let kernel = kernel::fetch(base, &cache_dir(), root)?;
    let described = crate::expect::load(root)?.contains_key(k);
    let payload = initramfs::Payload {
        chaos: &root.join("target/debug/chaos"),
        tests,
        test_args,
        // CHAOS_VM_CMD: run a shell command instead of the tests (debugging a kernel).
        cmd: std::env::var("CHAOS_VM_CMD").ok(),
        expect: described.then(|| k.to_string()),
    };
    let b = boot(root, base, &kernel, &payload, append, false)?;
    let mut tally = crate::tally::Tally::default();
    b.console.iter().for_each(|l| tally.add_line(l));
    tally.finish();
    let passed = b.status == 0;
    eprintln!(
        "vm: kernel {k} ({}): {}",
        kernel.name,
        if passed { "passed" } else { "FAILED" }
    );
    Ok(Guest { tally, passed })
}

/// Runs one program (a benchmark) with `args` in a guest of each kernel instead of the tests.
pub fn run_program(
    root: &Path,
    kernels: &[String],
    chaos: &Path,
    exe: &Path,
    args: &str,
) -> Result<()> {
    let cache = cache_dir();
    let exes = [exe.to_path_buf()];
    // The guest's name for it: the initramfs drops cargo's "-HASH" suffix from test binaries.
    let name = exe.file_name().context("program name")?.to_string_lossy();
    let short = name.rsplit_once('-').map_or(name.as_ref(), |(n, _)| n);
    for k in kernels {
        eprintln!("vm: === kernel {k}");
        let (base, append) = variant(k)?;
        let kernel = kernel::fetch(base, &cache, root)?;
        let payload = initramfs::Payload {
            chaos,
            tests: &exes,
            test_args: &[],
            cmd: Some(format!("/tests/{short} {args}")),
            expect: None,
        };
        let b = boot(root, base, &kernel, &payload, append, false)?;
        if b.status != 0 {
            bail!("{} failed in the VM on kernel {k}", exe.display());
        }
    }
    Ok(())
}

/// Builds the initramfs for `kernel` and boots it.
fn boot(
    root: &Path,
    short: &str,
    kernel: &kernel::Kernel,
    payload: &initramfs::Payload<'_>,
    append: &str,
    quiet: bool,
) -> Result<qemu::Boot> {
    let initrd = root
        .join("target/vm")
        .join(format!("initramfs-{short}.cpio.gz"));
    std::fs::create_dir_all(initrd.parent().context("parent")?)?;
    initramfs::build(kernel, payload, &initrd)?;
    qemu::boot(
        &kernel.vmlinuz,
        &initrd,
        Duration::from_secs(40 * 60),
        &format!("{} {append}", kernel.cmdline),
        quiet,
    )
}

/// Without the BPF LSM: Debian's default LSM list minus `bpf`, so that syscall faults must fall
/// back to fmod_ret.
pub const NO_BPF_LSM: &str = "lsm=lockdown,capability,landlock,yama,apparmor";

/// A kernel name with an optional boot variant: `6.12+nolsm` boots 6.12 with `NO_BPF_LSM`.
fn variant(k: &str) -> Result<(&str, &'static str)> {
    match k.split_once('+') {
        None => Ok((k, "")),
        Some((base, "nolsm")) => Ok((base, NO_BPF_LSM)),
        Some((_, v)) => bail!("unknown kernel variant +{v}; the only one is +nolsm"),
    }
}

/// `--kernel all` or a list of short names.
pub fn kernels(arg: &str) -> Vec<String> {
    if arg == "all" {
        return kernel::MATRIX
            .iter()
            .map(|(s, _, _)| s.to_string())
            .collect();
    }
    arg.split(',').map(str::to_string).collect()
}
