//! Packet faults at TC. `NetSpec` is what the user asked for; `validate` turns it into a
//! `NetPlan` (checked against the system, nothing attached); `NetFault::attach` applies a plan.

mod fault;
mod handoff;
mod ifb;
mod qdisc;
mod set_hint;
mod targets;
mod tc;

pub use fault::{NetFault, classifier_for, fill_set};
pub use ifb::delete as delete_ifb;
pub use qdisc::restore_default as restore_default_qdisc;
pub use tc::AttachMode;

use crate::{
    cgroup::Cgroup,
    cidr,
    controls::{self, Controls},
    error::{Error, Result},
    guards,
    netns::{self, Netns},
    target::Target,
    units::Percent,
};
use chaos_common::filter::{FAMILY_SET, MAX_PREFIXES};
use chaos_common::{
    ACTION_CORRUPT, ACTION_DELAY, ACTION_DROP, ACTION_DUPLICATE, ACTION_RATE, ACTION_REORDER, Cidr,
    NetRule, OPT_KEEP_CSUM, OPT_NORMAL, OPT_PEER, PROTO_ANY, PROTO_ICMP, PROTO_TCP, PROTO_UDP,
    PortRange,
};
use ipnet::IpNet;
use std::time::Duration;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
    Both,
}

impl Direction {
    pub fn hooks(self) -> &'static [Direction] {
        match self {
            Direction::Ingress => &[Direction::Ingress],
            Direction::Egress => &[Direction::Egress],
            Direction::Both => &[Direction::Ingress, Direction::Egress],
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
}

impl Protocol {
    fn code(p: Option<Protocol>) -> u8 {
        match p {
            None => PROTO_ANY,
            Some(Protocol::Tcp) => PROTO_TCP,
            Some(Protocol::Udp) => PROTO_UDP,
            Some(Protocol::Icmp) => PROTO_ICMP,
        }
    }
}

/// How delay jitter is drawn (netem's `distribution`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Evenly between latency - jitter and latency + jitter.
    #[default]
    Uniform,
    /// Normal around the latency, jitter being the standard deviation (never below 0).
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Drop,
    /// Added latency, with jitter of +- `jitter` (at most `latency`): uniform, or normal with
    /// `jitter` as its standard deviation.
    /// `reorder`: the packets the roll picks leave at once, the others are delayed.
    Delay {
        latency: Duration,
        jitter: Duration,
        distribution: Distribution,
        reorder: bool,
    },
    Duplicate,
    /// Flip one bit in the payload; `keep_checksum`: fix the L4 checksum.
    Corrupt {
        keep_checksum: bool,
    },
    /// Bandwidth limit in bits per second; packets due later than `horizon` are dropped.
    Rate {
        bits_per_sec: u64,
        horizon: Duration,
    },
}

impl Action {
    /// Where the fault applies when no direction is given: drop is silent "wire" loss at
    /// ingress; delay, rate and anything scoped to a cgroup work at egress (packets are matched
    /// to their sender's socket there).
    pub fn default_direction(self, scoped: bool) -> Direction {
        if scoped || matches!(self, Action::Delay { .. } | Action::Rate { .. }) {
            Direction::Egress
        } else {
            Direction::Ingress
        }
    }

    fn describe(self) -> String {
        match self {
            Action::Drop => "drop".into(),
            Action::Duplicate => "duplicate".into(),
            Action::Corrupt {
                keep_checksum: true,
            } => "corrupt (checksum fixed)".into(),
            Action::Corrupt {
                keep_checksum: false,
            } => "corrupt (checksum broken)".into(),
            Action::Rate {
                bits_per_sec,
                horizon,
            } => format!(
                "limit to {} (drop when due more than {horizon:?} ahead)",
                crate::units::format_rate(bits_per_sec)
            ),
            Action::Delay {
                latency,
                jitter,
                distribution,
                reorder,
            } => {
                let by = match (jitter.is_zero(), distribution) {
                    (true, _) => format!("{latency:?}"),
                    (false, Distribution::Uniform) => format!("{latency:?} +- {jitter:?}"),
                    (false, Distribution::Normal) => {
                        format!("{latency:?} (normal, standard deviation {jitter:?})")
                    }
                };
                if reorder {
                    format!("reorder (send at once; the others are delayed by {by})")
                } else {
                    format!("delay by {by}")
                }
            }
        }
    }
}

