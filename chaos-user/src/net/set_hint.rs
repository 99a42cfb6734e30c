//! The first stage in front of a rule's prefix trie: which values of an address's first 16 bits
//! some prefix of the set can hold (`chaos_common::filter::hint_bit`), so that most misses
//! never reach the trie.

use chaos_common::filter::{FAMILY_V4, FAMILY_V6, hint_bit, lpm_data};
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

/// The LPM trie key of `net` for rule `slot`: (prefix length in bits, data), as the kernel
/// looks addresses up (`lpm_data` with 160 bits).
pub fn trie_key(slot: u32, net: &IpNet) -> (u32, [u32; 5]) {
    let c = crate::cidr::to_kernel(net);
    (
        32 + u32::from(net.prefix_len()),
        lpm_data(slot, c.family, &c.addr),
    )
}

/// Inclusive ranges of first-16-bit values, per packet family, of the addresses `net` holds
/// (families never cross: see `lpm_data`).
fn ranges(net: &IpNet) -> Vec<(u8, u16, u16)> {
    match net {
        IpNet::V4(n) => {
            let (lo, hi) = span(u32::from(n.network()), n.prefix_len());
            vec![(FAMILY_V4, lo, hi)]
        }
        IpNet::V6(n) => {
            let p = u128::from(n.network());
            let (lo, hi) = span((p >> 96) as u32, n.prefix_len().min(32));
            vec![(FAMILY_V6, lo, hi)]
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
    use crate::cidr::{packet_words, to_kernel};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const SLOT: u32 = 3;

    /// The trie's answer for `a`, from the keys fill_set stores: some key's first `len` bits
    /// equal the lookup's (a longest-prefix match finds a key exactly when one covers it).
    fn trie_holds(set: &[IpNet], a: IpAddr) -> bool {
        let (family, words) = packet_words(a);
        let bytes = |d: [u32; 5]| -> Vec<u8> { d.iter().flat_map(|w| w.to_ne_bytes()).collect() };
        let look = bytes(lpm_data(SLOT, family, &words));
        set.iter().any(|net| {
            let (len, data) = trie_key(SLOT, net);
            let key = bytes(data);
            (0..len as usize).all(|b| (key[b / 8] ^ look[b / 8]) & (0x80 >> (b % 8)) == 0)
        })
    }

    fn hint_holds(words: &BTreeMap<u32, u64>, dst: bool, a: IpAddr) -> bool {
        let (family, w) = packet_words(a);
        let bit = hint_bit(SLOT, dst, family, w[0]);
        words
            .get(&(bit >> 6))
            .is_some_and(|w| w & (1 << (bit & 63)) != 0)
    }

    /// What the kernel's set path answers: the first stage, then the trie.
    fn set_path(set: &[IpNet], a: IpAddr) -> bool {
        hint_holds(&words(SLOT, true, set), true, a) && trie_holds(set, a)
    }

    /// What the single-prefix path answers, prefix by prefix (chaos_common's Cidr::matches).
    fn single_path(set: &[IpNet], a: IpAddr) -> bool {
        let (family, w) = packet_words(a);
        set.iter().any(|n| to_kernel(n).matches(family, &w))
    }

    fn prefix() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(a, l)| IpNet::new(Ipv4Addr::from(a).into(), l)
                .expect("valid")
                .trunc()),
            (any::<u128>(), 0u8..=128).prop_map(|(a, l)| IpNet::new(Ipv6Addr::from(a).into(), l)
                .expect("valid")
                .trunc()),
            // Around the IPv4-mapped range, where the families once crossed.
            (any::<u32>(), 0u8..=128).prop_map(|(a, l)| {
                let mapped = Ipv4Addr::from(a).to_ipv6_mapped();
                IpNet::new(mapped.into(), l).expect("valid").trunc()
            }),
        ]
    }

    /// An address: random of either family, IPv4-mapped, or inside one of `set`.
    fn address(set: Vec<IpNet>) -> impl Strategy<Value = (Vec<IpNet>, IpAddr)> {
        let n = set.len();
        (Just(set), 0..n, any::<u128>(), 0u8..4).prop_map(|(set, i, r, kind)| {
            let a = match kind {
                0 => IpAddr::V4(Ipv4Addr::from(r as u32)),
                1 => IpAddr::V6(Ipv6Addr::from(r)),
                2 => IpAddr::V6(Ipv4Addr::from(r as u32).to_ipv6_mapped()),
                _ => match set[i] {
                    IpNet::V4(p) => {
                        let host = (r as u32) & !u32::from(p.netmask());
                        IpAddr::V4((u32::from(p.network()) | host).into())
                    }
                    IpNet::V6(p) => {
                        let host = r & !u128::from(p.netmask());
                        IpAddr::V6((u128::from(p.network()) | host).into())
                    }
                },
            };
            (set, a)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]

        /// One prefix or many, a packet gets the same answer: the set path (first stage and
        /// trie, as the kernel walks them) equals the single-prefix path over the same prefixes.
        #[test]
        fn a_set_answers_as_its_prefixes_do(
            (set, a) in prop::collection::vec(prefix(), 1..6).prop_flat_map(address)
        ) {
            prop_assert_eq!(set_path(&set, a), single_path(&set, a), "{:?} {}", set, a);
        }
    }

    /// Families never cross, in either path (the trie once held IPv4 as ::ffff:a.b.c.d).
    #[test]
    fn families_never_cross() {
        let set: Vec<IpNet> = ["::/0", "::ffff:0:0/96"]
            .map(|s| s.parse().expect("prefix"))
            .to_vec();
        let v4: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(!set_path(&set, v4) && !single_path(&set, v4));
        let set: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("prefix")];
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert!(!set_path(&set, mapped) && !single_path(&set, mapped));
    }

    /// The stage does filter: most addresses far from every prefix never reach the trie.
    #[test]
    fn the_first_stage_settles_most_misses() {
        let set: Vec<IpNet> = [
            "10.1.0.0/16",
            "192.168.7.0/24",
            "2001:db8::/32",
            "fe80::/10",
        ]
        .map(|s| s.parse().expect("prefix"))
        .to_vec();
        let words = words(SLOT, true, &set);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut settled = 0;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = IpAddr::V4(Ipv4Addr::from(x as u32));
            settled += !hint_holds(&words, true, a) as u32;
            assert!(
                !hint_holds(&words, false, a),
                "the other side has no prefixes"
            );
        }
        assert!(
            settled > 99_000,
            "the stage settles too few misses: {settled}"
        );
    }

    #[test]
    fn spans() {
        assert_eq!(span(0x0a01_0000, 16), (0x0a01, 0x0a01));
        assert_eq!(span(0x0a01_0203, 32), (0x0a01, 0x0a01));
        assert_eq!(span(0xac10_0000, 12), (0xac10, 0xac1f));
        assert_eq!(span(0, 0), (0, 0xffff));
        assert_eq!(
            ranges(&"::/0".parse().expect("a prefix")),
            vec![(FAMILY_V6, 0, 0xffff)]
        );
    }
}
