//! `chaos`: kernel-level fault injection with eBPF. See `chaos --help`.

mod common;
mod demo;
mod doctor;
mod lifecycle;
mod net;
mod net_rules;
mod run;
mod syscall;
mod workload;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Inject faults from inside the Linux kernel with eBPF: packet drops on an interface, failing
/// syscalls in a cgroup. Every fault has a duration, is enforced in the kernel, and is detached
/// when it ends or when chaos exits (TCX and cgroup links vanish with the process, even on
/// SIGKILL).
#[derive(Debug, Parser)]
#[command(name = "chaos", version, propagate_version = true)]
pub struct Cli {
    /// Machine-readable output: one JSON object per line.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Packet faults on a network interface (TC classifier).
    #[command(subcommand)]
    Net(net::NetCommand),
    /// Make syscalls of processes in a cgroup (or of one process) fail with a chosen errno.
    Syscall(syscall::SyscallArgs),
    /// Run an experiment: steady-state probes, faults in phases, abort conditions, report.
    Run(run::RunArgs),
    /// List faults that outlive a command: background ones (active or expired, with counters)
    /// and leftovers of a crashed chaos.
    Status,
    /// Stop a background fault (or ask a foreground one to stop), or all of them.
    Stop(lifecycle::StopArgs),
    /// Switch a background dry run to live (one map update, nothing reattached).
    Live(lifecycle::LiveArgs),
    /// Remove everything chaos attached that outlived its command, including a crash's leftovers.
    Cleanup,
    /// Show what this kernel supports and which faults are available here.
    Doctor(doctor::DoctorArgs),
    /// Build a sandbox, break it, show what the workload saw, and clean it all up.
    Demo(demo::DemoArgs),
    #[command(hide = true, name = "demo-client")]
    DemoClient(workload::ClientArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return common::clap_exit(e),
    };
    common::init_logging();
    // An experiment probes on worker threads while the main thread attaches faults.
    let rt = match cli.command {
        Command::Run(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            let e = chaos::Error::io("starting the runtime", e);
            return common::fail(&e, e.exit_code());
        }
    };
    let json = cli.json;
    // `chaos run` keeps 1 for "the hypothesis did not hold": any error there is 2 (README,
    // "Exit status").
    let is_run = matches!(cli.command, Command::Run(_));
    let result = rt.block_on(async move {
        match cli.command {
            Command::Net(cmd) => net::run(cmd, json).await,
            Command::Syscall(cmd) => syscall::run(cmd, json).await,
            Command::Run(args) => run::run(args, json).await,
            Command::Doctor(args) => doctor::run(args, json),
            Command::Status => lifecycle::status(json),
            Command::Stop(args) => lifecycle::stop(args),
            Command::Live(args) => lifecycle::live(args),
            Command::Cleanup => lifecycle::cleanup(),
            Command::Demo(args) => demo::run(args).await,
            Command::DemoClient(args) => demo::client(args),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) if is_run => common::fail(&e, 2),
        Err(e) => common::fail(&e, e.exit_code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
