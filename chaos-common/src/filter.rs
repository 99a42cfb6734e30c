//! Address and port filters, evaluated identically in the kernel and in unit tests.

/// Address family codes in `Cidr::family`.
pub const FAMILY_ANY: u8 = 0;
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

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
