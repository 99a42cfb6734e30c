//! The guest's initramfs: busybox, the binaries under test with their libraries, the tools the
//! tests drive (iproute2, bpftool, ping, nsenter, ethtool, curl, python3), kernel modules, and an init script
//! that mounts what chaos needs, runs the tests and prints a status marker.

use super::kernel::Kernel;
use crate::rootfs::{put, put_with_libs};
use anyhow::{Context, Result, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// Modules the tests need (and their dependencies): veth pairs, qdiscs, cls_bpf, ifb, and
/// mirred (ingress delay over cls_bpf).
const MODULES: &[&str] = &[
    "veth",
    "sch_fq",
    "sch_netem",
    "sch_ingress",
    "cls_bpf",
    "act_bpf",
    "act_mirred",
    "ifb",
];
/// Host tools the tests run inside the guest.
const TOOLS: &[&str] = &[
    "/usr/sbin/ip",
    "/usr/sbin/tc",
    "/usr/sbin/bpftool",
    "/usr/bin/ping",
    "/usr/bin/nsenter",
    "/usr/sbin/ethtool",
    "/usr/bin/dash",
    // A terminal for the colour test (util-linux's script).
    "/usr/bin/script",
    // The agent test's HTTP client.
    "/usr/bin/curl",
    // The DNS tests' resolver, and the private mount namespace their clients resolve in.
    "/usr/sbin/dnsmasq",
    "/usr/bin/unshare",
    "/usr/bin/getent",
];
/// Parts of Python's standard library the test clients never import.
const PY_SKIP: &[&str] = &[
    "test",
    "idlelib",
    "tkinter",
    "ensurepip",
    "lib2to3",
    "turtledemo",
    "pydoc_data",
    "config-3.11-x86_64-linux-gnu",
];

pub const STATUS_MARKER: &str = "CHAOS_VM_STATUS=";

pub struct Payload<'a> {
    pub chaos: &'a Path,
    /// Test executables, run one after the other.
    pub tests: &'a [PathBuf],
    /// Arguments for every test executable (a name filter, --nocapture, ...).
    pub test_args: &'a [String],
    /// A shell command to run instead of the tests (debugging a kernel, doctor reports).
    pub cmd: Option<String>,
    /// The run in tests/expect.toml the tests are held to (the guest's CHAOS_EXPECT).
    pub expect: Option<String>,
}

/// The stdout of a command that must succeed.
fn output(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

fn put_python(root: &Path) -> Result<()> {
    put_with_libs(
        root,
        Path::new("/usr/bin/python3.11"),
        Path::new("/usr/bin/python3"),
    )?;
    let lib = Path::new("/usr/lib/python3.11");
    for entry in walk(lib)? {
        let rel = entry.strip_prefix(lib)?;
        if rel
            .components()
            .next()
            .is_some_and(|c| PY_SKIP.contains(&c.as_os_str().to_string_lossy().as_ref()))
        {
            continue;
        }
        if entry.extension().is_some_and(|e| e == "so") {
            put_with_libs(root, &entry, &entry)?;
        } else {
            put(root, &entry, &entry)?;
        }
    }
    // Debian's pure-Python packages the tests read with: junitparser (`chaos run --junit`) and
    // future, which it imports.
    for pkg in ["junitparser", "future"] {
        let dir = Path::new("/usr/lib/python3/dist-packages").join(pkg);
        if dir.is_dir() {
            for entry in walk(&dir)? {
                put(root, &entry, &entry)?;
            }
        }
    }
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)?.flatten() {
        let (p, t) = (e.path(), e.file_type()?);
        if t.is_dir() {
            out.extend(walk(&p)?);
        } else if t.is_file() {
            out.push(p);
        }
    }
    Ok(out)
}

/// Decompressed modules in load order (dependencies first).
fn put_modules(root: &Path, k: &Kernel) -> Result<Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    for m in MODULES {
        let deps = Command::new("modprobe")
            .arg("-d")
            .arg(&k.root)
            .args(["-S", &k.release, "--show-depends", m])
            .output()?;
        if !deps.status.success() {
            // Built in is fine; absent from a kernel with modules is not: the tests that need
            // it would find the feature missing.
            let dir = k.root.join("lib/modules").join(&k.release);
            let builtin = fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
            let has_modules = dir.join("modules.dep").exists();
            if has_modules && !builtin.lines().any(|l| l.ends_with(&format!("/{m}.ko"))) {
                bail!("module {m} is neither in {} nor built into it", k.name);
            }
            eprintln!("vm: module {m} built into {}", k.name);
            continue;
        }
        for line in String::from_utf8_lossy(&deps.stdout).lines() {
            let Some(ko) = line
                .strip_prefix("insmod ")
                .map(|l| l.split_whitespace().next().unwrap_or(l))
            else {
                continue;
            };
            let ko = Path::new(ko);
            let base = ko
                .file_name()
                .context("module name")?
                .to_string_lossy()
                .into_owned();
            let name = base
                .trim_end_matches(".xz")
                .trim_end_matches(".zst")
                .trim_end_matches(".gz")
                .to_string();
            if order.contains(&name) {
                continue;
            }
            let unpack = |tool: &str, flag: &str| output(Command::new(tool).arg(flag).arg(ko));
            let data = match ko.extension().and_then(|e| e.to_str()) {
                Some("xz") => unpack("xz", "-dc")?,
                Some("zst") => unpack("zstd", "-qdc")?,
                Some("gz") => unpack("gzip", "-dc")?,
                _ => fs::read(ko)?,
            };
            if data.is_empty() {
                bail!("module {} unpacked to nothing", ko.display());
            }
            fs::create_dir_all(root.join("lib/modules"))?;
            fs::write(root.join("lib/modules").join(&name), data)?;
            order.push(name);
        }
    }
    Ok(order)
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CHAOS_BIN=/usr/bin/chaos RUST_BACKTRACE=1
export CHAOS_EXAMPLES=/examples
export CHAOS_SKIP_LOG=/tmp/skipped.log
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run; mkdir -p /run/netns /dev/pts
mount -t devpts devpts /dev/pts
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
fail() { echo "vm: FAILED: $*"; echo "CHAOS_VM_STATUS=1"; sync; poweroff -f; }
while read -r m; do
  [ -n "$m" ] || continue
  # A module the tests need that does not load fails the guest here, by name, rather than
  # letting the tests that need it find the feature missing.
  err=$(insmod "/lib/modules/$m" 2>&1) || fail "module $m did not load: $err"
