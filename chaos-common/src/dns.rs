//! DNS answers (`chaos net dns`): the names a fault answers, as keys of an LPM trie. A name is
//! stored reversed and lower-cased ("a.example.com" -> "moc.elpmaxe.a"), so that one
//! longest-prefix lookup finds an exact name or any suffix of it: the pattern "example.com" is
//! the prefix "moc.elpmaxe" followed by a NUL (the end of the name), "*.example.com" the prefix
//! "moc.elpmaxe." (a label boundary), and "*" the empty prefix. The kernel writes the same
//! form from the query's wire-format name.

/// Bytes of a name the kernel reads (dotted, without the root dot); longer names never match.
pub const NAME_MAX: usize = 128;
/// Patterns per fault.
pub const MAX_NAMES: u32 = 64;

/// DNS header flags (RFC 1035 4.1.1), as the 16-bit word in host order.
pub const FLAG_QR: u16 = 0x8000;
pub const FLAG_RA: u16 = 0x0080;
/// OPCODE and RD, kept from the query in the answer.
pub const KEEP_FROM_QUERY: u16 = 0x7900;
pub const OPCODE_MASK: u16 = 0x7800;

/// RCODEs the fault answers with (RFC 1035, 4.1.1).
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_REFUSED: u8 = 5;

/// `c` lower-cased if it is an ASCII capital (DNS names compare case-insensitively).
#[inline(always)]
pub fn lower(c: u8) -> u8 {
    c | (((c.wrapping_sub(b'A') < 26) as u8) << 5)
}

/// The trie key of a pattern: (reversed lower-case name, prefix length in bits). None for a
/// pattern that is empty, too long, or has an empty label. A trailing dot is ignored.
pub fn pattern_key(pattern: &str) -> Option<([u8; NAME_MAX], u32)> {
    let mut key = [0u8; NAME_MAX];
    let p = pattern.strip_suffix('.').unwrap_or(pattern);
    if p == "*" {
        return Some((key, 0));
    }
    let (wild, name) = match p.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, p),
    };
    let b = name.as_bytes();
    // The key holds the name and one more byte (NUL or '.').
    if b.is_empty() || b.len() >= NAME_MAX || name.split('.').any(|l| l.is_empty() || l.len() > 63)
    {
        return None;
    }
    for (i, &c) in b.iter().rev().enumerate() {
        key[i] = lower(c);
    }
    key[b.len()] = if wild { b'.' } else { 0 };
    Some((key, 8 * (b.len() as u32 + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_reversed_prefixes() {
        let (k, bits) = pattern_key("Example.COM").expect("valid");
        assert_eq!(&k[..12], b"moc.elpmaxe\0");
        assert_eq!(bits, 96);
        let (k, bits) = pattern_key("*.example.com.").expect("valid");
        assert_eq!(&k[..12], b"moc.elpmaxe.");
        assert_eq!(bits, 96);
        assert_eq!(pattern_key("*").map(|(_, b)| b), Some(0));
        assert_eq!(pattern_key("*.").map(|(_, b)| b), Some(0));
        for bad in ["", "a..b", ".", &"a".repeat(64), &"x.".repeat(70)] {
            assert!(pattern_key(bad).is_none(), "{bad:?}");
        }
        assert_eq!(lower(b'Q'), b'q');
        assert_eq!(lower(b'-'), b'-');
        assert_eq!(lower(b'z'), b'z');
    }
}
