//! Counting libtest's output ("running N tests", "test NAME ... ok", "test result: ...") and
//! the suite's skip lines, so that `xtask test` closes with one honest total for the host and
//! VM runs together: a test binary that crashed or a guest that timed out counts the tests it
//! did not finish as failed, and a test that skipped counts as skipped, not passed.

use anyhow::{Context, Result};
use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

/// The prefix of a skip line ("SKIPPED name: reason"), in $CHAOS_SKIP_LOG and, with
/// `CHAOS_` before it, on a guest's console.
pub const SKIPPED: &str = "SKIPPED ";

#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    /// Test binaries that ended without their "test result:" line (crashed, killed, timed out).
    pub crashed: u64,
    /// Tests libtest reported as ok (before skips are taken out).
    pub ok: BTreeSet<String>,
    /// Tests libtest reported as failed.
    pub failed_names: BTreeSet<String>,
    /// Skipped tests and why.
    pub skipped: BTreeMap<String, String>,
    /// The open binary: how many tests it announced, how many it has reported.
    open: Option<(u64, u64)>,
    /// A test whose verdict did not follow its name on the line (a child process of the test
    /// wrote there first): the verdict comes on a line of its own.
    pending: Option<String>,
}

impl Tally {
    /// Takes one line of libtest output (or of a guest's console).
    pub fn add_line(&mut self, line: &str) {
        let line = line.trim();
        if let (Some(name), "ok" | "FAILED") = (&self.pending, line) {
            let name = name.clone();
            self.verdict(&name, line);
            self.pending = None;
        } else if let Some(skip) = line.strip_prefix("CHAOS_") {
            self.add_skip(skip);
        } else if let Some(rest) = line.strip_prefix("test result: ") {
            let num = |key: &str| -> u64 {
                rest.split(';')
                    .find(|part| part.trim().ends_with(key))
                    .and_then(|part| part.split_whitespace().rev().nth(1)?.parse().ok())
                    .unwrap_or(0)
            };
            self.passed += num(" passed");
            self.failed += num(" failed");
            self.open = None;
        } else if let Some(n) = line
            .strip_prefix("running ")
            .and_then(|r| r.strip_suffix(" tests").or_else(|| r.strip_suffix(" test")))
            .and_then(|n| n.parse().ok())
        {
            self.close_crashed();
            self.open = Some((n, 0));
        } else if let Some(rest) = line.strip_prefix("test ") {
            let (name, verdict) = match rest.rsplit_once(" ... ") {
                Some(split) => split,
                None => match rest.strip_suffix(" ...") {
                    Some(name) => (name, ""),
                    None => return,
                },
            };
            if !self.verdict(name, verdict) {
                self.pending = Some(name.to_string());
            }
            if let Some((_, seen)) = &mut self.open {
                *seen += 1;
            }
        }
    }

    /// Records `name`'s verdict; false when `verdict` is none ("ignored" counts as one).
    fn verdict(&mut self, name: &str, verdict: &str) -> bool {
        match verdict {
            "ok" => self.ok.insert(name.to_string()),
            "FAILED" => self.failed_names.insert(name.to_string()),
            _ => return verdict.starts_with("ignored"),
        };
        true
    }

    /// Takes one skip line ("SKIPPED name: reason"); other lines are ignored.
    pub fn add_skip(&mut self, line: &str) {
        if let Some((name, why)) = line
            .trim()
            .strip_prefix(SKIPPED)
            .and_then(|l| l.split_once(": "))
        {
            self.skipped.insert(name.to_string(), why.to_string());
        }
    }

    /// Ends the output: a binary still open never printed its result line.
    pub fn finish(&mut self) {
        self.close_crashed();
    }

    /// A binary that announced N tests and ended without a result: the tests it reported ok
    /// count as passed, every other as failed.
    fn close_crashed(&mut self) {
        if let Some((announced, seen)) = self.open.take() {
            self.crashed += 1;
            self.failed += announced.saturating_sub(seen).max(1);
            self.passed += seen;
        }
    }

