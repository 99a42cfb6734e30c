//! Debian kernels for the VM matrix: resolve the meta package, download with apt (an apt
//! configuration of our own for suites the system does not list), extract, run depmod.

use anyhow::{Context, Result, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// A kernel ready to boot: its vmlinuz and an extracted tree with lib/modules/RELEASE.
pub struct Kernel {
    pub name: String,
    pub vmlinuz: PathBuf,
    pub root: PathBuf,
    pub release: String,
    /// Kernel command line the kernel itself needs (before any variant's).
    pub cmdline: &'static str,
}

/// (short name, meta package, extra suite needed to find it)
pub const MATRIX: &[(&str, &str, Option<&str>)] = &[
    ("6.1", "linux-image-cloud-amd64", None),
    ("6.12", "linux-image-6.12-cloud-amd64", None),
    ("7.3", "linux-image-cloud-amd64", Some("trixie-backports")),
];

/// apt options: the system's configuration, or one of our own that lists `suite` from the
/// same mirror as the system's main archive (read from the system's sources at run time).
fn apt_options(cache: &Path, suite: Option<&str>) -> Result<Vec<String>> {
    let Some(suite) = suite else {
        return Ok(Vec::new());
    };
    let dir = cache.join(format!("apt-{suite}"));
    let list = dir.join("sources.list");
    let opts = vec![
        format!("-o=Dir::Etc::SourceList={}", list.display()),
        "-o=Dir::Etc::SourceParts=/nonexistent".to_string(),
        format!("-o=Dir::State::Lists={}", dir.join("lists").display()),
        format!("-o=Dir::Cache={}", dir.join("cache").display()),
    ];
    if !dir.join("lists").join("lock").exists() {
        fs::create_dir_all(dir.join("lists/partial"))?;
        fs::create_dir_all(dir.join("cache/archives/partial"))?;
        let uri = system_mirror()?;
        fs::write(
            &list,
            format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {uri} {suite} main\n"
            ),
        )?;
        run(Command::new("apt-get").args(&opts).arg("update").arg("-q"))?;
    }
    Ok(opts)
}

/// The URI of the system's main Debian archive (deb822 or one-line sources).
fn system_mirror() -> Result<String> {
    let mut texts = Vec::new();
    for p in [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ] {
        texts.push(fs::read_to_string(p).unwrap_or_default());
    }
    for t in &texts {
        for stanza in t.split("\n\n") {
            let uri = stanza
                .lines()
                .find_map(|l| l.strip_prefix("URIs:"))
                .map(str::trim);
            let main = stanza
                .lines()
                .any(|l| l.starts_with("Suites:") && !l.contains("security"));
            if let (Some(uri), true) = (uri, main) {
                return Ok(uri.split_whitespace().next().unwrap_or(uri).to_string());
            }
        }
        let one_line = t
            .lines()
            .find(|l| l.starts_with("deb ") && !l.contains("security"));
        if let Some(uri) = one_line.and_then(|l| l.split_whitespace().find(|w| w.contains("://"))) {
            return Ok(uri.to_string());
        }
    }
    bail!("no Debian archive found in /etc/apt sources")
}

pub(super) fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The versioned image package a meta package points to.
fn resolve(meta: &str, opts: &[String], suite: Option<&str>) -> Result<String> {
    let target = suite.map_or(meta.to_string(), |s| format!("{meta}/{s}"));
    let text = run(Command::new("apt-cache")
        .args(opts)
        .args(["depends", "--important", &target]))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|d| d.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|d| d.starts_with("linux-image-"))
        .map(str::to_string)
        .with_context(|| format!("{target} depends on no linux-image package:\n{text}"))
}

pub(super) fn download(pkg: &str, opts: &[String], debs: &Path) -> Result<PathBuf> {
    let find = || -> Option<PathBuf> {
        let prefix = format!("{}_", pkg.replace('+', "%2b"));
        fs::read_dir(debs)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                n.starts_with(&format!("{pkg}_")) || n.starts_with(&prefix)
            })
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    fs::create_dir_all(debs)?;
    eprintln!("vm: apt-get download {pkg}");
    run(Command::new("apt-get")
        .args(opts)
        .args(["download", "-q", pkg])
        .current_dir(debs))?;
    find().with_context(|| format!("{pkg} downloaded but not found in {}", debs.display()))
}

pub fn fetch(short: &str, cache: &Path, root: &Path) -> Result<Kernel> {
    if super::build::BUILT.iter().any(|b| b.short == short) {
        return super::build::build(short, cache, &root.join("xtask"));
    }
    let &(_, meta, suite) = MATRIX
        .iter()
        .find(|(s, _, _)| *s == short)
        .with_context(|| {
            format!("unknown kernel {short}; use one of 6.1, 6.12, 7.3, 6.12-kprobe, all")
        })?;
    let opts = apt_options(cache, suite)?;
    let pkg = resolve(meta, &opts, suite)?;
    let root = cache.join("k").join(&pkg);
    if !root.join(".done").exists() {
        let debs = cache.join("debs");
        let deb = download(&pkg, &opts, &debs)?;
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root)?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        if find_vmlinuz(&root).is_none() {
            // Split packaging (trixie-backports): the image is a stub depending on the parts.
            let deps = run(Command::new("dpkg-deb")
                .args(["-f"])
                .arg(&deb)
                .arg("Depends"))?;
            for part in deps.split(',').filter_map(|d| d.split_whitespace().next()) {
                if ["linux-binary-", "linux-modules-", "linux-base-"]
                    .iter()
                    .any(|p| part.starts_with(p))
                {
                    let d = download(part, &opts, &debs)?;
                    run(Command::new("dpkg-deb").arg("-x").arg(&d).arg(&root))?;
                }
            }
        }
        // Newer kernels ship usr/lib/modules; depmod and modprobe -d look in lib/modules.
        if !root.join("lib").exists() {
            std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
        }
        let release = release_in(&root.join("lib/modules"))?;
        run(Command::new("depmod").arg("-b").arg(&root).arg(&release))?;
        fs::write(root.join(".done"), "")?;
    }
    let release = release_in(&root.join("lib/modules"))?;
    let vmlinuz = find_vmlinuz(&root).with_context(|| format!("no vmlinuz in {pkg}"))?;
    Ok(Kernel {
        name: pkg,
        vmlinuz,
        root,
        release,
        cmdline: "",
    })
}

fn release_in(modules: &Path) -> Result<String> {
    let e = fs::read_dir(modules)?
        .flatten()
        .next()
        .context("empty lib/modules")?;
    Ok(e.file_name().to_string_lossy().into_owned())
}

fn find_vmlinuz(root: &Path) -> Option<PathBuf> {
    let in_boot = fs::read_dir(root.join("boot")).ok().and_then(|d| {
        d.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
        })
    });
    // Split packaging (trixie-backports) keeps it next to the modules.
    in_boot.or_else(|| {
        let release = fs::read_dir(root.join("usr/lib/modules"))
            .ok()?
            .flatten()
            .next()?
            .path();
        Some(release.join("vmlinuz")).filter(|p| p.exists())
    })
}
