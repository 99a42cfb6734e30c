//! Signals by name (`SIGKILL`, `KILL`, `kill`) or number, as kill(1) takes them: what
//! `chaos kill` sends to processes and crash faults (`chaos syscall NAME --signal`) at a call.

/// The signals chaos sends, by their POSIX names.
const SIGNALS: &[(&str, i32)] = &[
    ("SIGKILL", libc::SIGKILL),
    ("SIGTERM", libc::SIGTERM),
    ("SIGINT", libc::SIGINT),
    ("SIGHUP", libc::SIGHUP),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGABRT", libc::SIGABRT),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGBUS", libc::SIGBUS),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGCONT", libc::SIGCONT),
];

/// `SIGKILL`, `KILL`, `kill` or `9`; errors list the names.
pub fn parse(s: &str) -> Result<i32, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return SIGNALS
            .iter()
            .find(|(_, v)| *v == n)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("signal {n} is not one chaos sends; use {}", names()));
    }
    let up = t.to_ascii_uppercase();
    let full = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    SIGNALS
        .iter()
        .find(|(n, _)| *n == full)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("'{s}' is not a signal chaos sends; use {}", names()))
}

/// The name of a signal `parse` accepts.
pub fn name(sig: i32) -> &'static str {
    SIGNALS
        .iter()
        .find(|(_, v)| *v == sig)
        .map_or("SIG?", |(n, _)| n)
}

fn names() -> String {
    SIGNALS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for s in ["SIGKILL", "KILL", "kill", "9"] {
            assert_eq!(parse(s), Ok(libc::SIGKILL), "{s}");
        }
        assert_eq!(parse("term"), Ok(libc::SIGTERM));
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        for bad in ["SIGFOO", "0", "99", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
