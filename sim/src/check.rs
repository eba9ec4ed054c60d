//! `cellar check`. TODO(helper: models).
use std::process::ExitCode;

/// Arguments of `cellar check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {}

/// Runs `cellar check`.
pub fn run(_args: &CheckArgs) -> ExitCode {
    ExitCode::FAILURE
}
