//! Typed errors. `Input` is the user's to fix (exit status 2); `Unsupported` names a kernel
//! feature that is missing and what would work instead; the rest are failures.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: names the flag and the fix. Nothing has been attached.
    #[error("{flag}: {message}")]
    Input { flag: &'static str, message: String },

    /// No pod or container here matches a Kubernetes target (`flag` names the field): the
    /// user's to fix on one node, but a node that hosts none of an experiment's pods among
    /// several (`chaos run --agents`) simply has nothing to do.
    #[error("{flag}: {message}")]
    NoTarget { flag: &'static str, message: String },

    /// A bad experiment file: where (a line, or the path of the field) and the fix.
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },

    /// The system under test is unhealthy before an experiment: nothing is injected.
    #[error("{0}")]
    Unhealthy(String),

    /// The running kernel lacks a mechanism.
    #[error("this kernel lacks {feature}: {hint}")]
    Unsupported { feature: &'static str, hint: String },

    #[error("program {0} not found in the embedded eBPF object (build mismatch)")]
    ProgramNotFound(&'static str),

    #[error("map {0} not found in the embedded eBPF object (build mismatch)")]
    MapNotFound(&'static str),

    #[error("loading the eBPF object: {0}")]
    Ebpf(#[from] aya::EbpfError),

    #[error("{context}: {source}")]
    Program {
        context: String,
        source: aya::programs::ProgramError,
    },

    #[error("{context}: {source}")]
    Map {
        context: String,
        source: aya::maps::MapError,
    },

    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },

    /// Pinning a map, program or link in bpffs (background faults).
    #[error("{context}: {source}")]
    Pin {
        context: String,
        source: aya::pin::PinError,
    },

    /// Turning an attachment into an fd-owned link (to pin it).
    #[error("{context}: {source}")]
    Link {
        context: String,
        source: aya::programs::links::LinkError,
    },

    /// An iproute2 command (`tc`, `ip`) refused: its own message, the only detail there is.
    #[error("{context}: {message}")]
    Tool { context: String, message: String },

    #[error("{context}: {source}")]
    Json {
        context: String,
        source: serde_json::Error,
    },

    /// The container runtime (CRI) refused or could not be reached: its socket and message.
    #[error("container runtime at {endpoint}: {message}")]
    Runtime { endpoint: String, message: String },

    /// A rule needs a part of the programs its object was loaded without (a chaos bug: the
    /// parts are chosen from the rules before loading).
    #[error(
        "the loaded programs lack {0}, which this rule needs (a bug in chaos: please report it)"
    )]
    NotLoaded(String),

    /// A stop signal came while the fault was being set up: it was not attached.
    #[error("interrupted by {0} while starting: nothing was attached")]
    Interrupted(&'static str),
}

impl Error {
    pub fn input(flag: &'static str, message: impl Into<String>) -> Self {
        Self::Input {
            flag,
            message: message.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub fn program(context: impl Into<String>, source: aya::programs::ProgramError) -> Self {
        Self::Program {
            context: context.into(),
            source,
        }
    }

    pub fn pin(context: impl Into<String>, source: aya::pin::PinError) -> Self {
        Self::Pin {
            context: context.into(),
            source,
        }
    }

    pub fn link(context: impl Into<String>, source: aya::programs::links::LinkError) -> Self {
        Self::Link {
            context: context.into(),
            source,
        }
    }

    /// `message` is what the tool printed on failure.
    pub fn tool(context: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Tool {
            context: context.into(),
            message: message.into(),
        }
    }

    pub fn map(context: impl Into<String>, source: aya::maps::MapError) -> Self {
        Self::Map {
            context: context.into(),
            source,
        }
    }

    /// Process exit status for this error: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Input { .. }
            | Self::NoTarget { .. }
            | Self::Invalid { .. }
            | Self::Unhealthy(_) => 2,
            // As a shell reports a process ended by SIGINT.
            Self::Interrupted(_) => 130,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, each cause once (e.g. the errno behind "bpf_link_create
/// failed"). A verifier log is cut down to its telling line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text = format!("{text}: {c_text}");
        }
        cause = c.source();
    }
    // aya prints a netlink error without an extended ack as an empty list.
    let text = text.replace(
        "netlink error: []",
        "netlink error (the kernel gave no detail)",
    );
    match text.split_once(". Verifier output:") {
        Some((head, log)) => {
            let telling = log.lines().map(str::trim).find(|l| {
                l.contains("unknown func")
                    || l.contains("cannot use helper")
                    || l.contains("disallowed")
                    || l.contains("invalid")
            });
            match telling {
                Some(l) => format!("{head} (verifier: {l})"),
                None => {
                    // The verifier states its reason last; skip its statistics lines.
                    let tail: Vec<&str> = log
                        .lines()
                        .map(str::trim)
                        .filter(|l| {
                            let stats =
                                ["processed ", "verification time", "stack depth", "subprog "];
                            !l.is_empty() && !stats.iter().any(|p| l.starts_with(p))
                        })
                        .collect();
                    match tail.last() {
                        None => head.to_string(),
                        Some(reason) => format!("{head} (verifier: {reason})"),
                    }
                }
            }
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Load(&'static str);
    impl std::fmt::Display for Load {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Load {}

    #[test]
    fn verifier_logs_are_cut_to_their_reason() {
        let e = Load(
            "load failed. Verifier output: 0: R1=ctx()\n336: (85) call bpf_set_retval#187\n\
             At bpf_set_retval the register R1 has smin=-4294967295 smax=0 should have been in [-4095, 0]\n\
             verification time 39105 usec\nstack depth max 0\nsubprog 0 (x) main insns_self 2\n\
             processed 549 insns (limit 1000000)\n",
        );
        let text = chain(&e);
        assert!(text.ends_with("(verifier: At bpf_set_retval the register R1 has smin=-4294967295 smax=0 should have been in [-4095, 0])"), "{text}");
        let e = Load(
            "load failed. Verifier output: 5: (85) call bpf_override_return#58\nprogram of this type cannot use helper bpf_override_return#58\n",
        );
        assert!(chain(&e).ends_with(
            "(verifier: program of this type cannot use helper bpf_override_return#58)"
        ));
    }

    #[test]
    fn an_empty_netlink_error_list_says_so() {
        let e = Load("removing the filter: netlink error: []");
        assert_eq!(
            chain(&e),
            "removing the filter: netlink error (the kernel gave no detail)"
        );
    }
}
