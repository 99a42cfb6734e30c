use std::process::ExitCode;
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}
#[derive(Debug, clap::Args)]
pub struct ClientArgs {}
pub async fn run(_a: DemoArgs) -> chaos::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
pub fn client(_a: ClientArgs) -> chaos::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
