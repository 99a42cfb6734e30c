//! `chaos`: kernel-level fault injection with eBPF. See `chaos --help`.

mod agent;
mod choices;
mod common;
mod demo;
mod doctor;
mod generated;
mod kill;
mod lifecycle;
mod metrics_server;
mod net;
mod net_rules;
mod pods;
mod remote;
mod run;
mod schedule;
mod stress;
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

    /// Log lines on stderr as text (default) or as one JSON object per line (for log
    /// collectors: the agent's DaemonSet pods). The level comes from CHAOS_LOG (default warn).
    #[arg(long, global = true, value_enum, default_value_t = common::LogFormat::Text)]
    log_format: common::LogFormat,

    #[command(flatten)]
    remote: remote::RemoteArgs,

    #[command(subcommand)]
    command: Command,
}

/// `defer` (here and on every subcommand enum): a subcommand's arguments are built only when it
/// is the one given. Building all of them took 2 ms of every start.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum Command {
    /// Packet faults on a network interface (TC classifier).
    #[command(subcommand)]
    Net(net::NetCommand),
    /// Make syscalls of processes in a cgroup (or of one process) fail with a chosen errno.
    Syscall(syscall::SyscallArgs),
    /// Serve this node's faults over HTTP (bearer token, /v1/faults, /metrics) until SIGTERM,
    /// which detaches every fault.
    Agent(agent::AgentArgs),
    /// Kill a target's processes (a container's init process), once or --every D for
    /// --duration D, and report whether the runtime ran the container again.
    Kill(kill::KillArgs),
    /// CPU or memory stress: worker processes in a target's cgroups (its limits and OOM
    /// killer act on them) for --duration; the summary says what they used and whether the
    /// OOM killer took them.
    #[command(subcommand)]
    Stress(stress::StressCommand),
    #[command(hide = true, name = "stress-worker")]
    StressWorker(stress::WorkerArgs),
    /// Show what a Kubernetes target (--pod, --selector) resolves to on this node: pods,
    /// containers, pids, cgroups, network namespaces and interfaces, and which --mode picks.
    Targets(pods::TargetsArgs),
    /// Run an experiment: steady-state probes, faults in phases, abort conditions, report.
    Run(run::RunArgs),
    /// Run an experiment on the calendar of its schedule: block, or show its next ticks.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// List every fault: running foreground ones (with their chaos's pid), background ones
    /// (active or expired, with counters) and leftovers of a crashed chaos.
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
    /// Print the shell completion script (bash, zsh, fish, ...).
    Completions(generated::CompletionsArgs),
    /// Print the man page, chaos(1), in roff.
    Man,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return common::clap_exit(e),
    };
    // A stress worker is a plain process: no runtime, no logging set-up.
    if let Command::StressWorker(a) = &cli.command {
        return stress::worker(a);
    }
    // A fault command run here: a stop signal while it starts exits at once (nothing it holds
    // outlives it yet), instead of at the next step, which can be a verifier's walk away.
    let local_fault = matches!(cli.command, Command::Net(_) | Command::Syscall(_));
    if local_fault
        && cli.remote.agent.is_none()
        && let Err(e) = chaos::startup::exit_at_once_on_stop()
    {
        return common::fail(&e, e.exit_code());
    }
    common::init_logging(cli.log_format);
    // An experiment probes on worker threads while the main thread attaches faults.
    let rt = match cli.command {
        Command::Run(_) | Command::Schedule(_) => tokio::runtime::Builder::new_multi_thread()
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
        let remote = match &cli.remote.agent {
            Some(url) => match remote::Remote::new(&cli.remote, url) {
                Ok(r) => Some(r),
                Err(e) => return Err(e),
            },
            None => None,
        };
        let remote = remote.as_ref();
        match (cli.command, remote) {
            (Command::Status, Some(r)) => r.status(json),
            (Command::Stop(a), Some(r)) => r.stop(a.id.as_deref().filter(|_| !a.all), json),
            (Command::Net(cmd), r) => net::run(cmd, json, r).await,
            (Command::Syscall(cmd), r) => syscall::run(cmd, json, r).await,
            (Command::Kill(args), r) => kill::run(args, json, r).await,
            (Command::Run(args), r) => run::run(args, json, &cli.remote, r).await,
            (Command::Schedule(cmd), r) => schedule::run(cmd, json, r).await,
            (_, Some(_)) => Err(chaos::Error::input(
                "--agent",
                "only fault commands (net, syscall, kill), run, schedule, status and stop go to an agent",
            )),
            (Command::Agent(args), None) => agent::run(args, cli.remote.token_file.clone()).await,
            (command, None) => local(command, json).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) if is_run => common::fail(&e, 2),
        Err(e) => common::fail(&e, e.exit_code()),
    }
}

