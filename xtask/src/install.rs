//! `cargo xtask install [--prefix P]`: the release binary, its shell completions and its man
//! page, all generated from the binary's own clap definitions (`chaos completions`, `chaos man`),
//! where bash, zsh, fish and man look for them under the prefix.

use crate::{cargo, root, run, setup};
use anyhow::{Context, Result, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

#[derive(clap::Args)]
pub struct InstallArgs {
    /// Where to install: PREFIX/bin/chaos, PREFIX/share/{bash-completion,zsh,fish,man}/...
    #[arg(long, default_value = "/usr/local")]
    prefix: PathBuf,
}

/// (file under the prefix, the chaos arguments that print it)
const GENERATED: &[(&str, &[&str])] = &[
    (
        "share/bash-completion/completions/chaos",
        &["completions", "bash"],
    ),
    ("share/zsh/site-functions/_chaos", &["completions", "zsh"]),
    (
        "share/fish/vendor_completions.d/chaos.fish",
        &["completions", "fish"],
    ),
    ("share/man/man1/chaos.1", &["man"]),
];

pub fn install(a: InstallArgs) -> Result<()> {
    setup()?;
    run(cargo().args(["build", "--release", "-p", "chaos-user", "--bin", "chaos"]))?;
    let built = root().join("target/release/chaos");
    let bin = a.prefix.join("bin/chaos");
    put(&bin, &fs::read(&built).context("reading the built chaos")?)?;
    fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    for (file, args) in GENERATED {
        let out = Command::new(&built).args(*args).output()?;
        if !out.status.success() || out.stdout.is_empty() {
            bail!(
                "chaos {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        put(&a.prefix.join(file), &out.stdout)?;
    }
    eprintln!(
        "xtask: installed {} and its completions and man page under {}",
        bin.display(),
        a.prefix.display()
    );
    Ok(())
}

fn put(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}