done < /etc/modules.order
[ -s /etc/expect ] && export CHAOS_EXPECT="$(cat /etc/expect)"
ip link set lo up
echo "vm: kernel $(uname -r), lsm $(cat /sys/kernel/security/lsm 2>/dev/null), booted in $(cut -d' ' -f1 /proc/uptime)s"
echo "CHAOS_DOCTOR=$(chaos doctor --json 2>&1 | tr -d '\n')"
status=0
if [ -s /etc/vm.cmd ]; then sh /etc/vm.cmd </dev/null || status=1; fi
[ -s /etc/vm.cmd ] || for t in /tests/*; do
  echo "vm: running $(basename "$t")"
  "$t" $(cat /etc/test.args) </dev/null || status=1
done
# CHAOS_SKIPPED lines: the runner counts them (xtask/src/tally.rs).
[ -s /tmp/skipped.log ] && { echo "vm: skipped tests:"; sed 's/^/CHAOS_/' /tmp/skipped.log; }
echo "CHAOS_VM_STATUS=$status"
sync; poweroff -f
"#;

/// Builds the initramfs for `k` at `out` (gzip'd newc cpio).
pub fn build(k: &Kernel, p: &Payload<'_>, out: &Path) -> Result<()> {
    let root = out.with_extension("root");
    let _ = fs::remove_dir_all(&root);
    for d in [
        "bin", "dev", "proc", "sys", "tmp", "run", "root", "etc", "tests", "usr/bin", "usr/sbin",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    put(&root, Path::new("/bin/busybox"), Path::new("/bin/busybox"))?;
    for t in TOOLS {
        put_with_libs(&root, Path::new(t), Path::new(t))?;
    }
    // dash as /bin/sh: busybox's ash would run its own ip/tc applets instead of iproute2's.
    std::os::unix::fs::symlink("/usr/bin/dash", root.join("bin/sh"))?;
    put_python(&root)?;
    put_with_libs(&root, p.chaos, Path::new("/usr/bin/chaos"))?;
    let mut ours = vec![root.join("usr/bin/chaos")];
    for t in p.tests {
        let name = t.file_name().context("test name")?.to_string_lossy();
        // cargo names test binaries NAME-HASH; the hash says nothing in the guest.
        let short = name.rsplit_once('-').map_or(name.as_ref(), |(n, _)| n);
        put_with_libs(&root, t, &Path::new("/tests").join(short))?;
        ours.push(root.join("tests").join(short));
    }
    // Debug info is most of a debug build's size; unpacked, it would not fit the guest's RAM.
    // Symbols stay, so backtraces still name functions.
    output(Command::new("strip").arg("--strip-debug").args(&ours))?;
    // The example experiments, at /examples ($CHAOS_EXAMPLES for the tests): their source path
    // may be under /tmp, which the guest mounts over.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for f in fs::read_dir(&examples).with_context(|| format!("{}", examples.display()))? {
        let f = f?.path();
        put(
            &root,
            &f,
            &Path::new("/examples").join(f.file_name().context("name")?),
        )?;
    }
    let order = put_modules(&root, k)?;
    fs::write(root.join("etc/modules.order"), order.join("\n") + "\n")?;
    fs::write(root.join("etc/test.args"), p.test_args.join(" "))?;
    fs::write(
        root.join("etc/expect"),
        p.expect.as_deref().unwrap_or_default(),
    )?;
    fs::write(
        root.join("etc/vm.cmd"),
        p.cmd.as_deref().unwrap_or_default(),
    )?;
    fs::write(root.join("init"), INIT)?;
    output(Command::new("chmod").arg("+x").arg(root.join("init")))?;
    let cpio = format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        out.display()
    );
    output(Command::new("sh").args(["-c", &cpio]))?;
    fs::remove_dir_all(&root)?;
    Ok(())
}
