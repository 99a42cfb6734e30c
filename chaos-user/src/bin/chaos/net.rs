//! `chaos net ...`

use crate::choices::{AttachMode, Direction, Distribution, Protocol};
use crate::common::{self, Attached, Backgrounded};
use chaos::{
    net::{NetAction, NetFault, NetFaultSpec, NetSpec},
    scalar::{Cidr, Dur, OneOrMany, Pct, Ports, Rate, Text},
    session::{self, Stop},
    target::Target,
    units::Percent,
};
use clap::{Args, Subcommand};
use std::{process::ExitCode, time::Instant};

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum NetCommand {
    /// Drop matching packets (in the kernel, before any qdisc).
    ///
    /// Example: chaos net drop --iface eth0 --percent 30 --protocol udp --dport 53 --duration 1m
    Drop(NetArgs),
    /// Delay matching packets on their way out, with optional jitter (Earliest Departure Time,
    /// honoured by the fq qdisc, which chaos installs for the duration and then removes).
    ///
    /// Example: chaos net delay --iface eth0 --latency 100ms --jitter 20ms --dport 5432 --duration 5m
    Delay(DelayArgs),
    /// Send matching packets twice (the copy goes through the same device and direction).
    ///
    /// Example: chaos net duplicate --iface eth0 --protocol udp --percent 5 --duration 1m
    Duplicate(NetArgs),
    /// Flip one random bit in the payload of matching packets (TCP, UDP, ICMP).
    ///
    /// By default the L4 checksum no longer matches: a receiver that verifies it discards the
    /// packet (TCP retransmits, UDP counts InCsumErrors), as with netem corrupt. With
    /// --keep-checksum the checksum is fixed and the application reads the wrong bytes.
    /// Between namespaces on one host (veth), a packet whose checksum is left to offload is
    /// delivered unverified, so broken-checksum corruption of such traffic reaches the
    /// application; turn tx checksum offload off on the sender (ethtool -K IFACE tx off) to see
    /// the discards there.
    ///
    /// Example: chaos net corrupt --iface eth0 --protocol udp --percent 1 --keep-checksum --duration 1m
    Corrupt(CorruptArgs),
    /// Reset TCP connections (Toxiproxy's reset_peer): each matching segment becomes an RST in
    /// flight, so its receiver drops the connection and the application there sees ECONNRESET
    /// at once, not a timeout. Needs --protocol tcp. At ingress (the default) the local side is
    /// reset by what arrives; scoped to a cgroup (egress) the peer is reset by what the cgroup
    /// sends. An idle connection is reset when its next segment passes.
    ///
    /// Example: chaos net reset --iface eth0 --protocol tcp --dport 6379 --percent 10 --duration 1m
    Reset(NetArgs),
    /// Answer DNS lookups of matching names with an error (Chaos Mesh's DNSChaos): each
    /// matching query leaving the target becomes its own answer with --rcode and goes straight
    /// back, so the resolver is never asked and other names and clients resolve as before.
    /// UDP and TCP, IPv4 and IPv6, to port 53 unless --dport says otherwise. Scope it with
    /// --cgroup/--pid (the target's own lookups) or the interface of a pod's netns.
    ///
    /// Example: chaos net dns --iface eth0 --rcode NXDOMAIN --name '*.payments.svc.cluster.local' --cgroup app --duration 1m
    Dns(DnsArgs),
    /// Abort HTTP requests without a service mesh (Istio's fault abort): the status code of
    /// plaintext HTTP/1.x responses is rewritten in flight (same length: " 200" becomes
    /// " 503", the TCP checksum fixed), so the client receives --status from a healthy server
    /// with the body intact; --percent counts responses, not packets. At ingress (the default)
    /// the responses arriving for the client's sockets, scoped by --cgroup/--pid to the
    /// client's own; with --direction egress the responses a server's cgroup sends. TLS (and
    /// HTTP/2) traffic cannot be read and passes untouched.
    ///
    /// Example: chaos net http-abort --iface eth0 --status 503 --percent 10 --port 8080 --cgroup shop/web --duration 5m
    HttpAbort(HttpArgs),
    /// Reorder: every matching packet is delayed by --latency except --percent of them, which
    /// leave at once and overtake the delayed ones (netem's "reorder P"; needs fq, like delay).
    ///
    /// Example: chaos net reorder --iface eth0 --latency 10ms --percent 25 --protocol tcp --duration 1m
    Reorder(DelayArgs),
    /// Limit the bandwidth of matching packets on their way out: Earliest Departure Time pacing
    /// (fq installed for the duration, as for delay), no tbf/netem queue; packets due more than
    /// --horizon ahead are dropped.
    ///
    /// Example: chaos net rate --iface eth0 --rate 10mbit --dst 10.0.0.0/8 --duration 5m
    Rate(RateArgs),
    /// Several rules on one interface at once, in one program per hook (a rule set in maps):
    /// each --rule is an action with its options as for `chaos net ACTION`; every rule acts on
    /// the packets it matches (a drop ends it), and each has its own counters.
    ///
    /// Example: chaos net rules --iface eth0 --duration 5m --rule 'delay --latency 100ms --dport 5432' --rule 'drop --percent 5 --protocol udp --dport 53'
    Rules(crate::net_rules::RulesArgs),
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// The status code responses get (100-599). Default: 503.
    #[arg(long, value_name = "CODE")]
    status: Option<u16>,
    /// Only responses from this server port or range N-M (the same as --sport).
    #[arg(long, value_name = "N", value_parser = common::ports, conflicts_with = "sport")]
    port: Option<chaos_common::PortRange>,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// The answer: NXDOMAIN (the name does not exist), SERVFAIL (the resolver failed: clients
    /// see a temporary failure and may retry) or REFUSED.
    #[arg(long, value_name = "RCODE")]
    rcode: String,
    /// Only lookups of this name (exact, case-insensitive) or of names under *.SUFFIX;
    /// repeatable, up to 64. Default: every name.
    #[arg(long, value_name = "PATTERN")]
    name: Vec<String>,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Debug, Args)]
