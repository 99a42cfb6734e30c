//! `chaos syscall NAME --errno ERRNO ...` and `chaos syscall list` (or `--list`).

use crate::choices::SockProtocol;
use crate::common::{self, Attached, Backgrounded, out};
use chaos::{
    errno,
    scalar::{Cidr, OneOrMany, Pct, Ports, Text},
    session::{self, Stop},
    syscall::{CATALOGUE, Filters, Hook, SyscallFault, SyscallFaultSpec},
    target::Target,
    units::Percent,
};
use clap::{ArgGroup, Args};
use std::{path::PathBuf, process::ExitCode, time::Instant};

// Examples:
//   chaos syscall write --errno ENOSPC --path /var/lib/postgresql --cgroup system.slice/postgresql.service --duration 30s
//   chaos syscall connect --errno ECONNREFUSED --dport 5432 --pid 4242 --duration 1m
//   chaos syscall open --errno EACCES --path /etc/app --percent 10 --after 100 --times 5 --cgroup app --duration 5m
//   chaos syscall write --signal SIGKILL --path /var/lib/db --after 99 --pid 4242 --duration 1m
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").args(["cgroup", "pid"])))]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SyscallArgs {
    #[command(subcommand)]
    command: Option<SyscallCommand>,
    /// The syscall to fail (see `chaos syscall list`): connect, sendmsg, bind, listen, accept,
    /// open, read, write, unlink, mkdir, rename, truncate, mmap, fork.
    #[arg(value_name = "NAME", required_unless_present = "list")]
    name: Option<String>,
    /// Print the catalogue (the same as `chaos syscall list`).
    #[arg(long, exclusive = true)]
    list: bool,
    /// Errno to return, by name or number; it must be one the syscall can return (see
    /// `chaos syscall list`).
    #[arg(long, value_name = "ERRNO")]
    errno: Option<String>,
    /// Instead of failing the call, send this signal (SIGKILL, SIGSEGV, SIGABRT, SIGBUS, ...)
    /// to the process at the call's entry: a crash at its Nth write (`--after N-1`), first
    /// fsync or rename. Calls: write, read, fsync, fdatasync (these take --path), open, rename,
    /// unlink, mkdir, truncate, mmap, connect, sendmsg, bind, listen, accept, fork.
    #[arg(long, value_name = "SIG", conflicts_with = "errno")]
    signal: Option<String>,
    /// connect/sendmsg: only calls to this address or CIDR; bind: binding this address.
    #[arg(long, value_name = "CIDR", value_parser = common::cidr)]
    dst: Option<ipnet::IpNet>,
    /// connect/sendmsg: only calls to this port or range N-M; bind: binding it.
    #[arg(long, value_name = "N", value_parser = common::ports)]
    dport: Option<chaos_common::PortRange>,
    /// connect/sendmsg/bind: only TCP or only UDP sockets.
    #[arg(long, value_enum)]
    protocol: Option<SockProtocol>,
    /// File syscalls: only files at or below this absolute path (repeatable, up to 8). Symlinks
    /// are resolved when the fault starts; bind mounts of it match too.
    #[arg(long, value_name = "PATH")]
    path: Vec<PathBuf>,
    /// read/write: also pipes, sockets, ttys and devices (default: regular files only, so a
    /// shell in the target keeps working).
    #[arg(long)]
    all_files: bool,
    /// listen/accept: only sockets bound to this local port or range N-M.
    #[arg(long, value_name = "N", value_parser = common::ports)]
    port: Option<chaos_common::PortRange>,
    /// Only threads with this command name (as in /proc/PID/comm).
    #[arg(long, value_name = "NAME")]
    comm: Option<String>,
    /// Probability of failing a matching call, above 0 up to 100 (decimals allowed; 0 is
    /// refused: it would inject nothing). Default: 100.
    #[arg(long, value_name = "P", value_parser = common::percent, allow_negative_numbers = true)]
    percent: Option<Percent>,
    /// Let the first N matching calls succeed (counted exactly in the kernel).
    #[arg(long, value_name = "N", value_parser = chaos::controls::parse_after)]
    after: Option<u32>,
    /// Fail at most N calls (the same as --max-faults).
    #[arg(long, value_name = "N", value_parser = chaos::controls::parse_budget, conflicts_with = "max_faults")]
    times: Option<u32>,
    /// Processes in this cgroup v2 and below: a path absolute or relative to the cgroup2 mount.
    #[arg(long, value_name = "PATH")]
    cgroup: Option<String>,
    /// Only this process (its thread group).
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// How long the fault lasts (e.g. 500ms, 30s, 5m; at most 24h). Enforced in the kernel.
    #[arg(long, value_name = "D", value_parser = common::duration, required_unless_present = "list")]
    duration: Option<std::time::Duration>,
    #[command(flatten)]
    pods: crate::pods::PodArgs,
    #[command(flatten)]
    controls: common::ControlArgs,
}

#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
enum SyscallCommand {
    /// Print the catalogue: syscalls, the errnos each accepts, the hook that carries it.
    List,
}

