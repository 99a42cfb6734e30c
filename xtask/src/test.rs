//! `cargo xtask test`: unit and privileged tests on this kernel, then the guests of the VM
//! matrix, each run held to tests/expect.toml, and one closing line on every path:
//! `total: N passed, M failed, K skipped`.

use crate::{cargo, expect, root, run, setup, tally::Tally, vm};
use anyhow::{Result, bail};

/// The runs so far: their counts, and what failed.
#[derive(Default)]
struct Report {
    total: Tally,
    /// Runs that failed, each with why.
    failed: Vec<String>,
    /// Tests a run must see pass that skipped or did not run; each counts as a failure.
    missing: Vec<String>,
}

impl Report {
    /// Adds a run's counts; checks its must-run list when the run was not filtered by hand.
    fn add(&mut self, name: &str, tally: Tally, ok: bool, must: Option<&[String]>) {
        if let Some(must) = must {
            for m in tally.missing(must) {
                self.missing.push(format!("{name}: {m}"));
            }
        }
        if !ok {
            self.failed.push(name.to_string());
        }
        self.total.add(tally);
    }

    /// The closing lines: skips by reason, must-run misses, then the total.
    fn print(&self) {
        let mut by_reason = std::collections::BTreeMap::<&str, Vec<&str>>::new();
        for (test, why) in &self.total.skipped {
            by_reason.entry(why).or_default().push(test);
        }
        for (why, tests) in by_reason {
            eprintln!(
                "xtask: skipped ({}): {why}: {}",
                tests.len(),
                tests.join(", ")
            );
        }
        for m in &self.missing {
            eprintln!("xtask: FAILED: must run: {m}");
        }
        if self.total.crashed > 0 {
            eprintln!(
                "xtask: {} test binaries or guests ended without their results (counted as failed)",
                self.total.crashed
            );
        }
        println!(
            "total: {} passed, {} failed, {} skipped",
            self.total.passed_not_skipped(),
            self.total.failed + self.missing.len() as u64,
            self.total.skipped.len()
        );
    }
}

pub fn test(no_vm: bool, args: &[String]) -> Result<()> {
    let mut report = Report::default();
    if let Err(e) = run_all(no_vm, args, &mut report) {
        report.failed.push(format!("the runner itself ({e:#})"));
    }
    report.print();
    if !report.failed.is_empty() || !report.missing.is_empty() {
        let mut what = report.failed.clone();
        if !report.missing.is_empty() {
            what.push(format!("{} must-run tests", report.missing.len()));
        }
        bail!("tests failed: {}", what.join(", "));
    }
    Ok(())
}

fn run_all(no_vm: bool, args: &[String], report: &mut Report) -> Result<()> {
    setup()?;
    run(cargo().args(["build", "-p", "chaos-user", "--bin", "chaos"]))?;
    let runs = expect::load(&root())?;
    // A name filter or cargo options: the must-run lists cannot hold, and the guests are not run.
    let whole = args.is_empty();
    let vm_runs = !no_vm && whole;
    // The kprobe kernel (about 25 minutes to build) is built while the host suite and the other
    // guests run.
    let mut kprobe_build = if vm_runs {
        Some(vm::Prebuild::start(&root(), "6.12-kprobe")?)
    } else {
        None
    };
    let skips = root().join("target/test-skips.log");
    let _ = std::fs::remove_file(&skips);
    let host = std::env::var("CHAOS_EXPECT").unwrap_or_else(|_| expect::HOST.to_string());
    let (mut tally, ok) = crate::tally::run_counting(
        cargo()
            .current_dir(root())
            // Every binary runs whatever failed before it.
            .args([
                "test",
                "--workspace",
                "--exclude",
                "chaos-ebpf",
                "--no-fail-fast",
            ])
            .args(args)
            .env("CHAOS_BIN", root().join("target/debug/chaos"))
            // For the tests that build the agent's image (`xtask image`).
            .env("CHAOS_XTASK", std::env::current_exe()?)
            .env("CHAOS_SKIP_LOG", &skips)
            .env("CHAOS_EXPECT", &host),
    )?;
    for line in std::fs::read_to_string(&skips).unwrap_or_default().lines() {
        tally.add_skip(line);
    }
    if tally.passed + tally.failed == 0 {
        report.failed.push("host (ran no test)".into());
    }
    let must = runs.get(&host).filter(|_| whole).map(|r| &r.must_run[..]);
    report.add("host", tally, ok, must);
    if no_vm {
        eprintln!("xtask: --no-vm: the VM suite was not run");
        return Ok(());
    }
    if !vm_runs {
        eprintln!("xtask: cargo test options given: VM suite not run (use cargo xtask vm)");
        return Ok(());
    }
    let tests = vm::test_executables(&root())?;
    // Every guest goes ahead when an earlier one failed: one report for all.
    for &kernel in expect::GUESTS {
        let Some(spec) = runs.get(kernel) else {
            bail!("tests/expect.toml has no run {kernel}");
        };
        if kernel == "6.12-kprobe"
            && let Some(build) = kprobe_build.take()
            && let Err(e) = build.wait()
        {
            report
                .failed
                .push(format!("VM {kernel} (kernel build: {e:#})"));
            continue;
        }
        match vm::run_guest(&root(), kernel, &tests, &spec.filters) {
            Ok(g) => {
                if g.tally.passed + g.tally.failed == 0 {
                    report.failed.push(format!("VM {kernel} (ran no test)"));
                }
                report.add(
                    &format!("VM {kernel}"),
                    g.tally,
                    g.passed,
                    Some(&spec.must_run),
                );
            }
            Err(e) => report.failed.push(format!("VM {kernel} ({e:#})")),
        }
    }
    Ok(())
}