pub struct RateArgs {
    /// Bandwidth, as tc writes it: 10mbit, 500kbit, 1gbit (or bps/kbps/mbps/gbps for bytes/s).
    #[arg(long, value_name = "RATE", value_parser = chaos::units::parse_rate)]
    rate: u64,
    /// Drop packets that would leave more than this far in the future (a queue bound in time).
    /// Default: 1s.
    #[arg(long, value_name = "D", value_parser = common::latency)]
    horizon: Option<std::time::Duration>,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Debug, Args)]
pub struct CorruptArgs {
    /// Fix the L4 checksum after flipping the bit, so the corrupted data is delivered.
    #[arg(long)]
    keep_checksum: bool,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Debug, Args)]
pub struct DelayArgs {
    /// Added latency (e.g. 100ms; at most 10s).
    #[arg(long, value_name = "D", value_parser = common::latency)]
    latency: std::time::Duration,
    /// Jitter: each packet gets latency +- up to this much (at most --latency); with
    /// --distribution normal, the standard deviation. Default: none.
    #[arg(long, value_name = "D", value_parser = common::latency)]
    jitter: Option<std::time::Duration>,
    /// How the jitter is drawn (default: uniform). With --correlation P, each draw leans P % on
    /// the previous one (netem's delay correlation), so that delays drift instead of jumping.
    #[arg(long, value_enum)]
    distribution: Option<Distribution>,
    #[command(flatten)]
    net: NetArgs,
}

