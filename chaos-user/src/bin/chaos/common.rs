//! Helpers shared by the subcommands: argument parsers, error reporting, output.

use chaos::{Error, cidr, units};
use std::process::ExitCode;

pub fn percent(s: &str) -> Result<units::Percent, String> {
    s.parse()
}
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    units::parse_duration(s)
}
/// A latency or jitter: any duration, zero allowed (ranges are checked with the fault).
pub fn latency(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 100ms"))
}
pub fn ports(s: &str) -> Result<chaos_common::PortRange, String> {
    units::parse_ports(s)
}
pub fn cidr(s: &str) -> Result<ipnet::IpNet, String> {
    cidr::parse_cidr(s)
}

/// clap's errors, folded onto one line (help and version are printed as usual).
pub fn clap_exit(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind::*;
    if matches!(
        e.kind(),
        DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("chaos: {} (see --help)", line.trim_start_matches("error: "));
    ExitCode::from(2)
}

/// Prints the error as one line and returns `status` (README, "Exit status").
pub fn fail(e: &Error, status: i32) -> ExitCode {
    // The whole error, verifier log included, for CHAOS_LOG=debug.
    tracing::debug!("{e:#?}");
    eprintln!("chaos: {}", chaos::error::chain(e));
    ExitCode::from(status as u8)
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr: text coloured only on a terminal and never with NO_COLOR set
/// (no-color.org), so a redirected stderr gets plain lines; or JSON lines
/// (tracing-subscriber's: timestamp, level, fields, target).
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHAOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.with_ansi(colour).init(),
    }
}

/// Prints a line on stdout. A closed stdout (`chaos ... | head`) must not panic: the
/// fault is still to be detached, or was already, and the output has nowhere to go.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use out;

/// One JSON line on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string(v) {
        Ok(s) => out!("{s}"),
        Err(e) => eprintln!("chaos: cannot serialize output: {e}"),
    }
}

/// Printed by `--background` once the fault is pinned.
#[derive(serde::Serialize)]
pub struct Backgrounded<'a> {
    pub event: &'static str,
    pub id: &'a str,
    pub fault: &'a str,
    pub detail: &'a str,
    pub duration_ms: u64,
}

impl Backgrounded<'_> {
    pub fn print(&self, json: bool) {
        if json {
            print_json(self);
        } else {
            out!("{}", self.id);
            eprintln!(
                "chaos: {} {}: {}, in the background for {:.1}s; see `chaos status`, end it with `chaos stop {}`",
                self.fault,
                self.id,
                self.detail,
                self.duration_ms as f64 / 1e3,
                self.id
            );
        }
    }
}

/// The line printed once a fault is attached: on stdout as JSON, else on stderr for humans.
#[derive(serde::Serialize)]
pub struct Attached<'a> {
    pub event: &'static str,
    pub fault: &'a str,
    /// The fault's id (8 hex digits), as `chaos status`, `chaos stop` and the summary name it.
    pub fault_id: String,
    pub detail: String,
    /// How it reached the kernel, as a short name (tcx, cls_bpf, sock_addr, lsm, fmod_ret,
    /// kprobe): what tests hold against the run's expectations.
    pub backend: &'static str,
    pub program_ids: Vec<u32>,
    pub duration_ms: u64,
}

/// A fault's id as chaos prints it: 8 hex digits.
pub fn fault_id(f: &impl chaos::session::Fault) -> String {
    format!("{:08x}", f.fault_id())
}

impl Attached<'_> {
    pub fn print(&self, json: bool) {
        if json {
            print_json(self);
        } else {
            eprintln!(
                "chaos: {}: {} for {:.1}s (programs {:?}); Ctrl-C stops it early",
                self.fault,
                self.detail,
                self.duration_ms as f64 / 1e3,
                self.program_ids
            );
        }
    }
}

/// The exit status of a fault that ran (README, "Exit status"): 3 when its target vanished.
pub fn exit_status(s: &chaos::session::Summary) -> ExitCode {
    match s.ended {
        chaos::session::Ended::TargetGone { .. } => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    }
}

pub fn print_summary(s: &chaos::session::Summary, json: bool) {
    if json {
        print_json(s);
    } else {
        out!("{s}");
    }
}

// How a fault runs; flattened into every fault subcommand.
#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// Shadow mode: attach and count what would be faulted, inject nothing. Send SIGUSR1 to go
    /// live without reattaching.
    #[arg(long)]
    dry_run: bool,
    /// Stop injecting after N faults (counted exactly, in the kernel).
    #[arg(long, value_name = "N", value_parser = chaos::controls::parse_budget)]
    pub max_faults: Option<u32>,
    /// Write one JSON line per injected fault (time, fault id, pid, comm, cgroup, 5-tuple or
    /// errno) to FILE.
    #[arg(long, value_name = "FILE")]
    events: Option<std::path::PathBuf>,
    /// With --events: log one fault in N on average, for high rates.
    #[arg(long, value_name = "N", default_value = "1", requires = "events", value_parser = chaos::controls::parse_sample)]
    events_sample: u32,
    /// Override the blast-radius guards: the root cgroup, the cgroup of PID 1 or of chaos
    /// itself, the interface of the default route or of your SSH connection, durations over 24h.
    #[arg(long)]
    force: bool,
    /// Leave the fault in the kernel (pinned in bpffs) and return at once; it still ends at its
    /// deadline. See `chaos status`, `chaos stop`, `chaos live`.
    #[arg(long, conflicts_with = "events")]
    pub background: bool,
}

impl ControlArgs {
    pub fn events_given(&self) -> bool {
        self.events.is_some()
    }
}

impl From<ControlArgs> for chaos::controls::Controls {
    fn from(a: ControlArgs) -> Self {
        Self {
            dry_run: a.dry_run,
            max_faults: a.max_faults,
            after: None,
            events: a.events,
            events_sample: a.events_sample,
            force: a.force,
        }
    }
}
