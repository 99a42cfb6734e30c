//! The first stage in front of a rule's prefix trie: which values of an address's first 16 bits
//! some prefix of the set can hold (`chaos_common::filter::hint_bit`), so that most misses
//! never reach the trie.

use chaos_common::filter::{FAMILY_V4, FAMILY_V6, hint_bit};
use ipnet::IpNet;
use std::collections::BTreeMap;

/// The bits of one side of rule `slot` for `set`, as (word index, bits to set).
pub fn words(slot: u32, dst: bool, set: &[IpNet]) -> BTreeMap<u32, u64> {
    let mut words = BTreeMap::new();
    for net in set {
        for (family, lo, hi) in ranges(net) {
            for v in lo..=hi {
                let bit = hint_bit(slot, dst, family, (u32::from(v) << 16).to_be());
                *words.entry(bit >> 6).or_insert(0u64) |= 1 << (bit & 63);
            }
        }
    }
    words
}

/// Inclusive ranges of first-16-bit values, per packet family, of the addresses `net` holds.
/// The trie stores IPv4 as ::ffff:a.b.c.d, so an IPv6 prefix spanning that range holds IPv4
/// packets too, and an IPv4 prefix holds IPv4-mapped IPv6 addresses (first 16 bits zero).
fn ranges(net: &IpNet) -> Vec<(u8, u16, u16)> {
    match net {
        IpNet::V4(n) => {
            let (lo, hi) = span(u32::from(n.network()), n.prefix_len());
            vec![(FAMILY_V4, lo, hi), (FAMILY_V6, 0, 0)]
        }
        IpNet::V6(n) => {
            let p = u128::from(n.network());
            let len = n.prefix_len();
            let (lo, hi) = span((p >> 96) as u32, len.min(32));
            let mut r = vec![(FAMILY_V6, lo, hi)];
            const MAPPED: u128 = 0xffff << 32;
            if len <= 96 {
                if len == 0 || (p ^ MAPPED) >> (128 - u32::from(len)) == 0 {
                    r.push((FAMILY_V4, 0, u16::MAX));
                }
            } else if p >> 32 == 0xffff {
                let (lo, hi) = span(p as u32, len - 96);
                r.push((FAMILY_V4, lo, hi));
            }
            r
        }
    }
}

/// The first-16-bit values of a 32-bit prefix `addr`/`len`.
fn span(addr: u32, len: u8) -> (u16, u16) {
    let top = (addr >> 16) as u16;
    if len >= 16 {
        return (top, top);
    }
    let width = 1u32 << (16 - len);
    let lo = u32::from(top) & !(width - 1);
    (lo as u16, (lo + width - 1) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};

    /// The trie's view: both families as 128-bit addresses, IPv4 mapped.
    fn mapped(a: IpAddr) -> u128 {
        match a {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn trie_holds(net: &IpNet, a: IpAddr) -> bool {
        let (p, len) = match net {
            IpNet::V4(n) => (
                mapped(IpAddr::V4(n.network())),
                96 + u32::from(n.prefix_len()),
            ),
            IpNet::V6(n) => (u128::from(n.network()), u32::from(n.prefix_len())),
        };
        len == 0 || (p ^ mapped(a)) >> (128 - len) == 0
    }

    fn hint_holds(words: &BTreeMap<u32, u64>, dst: bool, a: IpAddr) -> bool {
        let (family, addr0) = match a {
            IpAddr::V4(a) => (FAMILY_V4, u32::from(a).to_be()),
            IpAddr::V6(a) => (FAMILY_V6, ((u128::from(a) >> 96) as u32).to_be()),
        };
        let bit = hint_bit(3, dst, family, addr0);
        words
            .get(&(bit >> 6))
            .is_some_and(|w| w & (1 << (bit & 63)) != 0)
    }

    /// No false negative: every address some prefix holds has its bit set; and the stage does
    /// filter: addresses far from every prefix are settled by it.
    #[test]
    fn every_held_address_passes_the_hint() {
        let nets: Vec<IpNet> = [
            "10.1.0.0/16",
            "192.168.7.0/24",
            "172.16.0.0/12",
            "8.8.8.8/32",
            "2001:db8::/32",
            "fd00:1::/48",
            "::ffff:100.64.0.0/106",
            "fe80::/10",
        ]
        .iter()
        .map(|s| s.parse().expect("a prefix"))
        .collect();
        let words = words(3, true, &nets);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut held, mut settled) = (0, 0);
        for _ in 0..200_000 {
            let net = &nets[(next() % nets.len() as u64) as usize];
            // An address inside `net` half of the time, a random one otherwise.
            let a = match net {
                IpNet::V4(n) if next() % 2 == 0 => {
                    let host = (next() as u32) & !u32::from(n.netmask());
                    IpAddr::V4((u32::from(n.network()) | host).into())
                }
                IpNet::V6(n) if next() % 2 == 0 => {
                    let r = u128::from(next()) << 64 | u128::from(next());
                    let host = r & !u128::from(n.netmask());
                    IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
                }
                IpNet::V4(_) => IpAddr::V4((next() as u32).into()),
                IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::from(next()) << 64)),
            };
            let in_set = nets.iter().any(|n| trie_holds(n, a));
            let passes = hint_holds(&words, true, a);
            assert!(
                !in_set || passes,
                "{a} is in the set but its hint bit is clear"
            );
            held += in_set as u32;
            settled += !passes as u32;
            // The other side of the same slot has no prefixes.
            assert!(!hint_holds(&words, false, a));
        }
        assert!(held > 50_000, "the sample holds too few members: {held}");
        assert!(
            settled > 50_000,
            "the hint settles too few misses: {settled}"
        );
    }

    #[test]
    fn spans() {
        assert_eq!(span(0x0a01_0000, 16), (0x0a01, 0x0a01));
        assert_eq!(span(0x0a01_0203, 32), (0x0a01, 0x0a01));
        assert_eq!(span(0xac10_0000, 12), (0xac10, 0xac1f));
        assert_eq!(span(0, 0), (0, 0xffff));
        // An IPv6 prefix spanning ::ffff:0:0/96 holds every IPv4 address.
        assert!(ranges(&"::/0".parse().expect("a prefix")).contains(&(FAMILY_V4, 0, 0xffff)));
        assert!(
            !ranges(&"2001::/16".parse().expect("a prefix"))
                .iter()
                .any(|r| r.0 == FAMILY_V4)
        );
    }
}
