//! `cellar sector ...`. TODO(helper: sector-server).
use std::process::ExitCode;

/// Subcommands of `cellar sector`.
#[derive(clap::Subcommand, Debug)]
pub enum SectorCommand {}

/// Runs a `cellar sector` subcommand.
pub fn run(cmd: SectorCommand) -> ExitCode {
    match cmd {}
}
