//! The runs `cargo xtask test` makes, from tests/expect.toml: their names (a host run and one
//! per guest kernel), the test-name filters each passes, and the tests each must see pass.
//! The tests read the same file for what the kernel must offer (tests/src/expect.rs).

use anyhow::{Context, Result};
use serde::Deserialize;
use std::{collections::BTreeMap, path::Path};

/// What the runner needs of one run (the tests read the rest).
#[derive(Debug, Deserialize)]
pub struct Run {
    pub filters: Vec<String>,
    pub must_run: Vec<String>,
}

#[derive(Deserialize)]
struct File {
    run: BTreeMap<String, Run>,
}

/// The host run's name in the file.
pub const HOST: &str = "host";

/// The guest runs `cargo xtask test` makes, in order: the whole suite on Debian 6.12 first,
/// then the runs that exist for one backend each.
pub const GUESTS: &[&str] = &["6.12", "6.12+nolsm", "6.1", "6.12-kprobe"];

/// Every run in tests/expect.toml, by name.
pub fn load(root: &Path) -> Result<BTreeMap<String, Run>> {
    let path = root.join("tests/expect.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let file: File = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    Ok(file.run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_the_runner_makes_is_described() {
        let runs = load(&crate::root()).expect("tests/expect.toml");
        for name in GUESTS.iter().chain([&HOST]) {
            let run = runs.get(*name).unwrap_or_else(|| panic!("no run {name}"));
            assert!(
                !run.must_run.is_empty(),
                "run {name} names no test it exists for"
            );
        }
    }
}
