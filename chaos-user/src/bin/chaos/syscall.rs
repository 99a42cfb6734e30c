//! `chaos syscall ...`

use crate::common::{self, Attached, Backgrounded};
use chaos::{
    errno,
    session::{self, Stop},
    syscall::{ConnectFault, ConnectSpec, SockProtocol},
    target::Target,
    units::Percent,
};
use clap::{ArgGroup, Args, Subcommand};
use std::{process::ExitCode, time::Instant};

#[derive(Debug, Subcommand)]
pub enum SyscallCommand {
    /// Fail connect(2) (TCP, and UDP connect) with a chosen errno, IPv4 and IPv6.
    ///
    /// Example: chaos syscall connect --errno ECONNREFUSED --dport 5432 --cgroup system.slice/app.service --duration 30s
    Connect(ConnectArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["cgroup", "pid"])))]
pub struct ConnectArgs {
    /// Errno to return, by name or number: ECONNREFUSED, ETIMEDOUT, ENETUNREACH, EHOSTUNREACH,
    /// EADDRNOTAVAIL, EADDRINUSE, EACCES, EPERM, EAGAIN, EINTR, ECONNRESET, ENOBUFS, ENETDOWN.
    #[arg(long, value_name = "ERRNO", value_parser = connect_errno)]
    errno: i32,
    /// Only connections to this address or CIDR (IPv4 or IPv6).
    #[arg(long, value_name = "CIDR", value_parser = common::cidr)]
    dst: Option<ipnet::IpNet>,
    /// Only connections to this port or range N-M.
    #[arg(long, value_name = "N", value_parser = common::ports)]
    dport: Option<chaos_common::PortRange>,
    /// Only TCP or only UDP sockets.
    #[arg(long, value_enum)]
    protocol: Option<SockProtocol>,
    /// Probability of failing a matching call, 0-100 (decimals allowed).
    #[arg(long, value_name = "P", default_value = "100", value_parser = common::percent)]
    percent: Percent,
    /// Processes in this cgroup v2 and below: a path absolute or relative to the cgroup2 mount.
    #[arg(long, value_name = "PATH")]
    cgroup: Option<String>,
    /// Processes in the cgroup of this process.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// How long the fault lasts (e.g. 500ms, 30s, 5m; at most 24h). Enforced in the kernel.
    #[arg(long, value_name = "D", value_parser = common::duration)]
    duration: std::time::Duration,
    #[command(flatten)]
    controls: common::ControlArgs,
}

fn connect_errno(s: &str) -> Result<i32, String> {
    errno::parse(s, errno::CONNECT)
}

pub async fn run(cmd: SyscallCommand, json: bool) -> chaos::Result<ExitCode> {
    let SyscallCommand::Connect(a) = cmd;
    let background = a.controls.background;
    let spec = ConnectSpec {
        errno: a.errno,
        dst: a.dst,
        dport: a.dport,
        protocol: a.protocol,
        percent: a.percent,
        target: Target::from_args(a.cgroup, a.pid).expect("clap requires --cgroup or --pid"),
        duration: a.duration,
        controls: a.controls.into(),
    };
    let plan = spec.validate()?;
    let mut stop = Stop::install()?;
    let started = Instant::now();
    let fault = ConnectFault::attach(&plan)?;
    let duration_ms = spec.duration.as_millis() as u64;
    let name = "syscall connect";
    if background {
        let record = fault.persist()?;
        Backgrounded {
            event: "background",
            id: &record.id,
            fault: name,
            detail: &plan.detail,
            duration_ms,
        }
        .print(json);
        return Ok(ExitCode::SUCCESS);
    }
    Attached {
        event: "attached",
        fault: name,
        detail: plan.detail.clone(),
        program_ids: fault.program_ids(),
        duration_ms,
    }
    .print(json);
    let summary = session::run(fault, name.into(), started, spec.duration, &mut stop).await?;
    common::print_summary(&summary, json);
    Ok(ExitCode::SUCCESS)
}
