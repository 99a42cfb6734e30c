//! `cargo xtask doctor-matrix`: `chaos doctor --json` on this machine and on every kernel of the
//! VM matrix, rendered as tables into docs/kernels.md (between markers), never typed by hand.

use super::{boot, cache_dir, initramfs::Payload, kernel};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::{path::Path, process::Command};

const START: &str = "<!-- doctor-matrix:start -->";
const END: &str = "<!-- doctor-matrix:end -->";
const DOCTOR_MARKER: &str = "CHAOS_DOCTOR=";

/// (column title, doctor report)
type Column = (String, Value);

pub fn run(root: &Path) -> Result<()> {
    let chaos = root.join("target/debug/chaos");
    let host = Command::new(&chaos)
        .args(["doctor", "--json"])
        .output()
        .context("chaos doctor")?;
    let host: Value = serde_json::from_slice(&host.stdout).context("host doctor JSON")?;
    let mut columns: Vec<Column> = vec![(
        format!("this machine ({})", host["kernel"].as_str().unwrap_or("?")),
        host,
    )];
    let shorts = kernel::MATRIX.iter().map(|k| k.0);
    for short in shorts.chain(super::build::BUILT.iter().map(|k| k.short)) {
        let k = kernel::fetch(short, &cache_dir(), root)?;
        // No tests: the init prints the doctor report at boot, then runs this no-op.
        let payload = Payload {
            chaos: &chaos,
            tests: &[],
            test_args: &[],
            cmd: Some("true".into()),
            expect: None,
        };
        let b = boot(root, short, &k, &payload, "", true)?;
        let line = b
            .console
            .iter()
            .find_map(|l| l.strip_prefix(DOCTOR_MARKER))
            .context("no doctor report on the console")?;
        let report: Value = serde_json::from_str(line)
            .with_context(|| format!("doctor JSON from {short}: {line}"))?;
        eprintln!("vm: doctor on {short}: {}", report["kernel"]);
        columns.push((
            format!(
                "{} {short} ({})",
                if short.contains('-') {
                    "built"
                } else {
                    "Debian"
                },
                report["kernel"].as_str().unwrap_or("?")
            ),
            report,
        ));
    }
    let tables = render(&columns);
    let readme = root.join("docs/kernels.md");
    let text = std::fs::read_to_string(&readme)?;
    let (Some(a), Some(b)) = (text.find(START), text.find(END)) else {
        bail!("docs/kernels.md lacks the {START}/{END} markers")
    };
    let new = format!("{}{START}\n{tables}{}", &text[..a], &text[b..]);
    std::fs::write(&readme, new)?;
    eprintln!("docs/kernels.md: doctor matrix updated");
    Ok(())
}

fn cell(entry: Option<&Value>, notes: &mut Vec<String>) -> String {
    match entry {
        Some(e) if e["available"] == true => "yes".into(),
        Some(e) => {
            let why = e["detail"].as_str().unwrap_or("?").to_string();
            let n = match notes.iter().position(|x| *x == why) {
                Some(i) => i + 1,
                None => {
                    notes.push(why);
                    notes.len()
                }
            };
            format!("no [{n}]")
        }
        None => "?".into(),
    }
}

fn table(
    columns: &[Column],
    key: &str,
    name: &str,
    title: &str,
    notes: &mut Vec<String>,
) -> String {
    let mut out = format!(
        "| {title} | {} |\n|---|{}\n",
        columns
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(columns.len())
    );
    let rows: Vec<String> = columns[0].1[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r[name].as_str().map(str::to_string))
        .collect();
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, report)| {
                cell(
                    report[key]
                        .as_array()
                        .and_then(|a| a.iter().find(|r| r[name] == row.as_str())),
                    notes,
                )
            })
            .collect();
        out += &format!("| {row} | {} |\n", cells.join(" | "));
    }
    out
}

fn render(columns: &[Column]) -> String {
    let mut notes = Vec::new();
    let faults = table(columns, "faults", "fault", "fault type", &mut notes);
    let features = table(
        columns,
        "features",
        "name",
        "kernel feature (probed)",
        &mut notes,
    );
    let mut out = format!("{faults}\n{features}\n");
    for (i, n) in notes.iter().enumerate() {
        out += &format!("[{}] {}\n", i + 1, n.replace('|', "/"));
    }
    out + "\n"
}
