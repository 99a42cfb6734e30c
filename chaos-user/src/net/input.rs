//! A packet fault as users write it: `NetFaultSpec` is the experiment file's `net:` entry, and
//! `chaos net ACTION` builds the same value from its flags, so that `into_spec` is the one place
//! where defaults are applied and where options that do not fit the action are refused.

use super::{Action, AttachMode, Direction, Distribution, NetSpec, Protocol};
use crate::{
    controls::Controls,
    error::{Error, Result},
    scalar::{Cidr, Dur, OneOrMany, Pct, Ports, Rate, Text},
    target::Target,
    units::Percent,
};
use std::time::Duration;

/// The actions by their command names (`chaos net drop`, `action: drop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetAction {
    Drop,
    Delay,
    Reorder,
    Duplicate,
    Corrupt,
    Rate,
    Reset,
    Dns,
}

/// `chaos net ACTION` options, by the same names (dashes become underscores). Every field but
/// `action` may be left out; `into_spec` documents the defaults.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetFaultSpec {
    pub action: NetAction,
    pub iface: Option<String>,
    pub netns: Option<String>,
    pub direction: Option<Direction>,
    pub percent: Option<Pct>,
    pub correlation: Option<Pct>,
    /// Extra drop on top of the action.
    pub loss: Option<Pct>,
    pub protocol: Option<Protocol>,
    #[serde(default)]
    pub src: OneOrMany<Cidr>,
    #[serde(default)]
    pub dst: OneOrMany<Cidr>,
    pub sport: Option<Ports>,
    pub dport: Option<Ports>,
    pub latency: Option<Dur>,
    pub jitter: Option<Dur>,
    pub distribution: Option<Distribution>,
    #[serde(default)]
    pub keep_checksum: bool,
    pub rate: Option<Rate>,
    pub horizon: Option<Dur>,
    /// Fault every matching packet on the interface, not only the target's.
    #[serde(default)]
    pub whole_interface: bool,
    pub tc_attach: Option<AttachMode>,
    /// dns: the answer (NXDOMAIN, SERVFAIL, REFUSED) and the names it is given for (none:
    /// every name).
    pub rcode: Option<Text>,
    #[serde(default)]
    pub name: OneOrMany<String>,
}

/// `--horizon`'s default: packets due more than 1 s ahead are dropped (fq's own horizon is 10 s;
/// a second bounds the queue a limited flow can build).
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(1);

impl NetFaultSpec {
    /// An action with every option left to its default.
    pub fn new(action: NetAction) -> Self {
        Self {
            action,
            iface: None,
            netns: None,
            direction: None,
            percent: None,
            correlation: None,
            loss: None,
            protocol: None,
            src: OneOrMany::default(),
            dst: OneOrMany::default(),
            sport: None,
            dport: None,
            latency: None,
            jitter: None,
            distribution: None,
            keep_checksum: false,
            rate: None,
            horizon: None,
            whole_interface: false,
            tc_attach: None,
            rcode: None,
            name: OneOrMany::default(),
        }
    }

    /// The spec with its defaults: `percent` 100, `jitter` 0, `distribution` uniform, `horizon`
    /// 1 s, `tc_attach` auto, `direction` as `Action::default_direction` says; `target` applies
    /// unless `whole_interface`. Errors (`Error::Input`, named by flag) for options the action
    /// does not take and for a delay without latency or a rate without bandwidth.
    pub fn into_spec(
        self,
        target: Option<Target>,
        duration: Duration,
        controls: Controls,
    ) -> Result<NetSpec> {
        let action = self.action()?;
        let target = target.filter(|_| !self.whole_interface);
        let names = self.name.into_vec();
        Ok(NetSpec {
            action,
            iface: self.iface.unwrap_or_default(),
            netns: self.netns,
            direction: self
                .direction
                .unwrap_or(action.default_direction(target.is_some())),
            percent: self.percent.map_or(Percent::ALL, |p| p.0),
            correlation: self.correlation.map(|p| p.0),
            loss: self.loss.map(|p| p.0),
            protocol: self.protocol,
            src: self.src.into_vec().into_iter().map(|c| c.0).collect(),
            dst: self.dst.into_vec().into_iter().map(|c| c.0).collect(),
            sport: self.sport.map(|p| p.0),
            dport: self.dport.map(|p| p.0),
            target,
            duration,
            attach: self.tc_attach.unwrap_or_default(),
            controls,
            names,
        })
    }