/// A packet fault as asked for.
#[derive(Debug, Clone)]
pub struct NetSpec {
    pub action: Action,
    pub iface: String,
    pub netns: Option<String>,
    pub direction: Direction,
    pub percent: Percent,
    /// Burst faults: probability of repeating the previous decision.
    pub correlation: Option<Percent>,
    /// Extra loss on top of the action (delay plus 5 % drop), rolled on its own.
    pub loss: Option<Percent>,
    pub protocol: Option<Protocol>,
    /// Any of these prefixes (empty: any address); more than one go through an LPM trie.
    pub src: Vec<IpNet>,
    pub dst: Vec<IpNet>,
    pub sport: Option<PortRange>,
    pub dport: Option<PortRange>,
    pub target: Option<Target>,
    pub duration: Duration,
    pub attach: AttachMode,
    pub controls: Controls,
}

/// A validated packet fault, ready to attach.
#[derive(Debug)]
pub struct NetPlan {
    pub iface: String,
    pub netns: Option<Netns>,
    /// TC hooks to attach to `iface`.
    pub hooks: &'static [Direction],
    /// Also (or only) drop arriving packets with a cgroup_skb ingress program on `cgroup`.
    pub cgroup_ingress: bool,
    /// Hold arriving packets back through an ifb device (delay, reorder, rate at ingress).
    pub ifb: bool,
    pub cgroup: Option<Cgroup>,
    /// The rule without its deadline, which is set at attach time.
    pub rule: NetRule,
    /// Prefixes for the LPM tries when `rule.src` / `rule.dst` is a set.
    pub src_set: Vec<IpNet>,
    pub dst_set: Vec<IpNet>,
    pub duration: Duration,
    pub attach: AttachMode,
    pub controls: Controls,
    /// One line for humans: what, where, how much.
    pub detail: String,
    /// "net drop", "net delay".
    pub fault: &'static str,
}

impl NetSpec {
    fn describe(&self) -> String {
        let ns = self
            .netns
            .as_deref()
            .map(|n| format!(" in netns {n}"))
            .unwrap_or_default();
        let dry = if self.controls.dry_run {
            "[dry run] "
        } else {
            ""
        };
        if self.iface.is_empty() {
            return format!(
                "{dry}{} {} of matching packets arriving at sockets of the cgroup",
                self.action.describe(),
                self.percent
            );
        }
        let loss = self
            .loss
            .map_or(String::new(), |l| format!(", and drop {l} of them"));
        format!(
            "{dry}{} {} of matching packets{loss} on {}{ns} ({})",
            self.action.describe(),
            self.percent,
            self.iface,
            format!("{:?}", self.direction).to_lowercase()
        )
    }

    /// Departure times are honoured on the way out only (fq is an egress qdisc); arriving
    /// packets take a detour through an ifb device, which needs no socket, so only a cgroup
    /// scope ties these actions to egress.
    fn egress_only(&self, what: &str) -> Result<()> {
        let ifb_ok = matches!(self.action, Action::Delay { .. } | Action::Rate { .. })
            && self.target.is_none();
        if self.direction == Direction::Egress || ifb_ok {
            return Ok(());
        }
        Err(Error::input(
            "--direction",
            format!(
                "scoped to a cgroup, {what} works at egress only (arriving packets have no socket \
                 yet at TC ingress); {what} what the cgroup sends with --direction egress, or \
                 all arriving traffic of IFACE without --cgroup/--pid"
            ),
        ))
    }

