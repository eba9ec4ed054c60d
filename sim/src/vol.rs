//! `cellar vol ...`. TODO(lead).
use std::process::ExitCode;

/// Subcommands of `cellar vol`.
#[derive(clap::Subcommand, Debug)]
pub enum VolCommand {}

/// Runs a `cellar vol` subcommand.
pub fn run(cmd: VolCommand) -> ExitCode {
    match cmd {}
}