// Where the classifier goes and which packets it matches.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Interface to attach to (in --netns if given). Not needed for drops of arriving traffic
    /// scoped to a cgroup (--cgroup/--pid --direction ingress), which attach to the cgroup.
    #[arg(long, value_name = "IFACE")]
    iface: Option<String>,
    /// Network namespace of the interface: a name under /run/netns or a path like /proc/PID/ns/net.
    #[arg(long, value_name = "NAME|PATH")]
    netns: Option<String>,
    /// Traffic direction at the interface. Default: ingress (silent "wire" loss), or egress when
    /// --cgroup/--pid is given (packets are matched to their sender's cgroup).
    #[arg(long, value_enum)]
    direction: Option<Direction>,
    /// Probability of faulting a matching packet, above 0 up to 100 (decimals allowed; 0 is
    /// refused: it would inject nothing). Default: 100.
    #[arg(long, value_name = "P", value_parser = common::percent, allow_negative_numbers = true)]
    percent: Option<Percent>,
    /// Burst faults: the probability (0 to below 100) that a packet gets the same decision as the one
    /// before it; the overall rate stays --percent, the mean burst grows to
    /// 1 / ((1 - correlation) (1 - percent)) packets. Below 100 (at 100 the first decision
    /// would hold for every packet).
    #[arg(long, value_name = "P", value_parser = common::percent, allow_negative_numbers = true)]
    correlation: Option<Percent>,
    /// Also drop this share (above 0, up to 100) of the matching packets, rolled apart from the
    /// action: e.g.
    /// `delay --latency 100ms --loss 5` is netem's "delay 100ms loss 5%". Not for drop itself.
    #[arg(long, value_name = "P", value_parser = common::percent, allow_negative_numbers = true)]
    loss: Option<Percent>,
    /// Only this protocol.
    #[arg(long, value_enum)]
    protocol: Option<Protocol>,
    /// Only packets to this address or CIDR (IPv4 or IPv6); repeatable, or comma-separated:
    /// any of them matches (several are looked up in an LPM trie, not scanned).
    #[arg(long, value_name = "CIDR", value_delimiter = ',', value_parser = common::cidr)]
    dst: Vec<ipnet::IpNet>,
    /// Only packets from this address or CIDR; repeatable, like --dst.
    #[arg(long, value_name = "CIDR", value_delimiter = ',', value_parser = common::cidr)]
    src: Vec<ipnet::IpNet>,
    /// Destination prefixes from a file: one address or CIDR per line, # comments.
    #[arg(long, value_name = "FILE")]
    dst_file: Option<std::path::PathBuf>,
    /// Source prefixes from a file, like --dst-file.
    #[arg(long, value_name = "FILE")]
    src_file: Option<std::path::PathBuf>,
    /// Only this destination port or range N-M (TCP/UDP).
    #[arg(long, value_name = "N", value_parser = common::ports)]
    dport: Option<chaos_common::PortRange>,
    /// Only this source port or range N-M (TCP/UDP).
    #[arg(long, value_name = "N", value_parser = common::ports)]
    sport: Option<chaos_common::PortRange>,
    /// Only packets sent by processes in this cgroup v2 (or below it): a path absolute or
    /// relative to the cgroup2 mount.
    #[arg(long, value_name = "PATH", conflicts_with = "pid")]
    cgroup: Option<String>,
    /// Only packets sent by processes in the cgroup of this process.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// How long the fault lasts (e.g. 500ms, 30s, 5m; at most 24h). Enforced in the kernel.
    #[arg(long, value_name = "D", value_parser = common::duration)]
    duration: std::time::Duration,
    /// How to attach: TCX links (fd-owned, Linux >= 6.6) or clsact + cls_bpf (older kernels).
    /// Default: auto.
    #[arg(long, value_enum)]
    tc_attach: Option<AttachMode>,
    #[command(flatten)]
    pods: crate::pods::PodArgs,
    #[command(flatten)]
    controls: common::ControlArgs,
}

/// The flags as the family's spec and what goes with it.
pub struct Input {
    pub spec: NetFaultSpec,
    pub target: Option<Target>,
    pub duration: std::time::Duration,
    pub controls: chaos::controls::Controls,
    pub pods: crate::pods::PodArgs,
}

