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
        out!(
            "  {:<20} {:<4} {}",
            f.name,
            if f.available { "yes" } else { "no" },
            f.detail
        );
    }
    out!("\nfaults:");
    for f in &report.faults {
        out!(
            "  {:<36} {:<4} {}",
            f.fault,
            if f.available { "yes" } else { "no" },
            f.detail
        );
    }
    Ok(ExitCode::SUCCESS)
}
