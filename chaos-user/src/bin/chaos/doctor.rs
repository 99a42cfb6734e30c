use std::process::ExitCode;
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}
pub fn run(_a: DoctorArgs, _json: bool) -> chaos::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
