//! Project tasks: `cargo xtask setup|demo|install|test|vm|bench|soak`. Every task that builds runs the
//! idempotent set-up first, so a fresh machine needs nothing else.

mod child;
mod expect;
mod image;
mod install;
mod rootfs;
mod tally;
mod test;
mod vm;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install prerequisites (apt packages, rust-src, bpf-linker); seconds when present.
    Setup,
    /// Set up, build (release) and run `chaos demo`.
    Demo,
    /// Set up, build (release) and install chaos with its shell completions and man page.
    Install(install::InstallArgs),
    /// Build the agent's container image (docker-archive tarball, chaos.local/chaos:latest) for
    /// `ctr -n k8s.io images import` or `docker load`: chaos, tc, ip, mount and their libraries.
    Image(image::ImageArgs),
    /// Set up, build, and run every test: unit tests, the privileged integration tests on this
    /// kernel, then the same tests in a VM with Debian's 6.12 kernel (and the syscall tests on
    /// 6.12 without BPF LSM and on a 6.12 built with kprobe override, ingress delay on 6.1).
    Test {
        /// Skip the VM run (host tests only).
        #[arg(long)]
        no_vm: bool,
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the privileged tests inside VMs booting Debian kernels (qemu; TCG unless
    /// CHAOS_VM_ACCEL=kvm). Arguments after `--` go to every test executable (e.g. a filter).
    Vm {
        /// 6.1, 6.12, 7.3 (Debian's), 6.12+nolsm (booted without BPF LSM), 6.12-kprobe (built
        /// here with kprobe override), a comma-separated list, or all (the Debian ones).
        #[arg(long, default_value = "6.12")]
        kernel: String,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run `chaos doctor` here and in a VM for every kernel of the matrix; write the tables
    /// into docs/kernels.md.
    DoctorMatrix,
    /// Build a kernel of the VM matrix that is built from source (6.12-kprobe), if not cached.
    #[command(hide = true)]
    BuildKernel { kernel: String },
    /// SIGKILL chaos at N random moments across the fault kinds this kernel runs; after each,
    /// `chaos cleanup` must leave nothing (a benchmark-style run, not a test: see tests/src/bin/soak.rs).
    Soak {
        /// How many kills.
        #[arg(default_value = "100")]
        kills: u32,
        /// Run it inside VMs with these kernels (as for `vm --kernel`): fq delay and ifb
        /// ingress delay need a kernel with fq.
        #[arg(long)]
        kernel: Option<String>,
    },
    /// Benchmarks (not tests): `lifecycle` measures time to first drop and to detach.
    Bench {
        #[arg(default_value = "lifecycle")]
        what: String,
        /// Runs per configuration.
        #[arg(long, default_value = "10")]
        runs: u32,
        /// Run the benchmark inside VMs with these kernels (as for `vm --kernel`) instead of
        /// on this machine: for the backends this kernel refuses. The guests are emulated, so
        /// only ratios measured in one guest mean anything.
        #[arg(long)]
        kernel: Option<String>,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn setup() -> Result<()> {
    run(Command::new("bash").arg(root().join("scripts/setup.sh")))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup(),
        Task::Demo => {
            setup()?;
            run(cargo().args(["build", "--release", "-p", "chaos-user", "--bin", "chaos"]))?;
            run(Command::new(root().join("target/release/chaos")).arg("demo"))
        }
        Task::Install(a) => install::install(a),
        Task::Image(a) => image::image(a),
        Task::Test { no_vm, args } => test::test(no_vm, &args),
        Task::Vm { kernel, args } => {
            setup()?;
            run(cargo().args(["build", "-p", "chaos-user", "--bin", "chaos"]))?;
            let t = vm::run(&root(), &vm::kernels(&kernel), &args)?;
            println!("total: {} passed, {} failed", t.passed, t.failed);
            if t.passed + t.failed == 0 && std::env::var_os("CHAOS_VM_CMD").is_none() {
                // Filters match test names, not file names: a typo must not look like a pass.
                bail!("no test matched {args:?} (filters are substrings of test names)");
            }
            Ok(())
        }
        Task::BuildKernel { kernel } => vm::build_kernel(&root(), &kernel),
        Task::DoctorMatrix => {
            setup()?;
            run(cargo().args(["build", "-p", "chaos-user", "--bin", "chaos"]))?;
            vm::matrix::run(&root())
        }
        Task::Bench { what, runs, kernel } => {
            release_program(&format!("bench-{what}"), runs, kernel)
        }
        Task::Soak { kills, kernel } => release_program("soak", kills, kernel),
    }
}

/// Builds `bin` of the tests package in release and runs it with `arg` here, or in guests of
/// `kernel`.
fn release_program(bin: &str, arg: u32, kernel: Option<String>) -> Result<()> {
    setup()?;
    run(cargo().args(["build", "--release", "-p", "chaos-user", "--bin", "chaos"]))?;
    if let Some(k) = kernel {
        run(cargo().args(["build", "--release", "-p", "chaos-tests", "--bin", bin]))?;
        let release = root().join("target/release");
        return vm::run_program(
            &root(),
            &vm::kernels(&k),
            &release.join("chaos"),
            &release.join(bin),
            &arg.to_string(),
        );
    }
    run(cargo()
        .args(["run", "--release", "-p", "chaos-tests", "--bin", bin, "--"])
        .arg(arg.to_string())
        .env("CHAOS_BIN", root().join("target/release/chaos")))
}
