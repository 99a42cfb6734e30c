//! Which packet faults this kernel can run, from the probed features (`chaos doctor`).

use super::Action;
use crate::support::{CLS_BPF, FQ, FaultSupport, Feature, Needs, TCX, has, row};

/// What `chaos doctor` must probe for a fault of this action: TC attachment, and fq for the
/// actions that set departure times (delay, reorder, rate).
pub fn needs(action: Action) -> Needs {
    Needs {
        tc: true,
        fq: matches!(action, Action::Delay { .. } | Action::Rate { .. }),
        ..Needs::default()
    }
}

/// One row per `chaos net` action: the mechanism used here, or why it is out.
pub fn support(f: &[Feature]) -> Vec<FaultSupport> {
    let tc = has(f, TCX) || has(f, CLS_BPF);
    let no_tc = || (false, "no way to attach a TC classifier".to_string());
    let drop = if has(f, TCX) {
        (true, "TC classifier on a TCX link (fd-owned)".to_string())
    } else if has(f, CLS_BPF) {
        (
            true,
            "TC classifier via clsact + cls_bpf (recorded and removed by chaos)".to_string(),
        )
    } else {
        (
            false,
            "neither TCX links nor cls_bpf could be attached".to_string(),
        )
    };
    let delay = match (has(f, FQ), tc) {
        (true, true) => (
            true,
            "TC classifier sets departure times; fq installed for the duration".to_string(),
        ),
        (false, _) => (
            false,
            "needs the fq qdisc to honour departure times; sch_fq is not available".to_string(),
        ),
        (true, false) => no_tc(),
    };
    let with_tc = |how: &str| if tc { (true, how.to_string()) } else { no_tc() };
    vec![
        row("net drop", drop),
        row(
            "net duplicate",
            with_tc("TC classifier + bpf_clone_redirect through the same hook"),
        ),
        row(
            "net corrupt",
            with_tc("TC classifier + bpf_skb_store_bytes, checksum fixed or left broken"),
        ),
        row(
            "net dns",
            with_tc(
                "TC classifier turns matching queries back as answers (bpf_redirect to ingress)",
            ),
        ),
        row(
            "net reset",
            with_tc("TC classifier turns TCP segments into RSTs (flags word + checksum)"),
        ),
        row("net delay", delay.clone()),
        row("net reorder", delay.clone()),
        row("net rate", delay),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `chaos run` probes what its faults need and nothing else.
    #[test]
    fn needs_follow_the_action() {
        let tc_only = Needs {
            tc: true,
            ..Needs::default()
        };
        assert_eq!(needs(Action::Drop), tc_only);
        assert_eq!(needs(Action::Duplicate), tc_only);
        let delay = Action::Delay {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            distribution: Default::default(),
            reorder: true,
        };
        let rate = Action::Rate {
            bits_per_sec: 8_000,
            horizon: Duration::from_secs(1),
        };
        assert!(needs(delay).fq && needs(rate).fq && needs(delay).tc);
        assert!(!needs(delay).hooks && !needs(delay).sock);
    }
}
