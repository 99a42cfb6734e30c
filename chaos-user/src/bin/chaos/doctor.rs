//! `chaos doctor`

use crate::common;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

pub fn run(_args: DoctorArgs, json: bool) -> chaos::Result<ExitCode> {
    let report = chaos::doctor::run()?;
    if json {
        common::print_json(&report);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "kernel {}\n\nkernel features (probed by loading and attaching):",
        report.kernel
    );
    for f in &report.features {
        println!(
            "  {:<20} {:<4} {}",
            f.name,
            if f.available { "yes" } else { "no" },
            f.detail
        );
    }
    println!("\nfaults:");
    for f in &report.faults {
        println!(
            "  {:<36} {:<4} {}",
            f.fault,
            if f.available { "yes" } else { "no" },
            f.detail
        );
    }
    Ok(ExitCode::SUCCESS)
}
