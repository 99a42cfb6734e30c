//! Errno names and numbers, and which errnos a fault may return.

/// Errnos chaos knows by name.
const NAMES: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("ENFILE", libc::ENFILE),
    ("EMFILE", libc::EMFILE),
    ("EFBIG", libc::EFBIG),
    ("ENOSPC", libc::ENOSPC),
    ("EROFS", libc::EROFS),
    ("EDQUOT", libc::EDQUOT),
    ("ENOBUFS", libc::ENOBUFS),
    ("EADDRINUSE", libc::EADDRINUSE),
    ("EADDRNOTAVAIL", libc::EADDRNOTAVAIL),
    ("ENETDOWN", libc::ENETDOWN),
    ("ENETUNREACH", libc::ENETUNREACH),
    ("ECONNABORTED", libc::ECONNABORTED),
    ("ECONNRESET", libc::ECONNRESET),
    ("ETIMEDOUT", libc::ETIMEDOUT),
    ("ECONNREFUSED", libc::ECONNREFUSED),
    ("EHOSTUNREACH", libc::EHOSTUNREACH),
    ("EHOSTDOWN", libc::EHOSTDOWN),
    ("ENXIO", libc::ENXIO),
    ("ENODEV", libc::ENODEV),
    ("ENOTDIR", libc::ENOTDIR),
    ("EISDIR", libc::EISDIR),
    ("EINVAL", libc::EINVAL),
    ("ETXTBSY", libc::ETXTBSY),
    ("EMLINK", libc::EMLINK),
    ("EPIPE", libc::EPIPE),
    ("EXDEV", libc::EXDEV),
    ("ELOOP", libc::ELOOP),
    ("ENAMETOOLONG", libc::ENAMETOOLONG),
    ("ENOTEMPTY", libc::ENOTEMPTY),
    ("EMSGSIZE", libc::EMSGSIZE),
    ("EPROTO", libc::EPROTO),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("ECANCELED", libc::ECANCELED),
];

/// What connect(2) can return, per its man page, that a fault can meaningfully simulate.
pub const CONNECT: &[i32] = &[
    libc::ECONNREFUSED,
    libc::ETIMEDOUT,
    libc::ENETUNREACH,
    libc::EHOSTUNREACH,
    libc::EADDRNOTAVAIL,
    libc::EADDRINUSE,
    libc::EACCES,
    libc::EPERM,
    libc::EAGAIN,
    libc::EINTR,
    libc::ECONNRESET,
    libc::ENOBUFS,
    libc::ENETDOWN,
];

pub fn name(errno: i32) -> &'static str {
    NAMES
        .iter()
        .find(|(_, n)| *n == errno)
        .map_or("E?", |(name, _)| name)
}

/// Parses `ECONNREFUSED`, `econnrefused` or `111`, and checks it against `allowed`.
pub fn parse(s: &str, allowed: &[i32]) -> Result<i32, String> {
    let t = s.trim();
    let n = match t.parse::<i32>() {
        Ok(n) => Some(n),
        Err(_) => NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(t))
            .map(|(_, n)| *n),
    };
    let list = || {
        allowed
            .iter()
            .map(|&e| name(e))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match n {
        Some(n) if allowed.contains(&n) => Ok(n),
        Some(_) => Err(format!(
            "{t} cannot be returned by this call; use one of {}",
            list()
        )),
        None => Err(format!("unknown errno '{t}'; use one of {}", list())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic")]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_validity() {
        assert_eq!(parse("ECONNREFUSED", CONNECT), Ok(libc::ECONNREFUSED));
        assert_eq!(parse("etimedout", CONNECT), Ok(libc::ETIMEDOUT));
        assert_eq!(parse("111", CONNECT), Ok(111));
        assert!(
            parse("EFOO", CONNECT)
                .unwrap_err()
                .contains("unknown errno 'EFOO'")
        );
        let e = parse("ENOSPC", CONNECT).unwrap_err();
        assert!(
            e.contains("cannot be returned") && e.contains("ECONNREFUSED"),
            "{e}"
        );
        assert!(
            CONNECT.iter().all(|&e| name(e) != "E?"),
            "every allowed errno has a name"
        );
    }
}
