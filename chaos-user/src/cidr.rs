//! CIDR parsing into the kernel's `Cidr` (network-order words plus mask).

use chaos_common::{
    Cidr,
    filter::{FAMILY_V4, FAMILY_V6},
};
use ipnet::IpNet;
use std::net::IpAddr;

/// Parses `10.0.0.0/8`, `fd00::/64`, or a bare address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("'{s}' is not an address or CIDR; use e.g. 10.0.0.0/8, 192.0.2.1 or fd00::/64")
    })
}

/// Prefixes from a file: one address or CIDR per line; blank lines and `#` comments skipped.
/// Errors name the flag, the file and the line.
pub fn read_file(path: &std::path::Path, flag: &'static str) -> crate::Result<Vec<IpNet>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::Error::input(flag, format!("cannot read {}: {e}", path.display())))?;
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let net = parse_cidr(entry).map_err(|m| {
            crate::Error::input(flag, format!("{} line {}: {m}", path.display(), i + 1))
        })?;
        nets.push(net);
    }
    if nets.is_empty() {
        return Err(crate::Error::input(
            flag,
            format!("{} lists no address; one CIDR per line", path.display()),
        ));
    }
    Ok(nets)
}

pub fn to_kernel(net: &IpNet) -> Cidr {
    let mut c = Cidr::ANY;
    match net {
        IpNet::V4(n) => {
            c.family = FAMILY_V4;
            c.addr[0] = u32::from_ne_bytes(n.network().octets());
            c.mask[0] = u32::from_ne_bytes(n.netmask().octets());
        }
        IpNet::V6(n) => {
            c.family = FAMILY_V6;
            let (a, m) = (n.network().octets(), n.netmask().octets());
            for i in 0..4 {
                let w = |b: &[u8; 16]| {
                    u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
                };
                c.addr[i] = w(&a);
                c.mask[i] = w(&m);
            }
        }
    }
    c
}

/// The words a packet carrying `ip` would show the kernel (network byte order in memory).
pub fn packet_words(ip: IpAddr) -> (u8, [u32; 4]) {
    match ip {
        IpAddr::V4(a) => (FAMILY_V4, [u32::from_ne_bytes(a.octets()), 0, 0, 0]),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w =
                |i: usize| u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
            (FAMILY_V6, [w(0), w(1), w(2), w(3)])
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic")]
mod tests {
    use super::*;

    fn hit(cidr: &str, ip: &str) -> bool {
        let c = to_kernel(&parse_cidr(cidr).expect("cidr"));
        let (family, words) = packet_words(ip.parse().expect("ip"));
        c.matches(family, &words)
    }

    #[test]
    fn matching_follows_prefixes() {
        assert!(hit("10.0.0.0/8", "10.200.1.2"));
        assert!(!hit("10.0.0.0/8", "11.0.0.1"));
        assert!(hit("192.0.2.7", "192.0.2.7"));
        assert!(!hit("192.0.2.7", "192.0.2.8"));
        assert!(hit("fd00::/64", "fd00::1234"));
        assert!(!hit("fd00::/64", "fd00:0:0:1::1"));
        assert!(
            !hit("10.0.0.0/8", "::ffff:10.0.0.1"),
            "families never cross"
        );
        assert!(hit("0.0.0.0/0", "203.0.113.9"));
        assert!(Cidr::ANY.matches(FAMILY_V6, &[1, 2, 3, 4]));
    }

    #[test]
    fn host_bits_are_cleared_and_garbage_refused() {
        assert!(hit("10.1.2.3/16", "10.1.99.99"));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("banana").unwrap_err().contains("10.0.0.0/8"));
    }
}
