//! The library's choice enums as clap values: the library does not depend on clap, so each
//! enum has a mirror here (same variants, the help text of each value) converted on use.

use chaos::{net, syscall};

macro_rules! choice {
    ($(#[$m:meta])* $name:ident => $lib:ident { $($(#[$vm:meta])* $v:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
        pub enum $name {
            $($(#[$vm])* $v),+
        }

        impl From<$name> for $lib {
            fn from(c: $name) -> Self {
                match c {
                    $($name::$v => $lib::$v),+
                }
            }
        }
    };
}

use net::{
    AttachMode as LibAttachMode, Direction as LibDirection, Distribution as LibDistribution,
    Protocol as LibProtocol,
};
use syscall::SockProtocol as LibSockProtocol;

choice!(Direction => LibDirection { Ingress, Egress, Both });
choice!(Protocol => LibProtocol {
    Tcp,
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
});
choice!(Distribution => LibDistribution {
    /// Evenly between latency - jitter and latency + jitter.
    Uniform,
    /// Normal around the latency, jitter being the standard deviation (never below 0).
    Normal,
});
choice!(AttachMode => LibAttachMode {
    /// TCX if the kernel has it (>= 6.6), else cls_bpf.
    Auto,
    /// TCX links only.
    Tcx,
    /// clsact qdisc + cls_bpf filter (older kernels).
    ClsBpf,
});
choice!(SockProtocol => LibSockProtocol { Tcp, Udp });
