//! Every parser of user input takes any string without panicking: CIDRs, ports, durations,
//! percentages, rates, errnos, counts, and experiment files (random edits of the shipped
//! examples). Random inputs from proptest: PROPTEST_CASES per parser (2,000 in CI; the README's
//! figure is from `PROPTEST_CASES=125000 cargo test -p chaos-user --test parsers_fuzz --release`,
//! 10^6 inputs in all).

use chaos::{cidr, controls, errno, experiment, units};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        // A panic is the finding; shrinking it is not worth the minutes.
        max_shrink_iters: 100,
        ..ProptestConfig::default()
    }
}

/// Strings near what each parser expects (its alphabet, short) or anything at all.
fn near(alphabet: &'static str, len: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(&format!("[{alphabet}]{{0,{len}}}")).expect("regex"),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cidrs(s in near("0-9a-fA-F:./ %-", 48)) {
        let _ = cidr::parse_cidr(&s);
    }

    #[test]
    fn ports(s in near("0-9 -", 14)) {
        let _ = units::parse_ports(&s);
    }

    #[test]
    fn durations(s in near("0-9a-z. ", 16)) {
        let _ = units::parse_duration(&s);
    }

    #[test]
    fn percents(s in near("0-9.e%+-", 14)) {
        if let Ok(p) = s.parse::<units::Percent>() {
            // Whatever parses is a probability the kernel can take.
            prop_assert!(p.threshold() <= chaos_common::THRESHOLD_ALWAYS);
            let _ = units::check_injects(p, "--percent");
        }
    }

    #[test]
    fn rates(s in near("0-9a-zA-Z./ ", 16)) {
        let _ = units::parse_rate(&s);
    }

    #[test]
    fn errnos(s in near("0-9A-Z_ -", 16)) {
        let _ = errno::parse(&s, &[libc::EPERM, libc::ENOSPC, libc::ECONNREFUSED]);
    }

    #[test]
    fn counts(s in near("0-9 -+", 12)) {
        let _ = controls::parse_budget(&s);
        let _ = controls::parse_after(&s);
        let _ = controls::parse_sample(&s);
    }

    /// A shipped example with a few random edits (bytes replaced, inserted, deleted): an error
    /// or a plan, never a panic.
    #[test]
    fn experiment_files(
        which in 0usize..6,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..6)
    ) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let mut files: Vec<_> = std::fs::read_dir(dir).expect("examples").flatten().map(|e| e.path()).collect();
        files.sort();
        let mut text: Vec<char> = std::fs::read_to_string(&files[which % files.len()]).expect("example").chars().collect();
        for (at, op, c) in edits {
            let i = at.index(text.len().max(1)).min(text.len());
            match op {
                0 if i < text.len() => text[i] = c,
                1 => text.insert(i, c),
                _ if i < text.len() => { text.remove(i); }
                _ => {}
            }
        }
        let text: String = text.into_iter().collect();
        let _ = experiment::parse(&text);
    }
}
