//! Counting libtest's "test result: ok. N passed; M failed; ..." lines, so that `xtask test`
//! can close with one total for the host and VM runs together.

use anyhow::{Context, Result, bail};
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

impl Tally {
    /// Adds one line's counts, if it is a libtest result line.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        let num = |key: &str| -> u64 {
            rest.split(';')
                .find(|part| part.trim().ends_with(key))
                .and_then(|part| part.split_whitespace().rev().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        self.passed += num(" passed");
        self.failed += num(" failed");
    }

    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
    }
}

/// Runs `cmd`, echoing its stdout line by line while counting test results.
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
    let ok = child.wait()?.success();
    if tally.passed + tally.failed == 0 && ok {
        bail!("{cmd:?} ran no test");
    }
    Ok((tally, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_libtest_lines() {
        let mut t = Tally::default();
        t.add_line("test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        t.add_line(
            "test result: FAILED. 4 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 3 tests");
        assert_eq!((t.passed, t.failed), (16, 2));
    }
}
