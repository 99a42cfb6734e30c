//! `chaos doctor`

use crate::common::{self, out};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

pub fn run(_args: DoctorArgs, json: bool) -> chaos::Result<ExitCode> {
    let report = chaos::doctor::run()?;
    if json {
        common::print_json(&report);
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "kernel {}\n\nkernel features (probed by loading and attaching):",
        report.kernel
    );
    for f in &report.features {
        row(f.name, 20, f.available, &f.detail);
    }
    out!("\nfaults:");
    for f in &report.faults {
        row(f.fault, 36, f.available, &f.detail);
    }
    Ok(ExitCode::SUCCESS)
}

fn row(name: &str, width: usize, available: bool, detail: &str) {
    out!(
        "  {name:<width$} {:<4} {detail}",
        if available { "yes" } else { "no" }
    );
}