    /// Checks everything that can be checked before attaching; errors name the flag.
    pub fn validate(&self) -> Result<NetPlan> {
        if self
            .correlation
            .is_some_and(|c| c.threshold() >= chaos_common::THRESHOLD_ALWAYS)
        {
            // roll_correlated would repeat the first decision for every packet after it.
            return Err(Error::input(
                "--correlation",
                "100 repeats the first decision for every packet (all or nothing, not the \
                 rate asked for): use a value below 100, e.g. 75",
            ));
        }
        let netns = self.netns.as_deref().map(Netns::resolve).transpose()?;
        // Arriving traffic scoped to a cgroup is dropped by a cgroup_skb program on the cgroup
        // (at TC ingress a packet has no socket yet); that needs no interface.
        let cgroup_ingress = self.target.is_some() && self.direction != Direction::Egress;
        let no_iface = self.iface.is_empty();
        if no_iface && !(cgroup_ingress && self.direction == Direction::Ingress) {
            return Err(Error::input(
                "--iface",
                "give the interface; only `net drop --cgroup/--pid --direction ingress` works \
                 without one",
            ));
        }
        let found = if no_iface {
            Some(0)
        } else {
            netns::within(netns.as_ref(), || netns::ifindex(&self.iface))?
        };
        if found.is_none() {
            let list = match &self.netns {
                Some(ns) => format!("`ip -n {ns} link`"),
                None => "`ip link`".to_string(),
            };
            return Err(Error::input(
                "--iface",
                format!(
                    "no interface '{}' in that network namespace; list them with {list}",
                    self.iface
                ),
            ));
        }
        if let Some(loss) = self.loss {
            if self.action == Action::Drop {
                return Err(Error::input(
                    "--loss",
                    "drop already drops: set its probability with --percent",
                ));
            }
            crate::units::check_injects(loss, "--loss")?;
        }
        crate::units::check_injects(self.percent, "--percent")?;
        let has_ports = self.sport.is_some() || self.dport.is_some();
        if has_ports && self.protocol == Some(Protocol::Icmp) {
            return Err(Error::input(
                "--sport/--dport",
                "ICMP has no ports; drop the port filter or use --protocol tcp|udp",
            ));
        }
        guards::check_duration(self.duration, self.controls.force)?;
        let (delay_ns, jitter_ns) = match self.action {
            Action::Drop | Action::Duplicate | Action::Corrupt { .. } => (0, 0),
            Action::Rate {
                bits_per_sec,
                horizon,
            } => {
                if self.percent != Percent::ALL {
                    return Err(Error::input(
                        "--percent",
                        "a rate limit applies to every matching packet; narrow it with the \
                         filters (--protocol, --dst, --dport, --cgroup) instead",
                    ));
                }
                if !(8_000..=100_000_000_000).contains(&bits_per_sec) {
                    return Err(Error::input("--rate", "use a rate from 8kbit to 100gbit"));
                }
                if horizon < Duration::from_millis(1) || horizon > Duration::from_secs(10) {
                    return Err(Error::input(
                        "--horizon",
                        "use a horizon from 1ms to 10s (fq drops packets due later than 10s)",
                    ));
                }
                self.egress_only("rate")?;
                (0, 0)
            }
            Action::Delay {
                latency,
                jitter,
                distribution,
                ..
            } => {
                if jitter.is_zero()
                    && (distribution == Distribution::Normal || self.correlation.is_some())
                {
                    return Err(Error::input(
                        "--jitter",
                        "--distribution normal and --correlation shape the jitter: give \
                         --jitter too, e.g. --jitter 20ms",
                    ));
                }
                if latency.is_zero() || latency > Duration::from_secs(10) {
                    return Err(Error::input(
                        "--latency",
                        "use a delay from 1ms to 10s (fq drops packets due later than 10s)",
                    ));
                }
                if jitter > latency {
                    return Err(Error::input(
                        "--jitter",
                        "jitter is +- around the latency: use at most --latency",
                    ));
                }
                self.egress_only("delay")?;
                (latency.as_nanos() as u64, jitter.as_nanos() as u64)
            }
        };
        if !no_iface {
            guards::check_iface(&self.iface, netns.as_ref(), self.controls.force)?;
        }
        let cgroup = self.target.as_ref().map(Target::resolve).transpose()?;
        if let Some(cg) = &cgroup {
            guards::check_cgroup(cg, "--cgroup/--pid", self.controls.force)?;
        }
        if cgroup_ingress && self.action != Action::Drop {
            return Err(Error::input(
                "--direction",
                "arriving packets can be scoped to a cgroup for drop only (cgroup_skb programs \
                 can only pass or drop; at TC ingress a packet has no socket yet); scope this \
                 fault by sender with --direction egress, or filter arriving traffic by \
                 --dst/--dport without --cgroup/--pid",
            ));
        }
        let (cgroup_id, cgroup_level) = cgroup.as_ref().map_or((0, 0), |c| (c.id, c.level));
        for (flag, set) in [("--src", &self.src), ("--dst", &self.dst)] {
            if set.len() > MAX_PREFIXES as usize {
                return Err(Error::input(
                    flag,
                    format!(
                        "{} prefixes given; use at most {MAX_PREFIXES} (merge adjacent ones)",
                        set.len()
                    ),
                ));
            }
        }
        // One prefix is compared inline; several are looked up in an LPM trie.
        let cidr = |set: &[IpNet]| match set {
            [] => Cidr::ANY,
            [one] => cidr::to_kernel(one),
            _ => Cidr {
                family: FAMILY_SET,
                ..Cidr::ANY
            },
        };
        let rule = NetRule {
            deadline_ns: 0,
            cgroup_id,
            threshold: self.percent.threshold(),
            src: cidr(&self.src),
            dst: cidr(&self.dst),
            sport: self.sport.unwrap_or(PortRange::ANY),
            dport: self.dport.unwrap_or(PortRange::ANY),
            cgroup_level,
            protocol: Protocol::code(self.protocol),
            action: match self.action {
                Action::Drop => ACTION_DROP,
                Action::Delay { reorder: false, .. } => ACTION_DELAY,
                Action::Delay { reorder: true, .. } => ACTION_REORDER,
                Action::Duplicate => ACTION_DUPLICATE,
                Action::Corrupt { .. } => ACTION_CORRUPT,
                Action::Rate { .. } => ACTION_RATE,
            },
            flags: self.controls.flags(),
            opts: match self.action {
                Action::Corrupt {
                    keep_checksum: true,
                } => OPT_KEEP_CSUM,
                Action::Delay {
                    distribution: Distribution::Normal,
                    ..
                } => OPT_NORMAL,
                _ => 0,
            } | peer(self.direction),
            fault_id: controls::new_fault_id(),
            sample: self.controls.events_sample,
            delay_ns,
            jitter_ns,
            correlation: self.correlation.map_or(0, Percent::threshold),
            ns_per_byte_q16: match self.action {
                // 8e9 ns per byte at 1 bit/s, scaled by 2^16.
                Action::Rate { bits_per_sec, .. } => {
                    ((8_000_000_000u128 << 16) / bits_per_sec as u128) as u64
                }
                _ => 0,
            },
            horizon_ns: match self.action {
                Action::Rate { horizon, .. } => horizon.as_nanos() as u64,
                _ => 0,
            },
            loss: self.loss.map_or(0, Percent::threshold),
            redirect_ifindex: 0,
            rules: 0,
        };
        // With a cgroup, ingress is the cgroup_skb program, not a TC hook.
        let hooks = match (cgroup_ingress, self.direction) {
            (true, Direction::Both) => &[Direction::Egress][..],
            (true, _) => &[][..],
            (false, d) => d.hooks(),
        };
        let set = |v: &Vec<IpNet>| if v.len() > 1 { v.clone() } else { Vec::new() };
        let delaying = matches!(self.action, Action::Delay { .. } | Action::Rate { .. });
        Ok(NetPlan {
            ifb: delaying && hooks.contains(&Direction::Ingress),
            src_set: set(&self.src),
            dst_set: set(&self.dst),
            iface: self.iface.clone(),
            netns,
            hooks,
            cgroup_ingress,
            cgroup,
            rule,
            duration: self.duration,
            attach: self.attach,
            controls: self.controls.clone(),
            detail: self.describe(),
            fault: match self.action {
                Action::Drop => "net drop",
                Action::Delay { reorder: false, .. } => "net delay",
                Action::Delay { reorder: true, .. } => "net reorder",
                Action::Duplicate => "net duplicate",
                Action::Corrupt { .. } => "net corrupt",
                Action::Rate { .. } => "net rate",
            },
        })
    }
}

/// `--direction both` describes one conversation: the rule's destination is the peer going
/// out and its source coming in (the kernel swaps an arriving packet's ends, OPT_PEER), so
/// `--dst 10.0.0.2 --dport 5432` cuts both halves of the talk with 10.0.0.2:5432.
fn peer(direction: Direction) -> u8 {
    if direction == Direction::Both {
        OPT_PEER
    } else {
        0
    }
}
