//! Helpers shared by the subcommands: argument parsers, error reporting, output.

use chaos::{Error, cidr, units};
use std::process::ExitCode;

pub fn percent(s: &str) -> Result<units::Percent, String> {
    s.parse()
}
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    units::parse_duration(s)
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

pub fn fail(e: &Error) -> ExitCode {
    eprintln!("chaos: {}", chaos::error::chain(e));
    ExitCode::from(e.exit_code() as u8)
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHAOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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

/// The line printed once a fault is attached: on stdout as JSON, else on stderr for humans.
#[derive(serde::Serialize)]
pub struct Attached<'a> {
    pub event: &'static str,
    pub fault: &'a str,
    pub detail: String,
    pub program_ids: Vec<u32>,
    pub duration_ms: u64,
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

pub fn print_summary(s: &chaos::session::Summary, json: bool) {
    if json {
        print_json(s);
    } else {
        out!("{s}");
    }
}
