//! A kernel built in the background while the host suite and the other guests run: the build
//! takes 23 minutes on two idle cores (28–31 beside the tests), and a TCG guest keeps only one of them busy. Niced so
//! that the tests, whose timings matter, always come first.

use anyhow::{Context, Result, bail};
use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Instant,
};

pub struct Prebuild {
    child: Option<Child>,
    log: PathBuf,
    short: String,
}

impl Prebuild {
    /// Starts building `short` unless it is not a built kernel or is built already.
    pub fn start(root: &Path, short: &str) -> Result<Prebuild> {
        let log = root.join(format!("target/vm/build-{short}.log"));
        let mut p = Prebuild {
            child: None,
            log,
            short: short.to_string(),
        };
        if !super::build::needs_build(short, &super::cache_dir(), &root.join("xtask")) {
            return Ok(p);
        }
        fs::create_dir_all(p.log.parent().context("log dir")?)?;
        let out = fs::File::create(&p.log)?;
        let mut cmd = Command::new("nice");
        // SIGTERM when the runner goes, which kills the build's whole group (build_kernel).
        let child = crate::child::dies_with_parent(&mut cmd, libc::SIGTERM)
            .args(["-n", "19"])
            .arg(std::env::current_exe()?)
            .args(["build-kernel", short])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Its own process group, so that dropping the handle stops make's children too.
            .process_group(0)
            .spawn()
            .context("starting the background kernel build")?;
        eprintln!(
            "vm: building {short} in the background (nice 19), log {}",
            p.log.display()
        );
        p.child = Some(child);
        Ok(p)
    }

    /// Waits for the build to finish; its log is printed when it failed.
    pub fn wait(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let status = child.wait()?;
        eprintln!(
            "vm: waited {:.0} s for the background build of {}",
            started.elapsed().as_secs_f64(),
            self.short
        );
        if !status.success() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            bail!("building {} failed ({status}):\n{log}", self.short);
        }
        Ok(())
    }
}

impl Drop for Prebuild {
    /// Not waited for (an earlier run failed): stop the whole build.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }
}
