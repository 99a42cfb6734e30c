//! `chaos demo`: build a sandbox, show a healthy workload, break it with a packet drop and a
//! connection refusal, show what the workload saw, detach, show it healthy, remove the sandbox.

use crate::{
    common::{self, out},
    workload::{self, ClientArgs, Seen, Servers, TCP_PORT, UDP_PORT},
};
use chaos::{
    Error, Result,
    controls::Controls,
    net::{Direction, NetAction, NetFault, NetFaultSpec, Protocol},
    sandbox::{self, Sandbox},
    scalar::{Pct, Ports},
    session::Fault,
    syscall::{SockProtocol, SyscallFault, SyscallFaultSpec},
    target::Target,
    units::Percent,
};
use std::{net::SocketAddr, process::ExitCode, time::Duration, time::Instant};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Share of UDP packets to drop.
    #[arg(long, default_value = "30", value_parser = common::percent)]
    percent: Percent,
}

pub fn client(a: ClientArgs) -> Result<ExitCode> {
    let seen = workload::client(a).map_err(|e| Error::io("demo client", e))?;
    common::print_json(&seen);
    Ok(ExitCode::SUCCESS)
}

/// Long enough for the demo's three measurements; the faults are detached before it ends.
const FAULT_DURATION: Duration = Duration::from_secs(60);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((sandbox::SERVER_V4, port))
}

/// Runs the client in the sandbox namespace, inside the cgroup or (the control) outside it,
/// and reads what it saw.
fn measure(sb: &Sandbox, inside: bool) -> Result<Seen> {
    let exe = std::env::current_exe().map_err(|e| Error::io("finding chaos itself", e))?;
    let exe = exe.to_string_lossy();
    let mut cmd = if inside {
        sb.in_cgroup(&exe)
    } else {
        sb.outside_cgroup(&exe)
    };
    let out = cmd
        .args([
            "demo-client",
            "--udp",
            &addr(UDP_PORT).to_string(),
            "--tcp",
            &addr(TCP_PORT).to_string(),
        ])
        .output()
        .map_err(|e| Error::io("running the demo client", e))?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::io(
            "demo client output",
            std::io::Error::other(format!("{e}: {}", String::from_utf8_lossy(&out.stderr))),
        )
    })
}

fn show(phase: &str, s: &Seen) {
    let lost = 100.0 * f64::from(s.udp_sent - s.udp_echoed) / f64::from(s.udp_sent.max(1));
    out!(
        "{phase:<10} UDP {}/{} echoed ({lost:.1}% lost); TCP {}/{} connected, {} refused, {} other errors",
        s.udp_echoed,
        s.udp_sent,
        s.tcp_connected,
        s.tcp_tries,
        s.tcp_refused,
        s.tcp_other
    );
}

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    // Signals are caught (not fatal) so that Ctrl-C cannot skip the cleanup below.
    let _signals = chaos::session::Stop::install()?;
    let sb = Sandbox::create("demo")?;
    out!(
        "sandbox:   netns {} (server {}) <-veth-> netns {} (client {}), cgroup {}",
        sb.server_ns,
        sandbox::SERVER_V4,
        sb.client_ns,
        sandbox::CLIENT_V4,
        sb.cgroup.display()
    );
    let servers = sb
        .server_netns()?
        .enter(|| Servers::start(addr(UDP_PORT), addr(TCP_PORT)))?;
    let _servers = servers.map_err(|e| Error::io("starting demo servers", e))?;

    show("healthy:", &measure(&sb, true)?);

    let one = |port| Ports(chaos_common::PortRange { lo: port, hi: port });
    let net = NetFaultSpec {
        iface: Some(sb.server_if.clone()),
        netns: Some(sb.server_ns.clone()),
        direction: Some(Direction::Ingress),
        percent: Some(Pct(args.percent)),
        protocol: Some(Protocol::Udp),
        dport: Some(one(UDP_PORT)),
        ..NetFaultSpec::new(NetAction::Drop)
    }
    .into_spec(None, FAULT_DURATION, Controls::default())?;
    let conn = SyscallFaultSpec {
        dport: Some(one(TCP_PORT)),
        protocol: Some(SockProtocol::Tcp),
        ..SyscallFaultSpec::new("connect".into(), "ECONNREFUSED".into())
    }
    .into_spec(
        Target::Cgroup(sb.cgroup.to_string_lossy().into_owned()),
        FAULT_DURATION,
        Controls::default(),
    );
    let t = Instant::now();
    let drop_fault = NetFault::attach(&net.validate()?)?;
    let conn_fault = SyscallFault::attach(&conn.validate()?)?;
    out!(
        "injecting: drop {} of UDP to port {UDP_PORT} at the server's ingress ({:?}); connect() to port \
         {TCP_PORT} -> ECONNREFUSED for the cgroup (attached in {:.1} ms)",
        args.percent,
        drop_fault.mode(),
        t.elapsed().as_secs_f64() * 1e3
    );
    show("faulted:", &measure(&sb, true)?);
    // Same namespace, outside the cgroup: the connect fault must not reach it.
    show("control:", &measure(&sb, false)?);
    let (d, c) = (drop_fault.counters()?, conn_fault.counters()?);
    out!(
        "kernel:    (both runs) net drop matched {} injected {}; connect matched {} injected {}",
        d.matched,
        d.injected,
        c.matched,
        c.injected
    );
    let t = Instant::now();
    drop((drop_fault, conn_fault));
    out!("detached:  in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);

    show("recovered:", &measure(&sb, true)?);
    drop(_servers);
    drop(sb);
    out!("sandbox removed");
    Ok(ExitCode::SUCCESS)
}