pub async fn run(
    a: SyscallArgs,
    json: bool,
    remote: Option<&crate::remote::Remote>,
) -> chaos::Result<ExitCode> {
    // Without --errno or --signal the spec's check names both.
    let (Some(name), Some(duration)) = (a.name, a.duration) else {
        // `list`, `--list`, or nothing to run (clap demands both otherwise).
        print_list(json);
        return Ok(ExitCode::SUCCESS);
    };
    let background = a.controls.background;
    let input = SyscallFaultSpec {
        dst: a.dst.map(Cidr),
        dport: a.dport.map(Ports),
        protocol: a.protocol.map(Into::into),
        path: OneOrMany::Many(a.path),
        all_files: a.all_files,
        port: a.port.map(Ports),
        comm: a.comm,
        percent: a.percent.map(Pct),
        after: a.after,
        times: a.times,
        errno: a.errno.map(Text),
        ..SyscallFaultSpec::crash(name, a.signal)
    };
    if let Some(r) = remote {
        let target = crate::remote::target_spec(Target::from_args(a.cgroup, a.pid), &a.pods)?;
        let mut req = crate::remote::request(target, duration, &a.controls.into())?;
        req.syscall = Some(input);
        return r.start(&req, json);
    }
    if let Some(targets) = a.pods.resolve(json).await? {
        let events = a.controls.events_given();
        crate::pods::check_controls(targets.len(), events, background)?;
        let endpoint = a.pods.query().endpoint;
        return on_pods(input, &targets, duration, a.controls.into(), endpoint, json).await;
    }
    let target = Target::from_args(a.cgroup, a.pid).ok_or_else(|| {
        chaos::Error::input(
            "--cgroup/--pid",
            "say whom to fault: --cgroup PATH (a cgroup v2 and its descendants), --pid PID \
             (one process), or --pod/--selector (Kubernetes containers on this node)",
        )
    })?;
    let spec = input.into_spec(target, duration, a.controls.into());
    let plan = spec.validate()?;
    let watched = [chaos::watch::Watched::target(&spec.target)?];
    let mut stop = Stop::install()?;
    let fault = SyscallFault::attach(&plan)?;
    // The duration counts from the attach (the kernel's deadline too).
    let started = Instant::now();
    let duration_ms = duration.as_millis() as u64;
    let name = plan.name();
    let detail = format!("{} [{}]", plan.detail(), fault.mechanism());
    if background {
        let record = fault.persist()?;
        Backgrounded {
            event: "background",
            id: &record.id,
            fault: &name,
            detail: &detail,
            duration_ms,
        }
        .print(json);
        return Ok(ExitCode::SUCCESS);
    }
    Attached {
        event: "attached",
        fault: &name,
        fault_id: common::fault_id(&fault),
        detail,
        backend: fault.backend_code(),
        program_ids: chaos::session::Fault::program_ids(&fault),
        duration_ms,
    }
    .print(json);
    let summary = session::run(fault, name, started, duration, &mut stop, &watched).await?;
    common::print_summary(&summary, json);
    Ok(common::exit_status(&summary))
}

/// The fault on each chosen container, every one checked before any is attached.
async fn on_pods(
    input: SyscallFaultSpec,
    targets: &[chaos::k8s::Resolved],
    duration: std::time::Duration,
    controls: chaos::controls::Controls,
    endpoint: Option<std::path::PathBuf>,
    json: bool,
) -> chaos::Result<ExitCode> {
    use chaos::syscall::pods;
    let specs = pods::specs_for(&input, targets, duration, &controls);
    let until = std::time::Instant::now() + duration;
    let mut planned = Vec::new();
    for ((label, spec), r) in specs.into_iter().zip(targets) {
        let plan = spec.validate()?;
        let again = pods::attach_to(input.clone(), controls.clone());
        planned.push(crate::pods::Planned {
            label,
            plan: (plan, spec.target.clone()),
            follow: Some(chaos::k8s::follow(r, endpoint.clone(), until, again)),
        });
    }
    let name = planned[0].plan.0.name();
    let attach = |(plan, target): &(chaos::syscall::SyscallPlan, Target)| {
        let fault = SyscallFault::attach(plan)?;
        let watched = vec![chaos::watch::Watched::target(target)?];
        let (code, detail) = (fault.backend_code(), plan.detail().to_string());
        Ok((
            Box::new(fault) as Box<dyn chaos::session::Fault>,
            watched,
            code,
            detail,
        ))
    };
    crate::pods::run_parts(name, planned, attach, duration, json).await
}

#[derive(serde::Serialize)]
struct ListEntry {
    name: &'static str,
    aliases: &'static [&'static str],
    hook: String,
    filters: &'static str,
    errnos: Vec<&'static str>,
    note: &'static str,
}

fn print_list(json: bool) {
    for e in CATALOGUE {
        let row = ListEntry {
            name: e.name,
            aliases: e.aliases,
            hook: match e.hook {
                Hook::SockAddr { .. } => "cgroup sock_addr + bpf_set_retval".into(),
                Hook::Lsm { hook, .. } => {
                    format!("LSM {hook} (BPF LSM, else fmod_ret, else kprobe on the syscall)")
                }
            },
            filters: match e.filters {
                Filters::Address => "--dst --dport --protocol",
                Filters::Path { rw: true } => "--path --all-files",
                Filters::Path { rw: false } => "--path",
                Filters::LocalPort => "--port",
                Filters::None => "",
            },
            errnos: e.errnos.iter().map(|&n| errno::name(n)).collect(),
            note: e.note,
        };
        if json {
            common::print_json(&row);
            continue;
        }
        let aka = if e.aliases.is_empty() {
            String::new()
        } else {
            format!(" (also {})", e.aliases.join(", "))
        };
        out!("{}{aka}", row.name);
        out!("  hook:    {}", row.hook);
        if !row.filters.is_empty() {
            out!("  filters: {}", row.filters);
        }
        out!("  errnos:  {}", row.errnos.join(" "));
        if !row.note.is_empty() {
            out!("  note:    {}", row.note);
        }
    }
    if !json {
        out!("every syscall also takes --cgroup/--pid, --comm, --percent, --after, --times");
        out!(
            "--signal SIG instead of --errno kills the process at the call: {} (only write, \
             read, fsync and fdatasync take --path)",
            chaos::syscall::crash::names()
        );
    }
}
