//! Blast-radius guards: refuse, unless --force, targets whose failure takes the node or the
//! operator down with it. Each refusal says why and how to override.

use crate::{
    cgroup::Cgroup,
    error::{Error, Result},
    netns::{self, Netns},
};
use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::Duration,
};

pub const LONGEST_UNFORCED: Duration = Duration::from_secs(24 * 3600);

fn refuse(flag: &'static str, why: String) -> Error {
    Error::input(flag, format!("{why}; refusing without --force"))
}

/// The cgroup v2 path of a process, as /proc/PID/cgroup shows it (`0::/a/b`).
fn cgroup_of(pid: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| PathBuf::from(p.trim()))
}

/// Whether `target` is `member` or one of its ancestors (paths relative to the v2 root).
fn contains(target: &std::path::Path, member: &std::path::Path) -> bool {
    member.starts_with(target)
}

pub fn check_cgroup(cg: &Cgroup, flag: &'static str, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    if cg.is_root() {
        return Err(refuse(
            flag,
            "that is the root cgroup: every process on the node".into(),
        ));
    }
    let mount = crate::cgroup::v2_mount()?;
    let rel = PathBuf::from("/").join(cg.path.strip_prefix(&mount).unwrap_or(&cg.path));
    if cgroup_of("1").is_some_and(|p| contains(&rel, &p)) {
        return Err(refuse(
            flag,
            format!("{} contains PID 1 (init): the whole system", rel.display()),
        ));
    }
    if cgroup_of("self").is_some_and(|p| contains(&rel, &p)) {
        return Err(refuse(
            flag,
            format!(
                "{} contains chaos itself: the fault would hit the tool and its session",
                rel.display()
            ),
        ));
    }
    Ok(())
}

pub fn check_duration(d: Duration, force: bool) -> Result<()> {
    if d > LONGEST_UNFORCED && !force {
        return Err(refuse(
            "--duration",
            format!("{}s is longer than 24h", d.as_secs()),
        ));
    }
    Ok(())
}

/// Refuses the interface that carries the default route or the caller's SSH connection (as
/// seen in the interface's network namespace).
pub fn check_iface(iface: &str, netns: Option<&Netns>, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let ssh_client = std::env::var("SSH_CONNECTION").ok().and_then(|s| {
        s.split_whitespace()
            .next()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
    });
    let routes = netns::within(netns, read_routes)?;
    if routes.iter().any(|r| r.prefix == 0 && r.iface == iface) {
        return Err(refuse(
            "--iface",
            format!("{iface} carries the default route: the node's way out"),
        ));
    }
    if let Some(client) = ssh_client
        && lookup(&routes, client).is_some_and(|r| r.iface == iface)
    {
        return Err(refuse(
            "--iface",
            format!("{iface} carries your SSH connection (from {client})"),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
struct Route {
    dest: IpAddr,
    prefix: u8,
    iface: String,
}

/// The routing tables of the calling thread's namespace (main table, IPv4 and IPv6).
fn read_routes() -> Vec<Route> {
    let v4 = fs::read_to_string("/proc/thread-self/net/route").unwrap_or_default();
    let v6 = fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap_or_default();
    let mut routes = parse_v4(&v4);
    routes.extend(parse_v6(&v6));
    routes
}

fn parse_v4(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = |s: &str| u32::from_str_radix(s, 16).ok();
            // Addresses are printed as the host-order view of network-order bytes.
            let dest = Ipv4Addr::from(hex(f.get(1)?)?.to_le_bytes());
            let mask = hex(f.get(7)?)?.count_ones() as u8;
            Some(Route {
                dest: IpAddr::V4(dest),
                prefix: mask,
                iface: f[0].to_string(),
            })
        })
        .collect()
}

fn parse_v6(text: &str) -> Vec<Route> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u128::from_str_radix(f.first()?, 16).ok()?;
            let prefix = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let iface = f.get(9)?.to_string();
            // Reject routes (the kernel's default "unreachable" entries) sit on lo.
            (iface != "lo").then(|| Route {
                dest: IpAddr::V6(Ipv6Addr::from(dest)),
                prefix,
                iface,
            })
        })
        .collect()
}

/// Longest-prefix match.
fn lookup(routes: &[Route], ip: IpAddr) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| match (r.dest, ip) {
            (IpAddr::V4(d), IpAddr::V4(a)) => {
                let m = if r.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - r.prefix as u32)
                };
                u32::from(d) & m == u32::from(a) & m
            }
            (IpAddr::V6(d), IpAddr::V6(a)) => {
                let m = if r.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - r.prefix as u32)
                };
                u128::from(d) & m == u128::from(a) & m
            }
            _ => false,
        })
        .max_by_key(|r| r.prefix)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic")]
mod tests {
    use super::*;

    const V4: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        veth1\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
    const V6: &str = "fd770000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 veth1\n\
        00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";

    #[test]
    fn routes_parse_and_match_longest_prefix() {
        let mut r = parse_v4(V4);
        r.extend(parse_v6(V6));
        assert_eq!(r.len(), 4, "the lo reject route is skipped: {r:?}");
        assert_eq!(r[0].prefix, 0);
        assert_eq!(
            lookup(&r, "10.77.0.9".parse().unwrap()).map(|r| r.iface.as_str()),
            Some("veth1")
        );
        assert_eq!(
            lookup(&r, "192.0.2.44".parse().unwrap()).map(|r| r.prefix),
            Some(24)
        );
        assert_eq!(
            lookup(&r, "8.8.8.8".parse().unwrap()).map(|r| r.iface.as_str()),
            Some("eth0")
        );
        assert_eq!(
            lookup(&r, "fd77::5".parse().unwrap()).map(|r| r.iface.as_str()),
            Some("veth1")
        );
        assert_eq!(lookup(&r, "2001:db8::1".parse().unwrap()), None);
    }

    #[test]
    fn containment_is_by_path_prefix() {
        assert!(contains(
            std::path::Path::new("/a"),
            std::path::Path::new("/a/b")
        ));
        assert!(contains(
            std::path::Path::new("/a"),
            std::path::Path::new("/a")
        ));
        assert!(!contains(
            std::path::Path::new("/a"),
            std::path::Path::new("/ab")
        ));
    }

    #[test]
    fn long_durations_need_force() {
        assert!(check_duration(Duration::from_secs(25 * 3600), false).is_err());
        assert!(check_duration(Duration::from_secs(25 * 3600), true).is_ok());
        assert!(check_duration(Duration::from_secs(3600), false).is_ok());
    }
}
