//! Address and port filters, evaluated identically in the kernel and in unit tests.

/// Address family codes in `Cidr::family`.
pub const FAMILY_ANY: u8 = 0;
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;
/// `Cidr::family` of a filter with several prefixes: the address is looked up in the rule's
/// LPM trie (`maps::NET_SRC_SET` / `NET_DST_SET`) instead.
pub const FAMILY_SET: u8 = 0xff;

/// Most prefixes in one `--src`/`--dst` set.
pub const MAX_PREFIXES: u32 = 16_384;

/// Words of the prefix sets' first stage (`maps::NET_SET_HINT`): one bit per rule slot, side
/// (source, destination), family and value of the address's first 16 bits, set when some
/// prefix of that set could hold such an address. A clear bit settles a miss with one array
/// read; only a set bit costs the trie lookup (a helper call, and a walk of up to 128 levels).
pub const HINT_WORDS: u32 = crate::MAX_RULES * 2 * 2 * (1 << 16) / 64;

/// The hint bit for an address of `family` (words in network byte order, as in `Cidr`) on the
/// source (`dst` false) or destination side of rule `slot`.
#[inline(always)]
pub fn hint_bit(slot: u32, dst: bool, family: u8, addr0: u32) -> u32 {
    let table = (slot * 2 + dst as u32) * 2 + (family == FAMILY_V6) as u32;
    (table << 16) | (u32::from_be(addr0) >> 16)
}

/// The LPM trie key data of an address for rule `slot`: a first word with the slot and the
/// family (so one trie holds every rule's prefixes of both families, and a prefix of length L
/// is stored with 32 + L bits), then the address, IPv4 in the first word. The family is part
/// of the key so that families never cross, as with a single prefix (`Cidr::matches`): an IPv6
/// prefix such as ::/0 holds no IPv4 packet, an IPv4 prefix no IPv4-mapped IPv6 address.
/// Words as `Flow` and `Cidr` hold them: network byte order in memory.
#[inline(always)]
pub fn lpm_data(slot: u32, family: u8, addr: &[u32; 4]) -> [u32; 5] {
    let tag = if family == FAMILY_V4 { 0 } else { 1 << 31 };
    let s = (slot | tag).to_be();
    if family == FAMILY_V4 {
        [s, addr[0], 0, 0, 0]
    } else {
        [s, addr[0], addr[1], addr[2], addr[3]]
    }
}

/// An address prefix. Words are in network byte order, as loaded from the packet; an IPv4
/// address uses `addr[0]` only. `FAMILY_ANY` matches every address.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Cidr {
    pub addr: [u32; 4],
    pub mask: [u32; 4],
    pub family: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<Cidr>() == 36);

impl Cidr {
    pub const ANY: Cidr = Cidr {
        addr: [0; 4],
        mask: [0; 4],
        family: FAMILY_ANY,
        _pad: [0; 3],
    };

    #[inline(always)]
    pub fn matches(&self, family: u8, addr: &[u32; 4]) -> bool {
        if self.family == FAMILY_ANY {
            return true;
        }
        self.family == family
            && addr[0] & self.mask[0] == self.addr[0]
            && addr[1] & self.mask[1] == self.addr[1]
            && addr[2] & self.mask[2] == self.addr[2]
            && addr[3] & self.mask[3] == self.addr[3]
    }
}

/// An inclusive port range in host byte order; `ANY` is 0-65535.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}
const _: () = assert!(core::mem::size_of::<PortRange>() == 4);

impl PortRange {
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    #[inline(always)]
    pub fn is_any(&self) -> bool {
        self.lo == 0 && self.hi == u16::MAX
    }

    #[inline(always)]
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl Default for PortRange {
    fn default() -> Self {
        Self::ANY
    }
}
