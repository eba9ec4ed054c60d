//! `cellar config check --config FILE`: validate a `cellar.toml`, open every backend it names,
//! and print what each one holds (`docs/config.md`). Exit 0 if everything opened and read, 1
//! otherwise; a refused file prints one line `FILE:LINE: KEY: MESSAGE`.

use cellar::registry::Registry;
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands of `cellar config`.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the file, open every backend, print what each holds.
    Check {
        /// The configuration file.
        #[arg(long, default_value = "cellar.toml")]
        config: PathBuf,
    },
}

/// Runs a `cellar config` subcommand.
pub fn run(cmd: ConfigCommand) -> ExitCode {
    let ConfigCommand::Check { config } = cmd;
    let registry = match Registry::open(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cellar config check: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lines = registry.probe();
    for l in &lines {
        println!("{}{}", if l.ok { "" } else { "ERROR " }, l.text);
    }
    let failed = lines.iter().filter(|l| !l.ok).count();
    let c = registry.config();
    println!(
        "{}: {} stores, {} cells, {} volumes, {} shares; {}",
        config.display(),
        c.stores.len(),
        c.cells.len(),
        c.volumes.len(),
        c.shares.len(),
        if failed == 0 { "all backends answered".to_owned() } else { format!("{failed} failed") }
    );
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
