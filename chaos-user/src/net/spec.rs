//! What a packet fault asks for (`NetSpec`, built by the CLI and by experiment files), and the
//! checks that need nothing but the spec itself: every input error that can be named without
//! looking at the system is found here, before any lookup.

use crate::{
    controls::Controls,
    error::{Error, Result},
    guards,
    target::Target,
    units::Percent,
};
use chaos_common::{PortRange, filter::MAX_PREFIXES};
use ipnet::IpNet;
use std::time::Duration;

use super::AttachMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
}

/// How delay jitter is drawn (netem's `distribution`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Turn matching TCP segments into resets: the receiver drops the connection (ECONNRESET).
    Reset,
    /// Answer DNS queries for the spec's names with this RCODE (NXDOMAIN, SERVFAIL, REFUSED).
    Dns {
        rcode: u8,
    },
}

impl Action {
    /// Where the fault applies when no direction is given: drop is silent "wire" loss at
    /// ingress; delay, rate and anything scoped to a cgroup work at egress (packets are matched
    /// to their sender's socket there).
    pub fn default_direction(self, scoped: bool) -> Direction {
        if scoped
            || matches!(
                self,
                Action::Delay { .. } | Action::Rate { .. } | Action::Dns { .. }
            )
        {
            Direction::Egress
        } else {
            Direction::Ingress
        }
    }

    /// The command that asks for it: "net drop", "net delay", ...
    pub fn fault_name(self) -> &'static str {
        match self {
            Action::Drop => "net drop",
            Action::Delay { reorder: false, .. } => "net delay",
            Action::Delay { reorder: true, .. } => "net reorder",
            Action::Duplicate => "net duplicate",
            Action::Corrupt { .. } => "net corrupt",
            Action::Rate { .. } => "net rate",
            Action::Reset => "net reset",
            Action::Dns { .. } => "net dns",
        }
    }

    pub(super) fn describe(self) -> String {
        match self {
            Action::Drop => "drop".into(),
            Action::Duplicate => "duplicate".into(),
            Action::Reset => "reset (as TCP RST)".into(),
            Action::Dns { rcode } => format!("answer {}", super::dns::rcode_name(rcode)),
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
    /// dns: the name patterns answered (empty: every name).
    pub names: Vec<String>,
}

impl NetSpec {
    pub(super) fn describe(&self) -> String {
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
        let what = match self.action {
            Action::Dns { .. } => format!(
                "{} to {} of DNS queries for {} ({})",
                self.action.describe(),
                self.percent,
                if self.names.is_empty() {
                    "any name".to_string()
                } else {
                    self.names.join(", ")
                },
                self.packets()
            ),
            _ => format!(
                "{} {} of {}",
                self.action.describe(),
                self.percent,
                self.packets()
            ),
        };
        if self.iface.is_empty() {
            return format!("{dry}{what} arriving at sockets of the cgroup");
        }
        let loss = self
            .loss
            .map_or(String::new(), |l| format!(", and drop {l} of them"));
        format!(
            "{dry}{what}{loss} on {}{ns} ({})",
            self.iface,
            format!("{:?}", self.direction).to_lowercase()
        )
    }

    /// "packets", or "packets (udp, dst 10.0.0.0/8, dport 53, cgroup app)": the filters, so
    /// that the rules of a set and the faults of `chaos status` can be told apart.
    fn packets(&self) -> String {
        let nets = |side: &str, v: &[IpNet]| match v {
            [] => None,
            [one] => Some(format!("{side} {one}")),
            many => Some(format!("{side} one of {} prefixes", many.len())),
        };
        let port = |side: &str, p: Option<PortRange>| {
            p.map(|p| match p.lo == p.hi {
                true => format!("{side} {}", p.lo),
                false => format!("{side} {}-{}", p.lo, p.hi),
            })
        };
        let filters: Vec<String> = [
            self.protocol.map(|p| format!("{p:?}").to_lowercase()),
            nets("src", &self.src),
            nets("dst", &self.dst),
            port("sport", self.sport),
            port("dport", self.dport),
            self.target.as_ref().map(|t| match t {
                Target::Cgroup(c) => format!("cgroup {c}"),
                Target::Pid(p) => format!("cgroup of pid {p}"),
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        if filters.is_empty() {
            "packets".into()
        } else {
            format!("packets ({})", filters.join(", "))
        }
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

    /// Whether arriving traffic is scoped to a cgroup: dropped by a cgroup_skb program on the
    /// cgroup (at TC ingress a packet has no socket yet), which needs no interface.
    pub(super) fn cgroup_ingress(&self) -> bool {
        self.target.is_some() && self.direction != Direction::Egress
    }

    /// The checks that need only the spec, in the order a user meets them; errors name the
    /// flag (the experiment file's key is derived from it).
    pub fn check(&self) -> Result<()> {
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
        if self.iface.is_empty() && !(self.cgroup_ingress() && self.direction == Direction::Ingress)
        {
            return Err(Error::input(
                "--iface",
                "give the interface; only `net drop --cgroup/--pid --direction ingress` works \
                 without one",
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
        self.check_action()?;
        if self.cgroup_ingress() && self.action != Action::Drop {
            return Err(Error::input(
                "--direction",
                "arriving packets can be scoped to a cgroup for drop only (cgroup_skb programs \
                 can only pass or drop; at TC ingress a packet has no socket yet); scope this \
                 fault by sender with --direction egress, or filter arriving traffic by \
                 --dst/--dport without --cgroup/--pid",
            ));
        }
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
        Ok(())
    }

    /// The action's own parameters.
    fn check_action(&self) -> Result<()> {
        match self.action {
            Action::Drop | Action::Duplicate | Action::Corrupt { .. } => Ok(()),
            Action::Reset if self.protocol != Some(Protocol::Tcp) => Err(Error::input(
                "--protocol",
                "reset acts on TCP connections: give --protocol tcp (other packets would pass \
                 and count as reset)",
            )),
            Action::Reset => Ok(()),
            Action::Dns { .. } => {
                if self.direction != Direction::Egress {
                    return Err(Error::input(
                        "--direction",
                        "DNS queries are answered as they leave (the resolver never sees them): \
                         use --direction egress or leave it out",
                    ));
                }
                if self.protocol == Some(Protocol::Icmp) {
                    return Err(Error::input("--protocol", "DNS runs over udp or tcp"));
                }
                super::dns::keys(&self.names).map(|_| ())
            }
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
                self.egress_only("rate")
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
                self.egress_only("delay")
            }
        }
    }
}