/// The commands run here (with no --agent).
async fn local(command: Command, json: bool) -> chaos::Result<ExitCode> {
    match command {
        Command::Net(cmd) => net::run(cmd, json, None).await,
        Command::Syscall(cmd) => syscall::run(cmd, json, None).await,
        Command::Kill(args) => kill::run(args, json, None).await,
        Command::Stress(cmd) => stress::run(cmd, json).await,
        Command::StressWorker(_) => unreachable!("run before the runtime starts"),
        Command::Run(_) => unreachable!("dispatched with the agent flags"),
        Command::Schedule(_) => unreachable!("dispatched with the agent flags"),
        Command::Targets(args) => pods::targets(args, json).await,
        Command::Agent(_) => unreachable!("dispatched with its token file"),
        Command::Doctor(args) => doctor::run(args, json),
        Command::Status => lifecycle::status(json),
        Command::Stop(args) => lifecycle::stop(args),
        Command::Live(args) => lifecycle::live(args),
        Command::Cleanup => lifecycle::cleanup(),
        Command::Demo(args) => demo::run(args).await,
        Command::DemoClient(args) => demo::client(args),
        Command::Completions(args) => generated::completions(args),
        Command::Man => generated::man(),
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

    use proptest::prelude::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
        ))]

        /// Random command lines from chaos's own words and odd values: clap and the value
        /// parsers answer each with a parse or an error, never a panic.
        #[test]
        fn any_command_line_parses_or_errs(
            words in proptest::collection::vec(
                proptest::prelude::prop_oneof![
                    proptest::sample::select(WORDS.to_vec()).prop_map(String::from),
                    proptest::prelude::any::<String>(),
                ],
                0..10,
            )
        ) {
            let mut argv = vec!["chaos".to_string()];
            argv.extend(words);
            let _ = Cli::try_parse_from(&argv);
        }
    }

    /// Words of chaos's command lines, and values at and past their edges.
    const WORDS: &[&str] = &[
        "net",
        "syscall",
        "run",
        "status",
        "stop",
        "live",
        "cleanup",
        "doctor",
        "drop",
        "delay",
        "reorder",
        "rate",
        "duplicate",
        "corrupt",
        "rules",
        "connect",
        "write",
        "open",
        "fork",
        "--iface",
        "--netns",
        "--duration",
        "--percent",
        "--loss",
        "--correlation",
        "--dst",
        "--src",
        "--dport",
        "--sport",
        "--protocol",
        "--direction",
        "--cgroup",
        "--pid",
        "--errno",
        "--after",
        "--times",
        "--max-faults",
        "--events",
        "--events-sample",
        "--rule",
        "--latency",
        "--jitter",
        "--rate",
        "--path",
        "--comm",
        "--json",
        "--force",
        "--dry-run",
        "--background",
        "--tc-attach",
        "--list",
        "targets",
        "kill",
        "agent",
        "--listen",
        "--token-file",
        "--max-duration",
        "--signal",
        "stress",
        "memory",
        "--size",
        "--load",
        "--workers",
        "64MiB",
        "16MiB/s",
        "--every",
        "--recovery-timeout",
        "SIGTERM",
        "--pod",
        "--selector",
        "--namespace",
        "--container",
        "--mode",
        "--runtime-endpoint",
        "shop/web-0",
        "app=web,env in (a,b)",
        "fixed:2",
        "percent:0",
        "both",
        "ingress",
        "egress",
        "tcp",
        "udp",
        "icmp",
        "0",
        "100",
        "100.0001",
        "-1",
        "1e400",
        "NaN",
        "0s",
        "25h",
        "1ms",
        "65535",
        "65536",
        "1-0",
        "10.0.0.0/33",
        "::/0",
        "ENOSPC",
        "EPERM",
        "999999999999",
        "",
    ];

    /// The README and every page of docs/.
    fn documentation() -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut pages = vec![root.join("README.md")];
        let docs = std::fs::read_dir(root.join("docs")).expect("docs/");
        pages.extend(
            docs.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "md")),
        );
        assert!(pages.len() >= 6, "README and docs pages: {pages:?}");
        pages
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every `chaos ...` command line in the code blocks of the README and docs/ (continuation
    /// lines joined, comments cut), as the shell would split it.
    fn readme_commands() -> Vec<Vec<String>> {
        let text = documentation();
        let (mut lines, mut in_code, mut pending) = (Vec::new(), false, String::new());
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if !in_code {
                continue;
            }
            let line = line.trim().trim_start_matches("$ ");
            if pending.is_empty() && !line.starts_with("chaos ") {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(head) => pending = format!("{pending}{head} "),
                None => {
                    lines.push(format!("{pending}{line}"));
                    pending.clear();
                }
            }
        }
        lines
            .iter()
            .map(|l| {
                let words = shlex::split(l).unwrap_or_else(|| panic!("shell quoting: {l}"));
                // A comment after the command.
                let end = words.iter().position(|w| w.starts_with('#'));
                words[..end.unwrap_or(words.len())].to_vec()
            })
            .collect()
    }

    /// The README and docs/ show only commands the real parser takes (each `--rule` of
    /// `net rules` as the `chaos net` command it stands for).
    #[test]
    fn every_readme_command_parses() {
        let commands = readme_commands();
        assert!(
            commands.len() >= 25,
            "found only {} commands",
            commands.len()
        );
        for words in commands {
            if let Err(e) = Cli::try_parse_from(&words) {
                panic!("{}: {e}", words.join(" "));
            }
            let rules = words.windows(2).filter(|w| w[0] == "--rule").map(|w| &w[1]);
            for rule in rules {
                let mut line = vec!["chaos".to_string(), "net".to_string()];
                line.extend(shlex::split(rule).expect("rule quoting"));
                line.extend(["--iface", "eth0", "--duration", "1m"].map(String::from));
                if let Err(e) = Cli::try_parse_from(&line) {
                    panic!("rule {rule:?} of {}: {e}", words.join(" "));
                }
            }
        }
    }
}