    /// Tests that passed without skipping.
    pub fn passed_not_skipped(&self) -> u64 {
        let skipped_ok = self.skipped.keys().filter(|n| self.ok.contains(*n)).count();
        self.passed.saturating_sub(skipped_ok as u64)
    }

    /// Of `must`, the tests that skipped or did not run, each with what happened (a failed one
    /// is counted and reported as failed already).
    pub fn missing(&self, must: &[String]) -> Vec<String> {
        must.iter()
            .filter(|t| !self.failed_names.contains(*t))
            .filter_map(|t| match (self.ok.contains(t), self.skipped.get(t)) {
                (true, None) => None,
                (true, Some(why)) => Some(format!("{t} skipped ({why})")),
                (false, _) => Some(format!("{t} did not run")),
            })
            .collect()
    }

    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.crashed += other.crashed;
        self.ok.extend(other.ok);
        self.failed_names.extend(other.failed_names);
        self.skipped.extend(other.skipped);
    }
}

/// Runs `cmd`, echoing its stdout line by line while counting test results; returns the tally
/// and whether the command succeeded.
pub fn run_counting(cmd: &mut Command) -> Result<(Tally, bool)> {
    eprintln!("xtask: {cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    let mut tally = Tally::default();
    for line in BufReader::new(child.stdout.take().context("stdout")?).lines() {
        let line = line?;
        println!("{line}");
        tally.add_line(&line);
    }
    tally.finish();
    let ok = child.wait()?.success();
    Ok((tally, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(lines: &[&str]) -> Tally {
        let mut t = Tally::default();
        lines.iter().for_each(|l| t.add_line(l));
        t.finish();
        t
    }

    #[test]
    fn a_verdict_after_a_child_s_output_still_counts() {
        // A test's dd wrote to the console between its name and its verdict (CI, 6.12 guest).
        let t = tally(&[
            "running 2 tests",
            "test background_write ... 1+0 records in",
            "dd: error writing '/tmp/f': No space left on device",
            "ok",
            "test other ...",
            "FAILED",
            "test result: FAILED. 1 passed; 1 failed; 0 ignored",
        ]);
        assert!(t.ok.contains("background_write"), "{t:?}");
        assert!(t.failed_names.contains("other"), "{t:?}");
        assert_eq!(
            t.missing(&["background_write".into()]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn counts_libtest_lines() {
        let t = tally(&[
            "running 12 tests",
            "test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            "running 6 tests",
            "test result: FAILED. 4 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        ]);
        assert_eq!((t.passed, t.failed, t.crashed), (16, 2, 0));
    }

    #[test]
    fn a_crashed_binary_counts_what_it_did_not_finish_as_failed() {
        let t = tally(&[
            "running 5 tests",
            "test a ... ok",
            "test b ... ok",
            // The binary died: no result line; the next one starts.
            "running 1 test",
            "test c ... ok",
            "test result: ok. 1 passed; 0 failed; 0 ignored",
            // A guest that timed out mid-binary.
            "running 4 tests",
            "test d ... ok",
        ]);
        assert_eq!((t.passed, t.failed, t.crashed), (4, 6, 2));
    }

    #[test]
    fn skips_are_counted_apart_and_must_run_is_checked() {
        let mut t = tally(&[
            "running 3 tests",
            "test delay ... ok",
            "test drop ... ok",
            "test rate ... FAILED",
            "CHAOS_SKIPPED delay: kernel lacks fq",
            "test result: FAILED. 2 passed; 1 failed; 0 ignored",
        ]);
        t.add_skip("SKIPPED delay: kernel lacks fq");
        assert_eq!(
            (t.passed_not_skipped(), t.failed, t.skipped.len()),
            (1, 1, 1)
        );
        let must = ["delay", "drop", "rate", "renamed"].map(String::from);
        // rate failed (counted already); delay skipped; renamed never ran.
        let missing = t.missing(&must);
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(missing[0].starts_with("delay skipped (kernel lacks fq)"));
        assert!(missing[1].starts_with("renamed did not run"));
    }
}