impl NetArgs {
    /// The flags as the family's spec (`NetFaultSpec`, which applies the defaults), the
    /// action's own options already in `f`.
    pub fn input(self, mut f: NetFaultSpec) -> chaos::Result<Input> {
        let mut src = self.src;
        let mut dst = self.dst;
        if let Some(file) = &self.src_file {
            src.extend(chaos::cidr::read_file(file, "--src-file")?);
        }
        if let Some(file) = &self.dst_file {
            dst.extend(chaos::cidr::read_file(file, "--dst-file")?);
        }
        f.iface = self.iface;
        f.netns = self.netns;
        f.direction = self.direction.map(Into::into);
        f.percent = self.percent.map(Pct);
        f.correlation = self.correlation.map(Pct);
        f.loss = self.loss.map(Pct);
        f.protocol = self.protocol.map(Into::into);
        f.src = OneOrMany::Many(src.into_iter().map(Cidr).collect());
        f.dst = OneOrMany::Many(dst.into_iter().map(Cidr).collect());
        f.sport = self.sport.map(Ports).or(f.sport);
        f.dport = self.dport.map(Ports);
        f.tc_attach = self.tc_attach.map(Into::into);
        Ok(Input {
            spec: f,
            target: Target::from_args(self.cgroup, self.pid),
            duration: self.duration,
            controls: self.controls.into(),
            pods: self.pods,
        })
    }

    /// The spec of a rule of `chaos net rules`, which takes no Kubernetes target.
    pub fn spec(self, f: NetFaultSpec) -> chaos::Result<NetSpec> {
        let i = self.input(f)?;
        if i.pods.query().is_set() {
            return Err(chaos::Error::input(
                "--pod",
                "the rules of `chaos net rules` take no Kubernetes target yet: give the pod's \
                 network namespace and cgroup (--netns, --cgroup; see `chaos targets`)",
            ));
        }
        i.spec.into_spec(i.target, i.duration, i.controls)
    }
}

pub async fn run(
    cmd: NetCommand,
    json: bool,
    remote: Option<&crate::remote::Remote>,
) -> chaos::Result<ExitCode> {
    let (args, action) = match split(cmd) {
        Split::One(args, action) => (args, action),
        Split::Rules(_) if remote.is_some() => {
            return Err(chaos::Error::input(
                "--agent",
                "`chaos net rules` is not sent to an agent yet: run it on the node",
            ));
        }
        Split::Rules(r) => return crate::net_rules::run(r, json).await,
    };
    let background = args.controls.background;
    let events = args.controls.events_given();
    let i = args.input(action)?;
    if let Some(r) = remote {
        let target = crate::remote::target_spec(i.target, &i.pods)?;
        let mut req = crate::remote::request(target, i.duration, &i.controls)?;
        req.net = Some(i.spec);
        return r.start(&req, json);
    }
    if let Some(targets) = i.pods.resolve(json).await? {
        crate::pods::check_controls(targets.len(), events, background)?;
        return on_pods(i, &targets, json).await;
    }
    let spec = i.spec.into_spec(i.target, i.duration, i.controls)?;
    let plan = spec.validate()?;
    let watched = plan.watched()?;
    let mut stop = Stop::install()?;
    let fault = NetFault::attach(&plan)?;
    // The duration counts from the attach (the kernel's deadline too).
    let started = Instant::now();
    let duration_ms = spec.duration.as_millis() as u64;
    if background {
        let record = fault.persist()?;
        let b = Backgrounded {
            event: "background",
            id: &record.id,
            fault: plan.fault,
            detail: &plan.detail,
            duration_ms,
        };
        b.print(json);
        return Ok(ExitCode::SUCCESS);
    }
    Attached {
        event: "attached",
        fault: plan.fault,
        fault_id: common::fault_id(&fault),
        detail: format!("{} via {:?}", plan.detail, fault.mode()),
        backend: fault.mode().code(),
        program_ids: fault.program_ids(),
        duration_ms,
    }
    .print(json);
    let summary = session::run(
        fault,
        plan.fault.into(),
        started,
        spec.duration,
        &mut stop,
        &watched,
    )
    .await?;
    common::print_summary(&summary, json);
    Ok(common::exit_status(&summary))
}

