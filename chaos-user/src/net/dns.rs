//! `chaos net dns`: the RCODEs a fault answers with and the name patterns it answers for, as
//! the kernel's trie (chaos_common::dns) holds them. The program is chaos-ebpf/src/net/dns.rs.

use crate::error::{Error, Result};
use aya::maps::lpm_trie::{Key, LpmTrie};
use chaos_common::{
    dns::{MAX_NAMES, NAME_MAX, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL, pattern_key},
    maps::DNS_NAMES,
};

/// The answers a fault can give, by their RFC 1035 names, and what a glibc client reports.
pub const RCODES: &[(&str, u8, &str)] = &[
    (
        "NXDOMAIN",
        RCODE_NXDOMAIN,
        "the name does not exist (getaddrinfo: EAI_NONAME)",
    ),
    (
        "SERVFAIL",
        RCODE_SERVFAIL,
        "the resolver failed (getaddrinfo: EAI_AGAIN, try again)",
    ),
    (
        "REFUSED",
        RCODE_REFUSED,
        "the resolver refuses to answer (getaddrinfo: EAI_AGAIN)",
    ),
];

/// `NXDOMAIN`, `servfail`, ...; errors list the names.
pub fn parse_rcode(s: &str) -> Result<u8> {
    RCODES
        .iter()
        .find(|(n, ..)| n.eq_ignore_ascii_case(s.trim()))
        .map(|&(_, code, _)| code)
        .ok_or_else(|| {
            let names: Vec<&str> = RCODES.iter().map(|(n, ..)| *n).collect();
            Error::input(
                "--rcode",
                format!(
                    "'{s}' is not an answer chaos gives; use {}",
                    names.join(", ")
                ),
            )
        })
}

/// The name of an RCODE `parse_rcode` takes.
pub fn rcode_name(code: u8) -> &'static str {
    RCODES
        .iter()
        .find(|&&(_, c, _)| c == code)
        .map_or("RCODE?", |(n, ..)| n)
}

/// The trie keys of `names` (none given: every name, "*"). Errors name `--name`.
pub fn keys(names: &[String]) -> Result<Vec<([u8; NAME_MAX], u32)>> {
    if names.len() > MAX_NAMES as usize {
        return Err(Error::input(
            "--name",
            format!(
                "{} names given; use at most {MAX_NAMES} (a *.suffix covers many)",
                names.len()
            ),
        ));
    }
    let all = ["*".to_string()];
    let names = if names.is_empty() { &all[..] } else { names };
    names
        .iter()
        .map(|n| {
            pattern_key(n).ok_or_else(|| {
                Error::input(
                    "--name",
                    format!(
                        "'{n}' is not a name pattern; use a name (db.shop.svc.cluster.local), \
                         *.suffix (*.example.com) or * (labels of 1-63 bytes, at most {} bytes \
                         in all)",
                        NAME_MAX - 1
                    ),
                )
            })
        })
        .collect()
}

/// Writes the patterns, each answered with `rcode`, before the program can read them.
pub fn fill(ebpf: &mut aya::Ebpf, keys: &[([u8; NAME_MAX], u32)], rcode: u8) -> Result<()> {
    let mut trie: LpmTrie<_, [u8; NAME_MAX], u8> = ebpf
        .map_mut(DNS_NAMES)
        .ok_or(Error::MapNotFound(DNS_NAMES))?
        .try_into()
        .map_err(|e| Error::map(format!("opening {DNS_NAMES}"), e))?;
    for (data, bits) in keys {
        trie.insert(&Key::new(*bits, *data), rcode, 0)
            .map_err(|e| Error::map(format!("adding a name to {DNS_NAMES}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcodes_and_names() {
        assert_eq!(parse_rcode("nxdomain").ok(), Some(3));
        assert_eq!(parse_rcode("SERVFAIL").ok(), Some(2));
        assert!(parse_rcode("NOERROR").is_err());
        assert_eq!(rcode_name(5), "REFUSED");
        assert_eq!(keys(&[]).expect("all").len(), 1);
        assert!(keys(&["a..b".into()]).is_err());
        assert_eq!(
            keys(&["*.x.org".into(), "y.org".into()])
                .expect("two")
                .len(),
            2
        );
    }
}