    fn action(&self) -> Result<Action> {
        let delay_like = matches!(self.action, NetAction::Delay | NetAction::Reorder);
        if !delay_like
            && (self.latency.is_some() || self.jitter.is_some() || self.distribution.is_some())
        {
            return Err(Error::input(
                "--latency",
                "only delay and reorder take latency/jitter/distribution",
            ));
        }
        if self.action != NetAction::Rate && (self.rate.is_some() || self.horizon.is_some()) {
            return Err(Error::input(
                "--rate",
                "only the rate action takes rate/horizon",
            ));
        }
        if self.action != NetAction::Dns && (self.rcode.is_some() || !self.name.is_empty()) {
            return Err(Error::input("--rcode", "only dns takes rcode/name"));
        }
        if self.action != NetAction::Corrupt && self.keep_checksum {
            return Err(Error::input(
                "--keep-checksum",
                "only corrupt takes keep_checksum",
            ));
        }
        Ok(match self.action {
            NetAction::Drop => Action::Drop,
            NetAction::Duplicate => Action::Duplicate,
            NetAction::Reset => Action::Reset,
            NetAction::Dns => Action::Dns {
                rcode: crate::net::dns::parse_rcode(self.rcode.as_ref().map_or("", |t| &t.0))
                    .map_err(|e| match (&self.rcode, e) {
                        (None, _) => Error::input(
                            "--rcode",
                            "say what the lookups get: --rcode NXDOMAIN, SERVFAIL or REFUSED",
                        ),
                        (Some(_), e) => e,
                    })?,
            },
            NetAction::Corrupt => Action::Corrupt {
                keep_checksum: self.keep_checksum,
            },
            NetAction::Delay | NetAction::Reorder => Action::Delay {
                latency: self
                    .latency
                    .ok_or_else(|| {
                        Error::input("--latency", "delay and reorder need a latency, e.g. 100ms")
                    })?
                    .0,
                jitter: self.jitter.map_or(Duration::ZERO, |d| d.0),
                distribution: self.distribution.unwrap_or_default(),
                reorder: self.action == NetAction::Reorder,
            },
            NetAction::Rate => Action::Rate {
                bits_per_sec: self
                    .rate
                    .ok_or_else(|| Error::input("--rate", "rate needs a bandwidth, e.g. 10mbit"))?
                    .0,
                horizon: self.horizon.map_or(DEFAULT_HORIZON, |d| d.0),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> NetFaultSpec {
        serde_norway::from_str(yaml).expect("parses")
    }

    fn built(yaml: &str, target: Option<Target>) -> Result<NetSpec> {
        spec(yaml).into_spec(target, Duration::from_secs(5), Controls::default())
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let s = built("action: delay\niface: eth0\nlatency: 100ms", None).expect("builds");
        assert_eq!(
            s.action,
            Action::Delay {
                latency: Duration::from_millis(100),
                jitter: Duration::ZERO,
                distribution: Distribution::Uniform,
                reorder: false,
            }
        );
        assert_eq!(s.percent, Percent::ALL);
        assert_eq!(s.direction, Direction::Egress);
        assert_eq!(s.attach, AttachMode::Auto);
        assert!(s.src.is_empty() && s.dst.is_empty() && s.target.is_none());
        let r = built("action: rate\niface: eth0\nrate: 10mbit", None).expect("builds");
        assert_eq!(
            r.action,
            Action::Rate {
                bits_per_sec: 10_000_000,
                horizon: DEFAULT_HORIZON,
            }
        );
    }

    #[test]
    fn direction_follows_the_action_and_the_scope() {
        let drop = built("action: drop\niface: eth0", None).expect("builds");
        assert_eq!(drop.direction, Direction::Ingress);
        let scoped = built("action: drop\niface: eth0", Some(Target::Pid(1))).expect("builds");
        assert_eq!(scoped.direction, Direction::Egress);
        let whole = built(
            "action: drop\niface: eth0\nwhole_interface: true",
            Some(Target::Pid(1)),
        )
        .expect("builds");
        assert!(whole.target.is_none());
        assert_eq!(whole.direction, Direction::Ingress);
    }

    #[test]
    fn options_of_another_action_are_refused_by_flag() {
        for (yaml, flag) in [
            ("action: drop\nlatency: 10ms", "--latency"),
            ("action: corrupt\nhorizon: 1s", "--rate"),
            (
                "action: delay\nlatency: 1ms\nkeep_checksum: true",
                "--keep-checksum",
            ),
            ("action: reorder", "--latency"),
            ("action: rate", "--rate"),
        ] {
            match built(yaml, None) {
                Err(Error::Input { flag: f, .. }) => assert_eq!(f, flag, "{yaml}"),
                other => panic!("{yaml}: {other:?}"),
            }
        }
    }

    #[test]
    fn reorder_is_delay_with_the_flag_set() {
        let s = built(
            "action: reorder\niface: eth0\nlatency: 10ms\npercent: 25",
            None,
        )
        .expect("builds");
        assert!(matches!(s.action, Action::Delay { reorder: true, .. }));
        assert_eq!(s.percent, "25".parse().expect("percent"));
    }
}
