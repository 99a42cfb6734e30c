//! Scalars of a fault spec parsed as the CLI parses them (`30s`, `12.5%`, `8000-8100`,
//! `10.0.0.0/8`, `10mbit`). Each is parsed inside serde so that a bad value is reported with its
//! line and column, like an unknown field. The family specs (`net::NetFaultSpec`,
//! `syscall::SyscallFaultSpec`) and experiment files share them.

use crate::units::{self, Percent};
use serde::de::{self, Deserializer, Visitor};
use std::{cell::RefCell, fmt, time::Duration};

thread_local! {
    /// The text of the last scalar that failed to parse. serde_norway places a custom error at
    /// the enclosing mapping, not at the value; `experiment::plan::parse` uses this to find the value's line.
    static BAD: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Takes the text of the scalar that failed last on this thread, if any.
pub fn take_bad() -> Option<String> {
    BAD.with(|b| b.borrow_mut().take())
}

/// A scalar as text, whether YAML typed it as a string or a number (`dport: 53` and
/// `dport: "8000-8100"` are both fine).
struct AsText;

impl Visitor<'_> for AsText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

macro_rules! scalar {
    ($(#[$m:meta])* $name:ident($t:ty), $parse:expr, $show:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name(pub $t);

        /// As text that the parser takes back (a request sent to `chaos agent`).
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let show: fn(&$t) -> String = $show;
                s.serialize_str(&show(&self.0))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = d.deserialize_any(AsText)?;
                let parse: fn(&str) -> Result<$t, String> = $parse;
                parse(&text).map($name).map_err(|e| {
                    BAD.with(|b| *b.borrow_mut() = Some(text));
                    de::Error::custom(e)
                })
            }
        }
    };
}

scalar!(
    /// Any duration, zero allowed (offsets, latencies, timeouts).
    Dur(Duration),
    |s| humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 500ms, 30s, 5m")),
    |d| humantime::format_duration(*d).to_string()
);
scalar!(Pct(Percent), |s| s.parse(), |p| p.value().to_string());
scalar!(
    Ports(chaos_common::PortRange),
    units::parse_ports,
    |p| format!("{}-{}", p.lo, p.hi)
);
scalar!(Cidr(ipnet::IpNet), crate::cidr::parse_cidr, |c| c
    .to_string());
scalar!(
    /// Bits per second.
    Rate(u64),
    units::parse_rate,
    |r| format!("{r}bit")
);
scalar!(
    /// A size in bytes (`64MiB`, `1G`; units::parse_size).
    Bytes(u64),
    units::parse_size,
    |b| units::format_size(*b)
);
scalar!(
    /// Bytes per second (`16MiB/s`; units::parse_byte_rate).
    ByteRate(u64),
    units::parse_byte_rate,
    |b| format!("{}/s", units::format_size(*b))
);

/// Text that YAML may have typed as a number (`errno: 28`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AsText).map(Text)
    }
}

/// One item or a list of them (`path: /data` or `path: [/data, /logs]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(t) => vec![t],
            Self::Many(v) => v,
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Self::Many(v) if v.is_empty())
    }
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}