/// The fault on each chosen pod (or container), every one checked before any is attached.
async fn on_pods(
    i: Input,
    targets: &[chaos::k8s::Resolved],
    json: bool,
) -> chaos::Result<ExitCode> {
    use chaos::net::pods;
    let parts = pods::specs_for(&i.spec, targets, i.duration, &i.controls)?;
    let (endpoint, until) = (
        i.pods.query().endpoint,
        std::time::Instant::now() + i.duration,
    );
    let mut planned = Vec::new();
    for p in parts {
        let follow = p.container.map(|r| {
            let again = pods::attach_to(p.input.clone(), i.controls.clone());
            chaos::k8s::follow(r, endpoint.clone(), until, again)
        });
        planned.push(crate::pods::Planned {
            label: p.label,
            plan: p.spec.validate()?,
            follow,
        });
    }
    let name = planned[0].plan.fault.to_string();
    let attach = |plan: &chaos::net::NetPlan| {
        let watched = plan.watched()?;
        let fault = NetFault::attach(plan)?;
        let code = fault.mode().code();
        let detail = plan.detail.clone();
        Ok((
            Box::new(fault) as Box<dyn chaos::session::Fault>,
            watched,
            code,
            detail,
        ))
    };
    crate::pods::run_parts(name, planned, attach, i.duration, json).await
}

pub enum Split {
    One(Box<NetArgs>, NetFaultSpec),
    Rules(crate::net_rules::RulesArgs),
}

/// A single-rule command as its filters and its action (with the action's own options).
pub fn split(cmd: NetCommand) -> Split {
    let delay = |action, d: &DelayArgs| NetFaultSpec {
        latency: Some(Dur(d.latency)),
        jitter: d.jitter.map(Dur),
        distribution: d.distribution.map(Into::into),
        ..NetFaultSpec::new(action)
    };
    let (args, action) = match cmd {
        NetCommand::Drop(args) => (args, NetFaultSpec::new(NetAction::Drop)),
        NetCommand::Delay(d) => {
            let f = delay(NetAction::Delay, &d);
            (d.net, f)
        }
        NetCommand::Reorder(d) => {
            let f = delay(NetAction::Reorder, &d);
            (d.net, f)
        }
        NetCommand::Duplicate(args) => (args, NetFaultSpec::new(NetAction::Duplicate)),
        NetCommand::Reset(args) => (args, NetFaultSpec::new(NetAction::Reset)),
        NetCommand::HttpAbort(h) => (
            h.net,
            NetFaultSpec {
                status: h.status,
                sport: h.port.map(Ports),
                ..NetFaultSpec::new(NetAction::HttpAbort)
            },
        ),
        NetCommand::Dns(d) => (
            d.net,
            NetFaultSpec {
                rcode: Some(Text(d.rcode)),
                name: OneOrMany::Many(d.name),
                ..NetFaultSpec::new(NetAction::Dns)
            },
        ),
        NetCommand::Rate(r) => (
            r.net,
            NetFaultSpec {
                rate: Some(Rate(r.rate)),
                horizon: r.horizon.map(Dur),
                ..NetFaultSpec::new(NetAction::Rate)
            },
        ),
        NetCommand::Corrupt(a) => (
            a.net,
            NetFaultSpec {
                keep_checksum: a.keep_checksum,
                ..NetFaultSpec::new(NetAction::Corrupt)
            },
        ),
        NetCommand::Rules(r) => return Split::Rules(r),
    };
    Split::One(Box::new(args), action)
}
