//! The `cellar` command: volumes, the sector engine, model checking and simulation.
//!
//! Every subcommand lives in its own module and returns an [`ExitCode`]; errors are printed as
//! one line naming the problem, never as a panic.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod check;
mod config;
mod conform;
mod demo;
mod fs;
mod kv;
mod link;
mod mount;
mod node;
mod outbox;
mod sector;
mod serve;
mod sim;
mod verify;
mod vol;

/// Cellar: content-addressed, encrypted, versioned storage with its checkers.
#[derive(Parser, Debug)]
#[command(name = "cellar", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Volumes: a (cell, store) pair in a directory.
    #[command(subcommand)]
    Vol(vol::VolCommand),
    /// The sector engine: format, serve, verify, and client commands.
    #[command(subcommand)]
    Sector(sector::SectorCommand),
    /// The registry's config file (`cellar.toml`): check it and every backend it names.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// The demo: two volumes, put, sync, cleanup, read back.
    Demo(demo::DemoArgs),
    /// Model-check the stateright models (and their mutants).
    Check(check::CheckArgs),
    /// Conformance: judge an implementation in any language (specs/conform.md).
    #[command(subcommand)]
    Conform(conform::ConformCommand),
    /// Mount a share of `cellar.toml` read-write through FUSE (commits on fsync and unmount).
    Mount(mount::MountArgs),
    /// Serve every share of `cellar.toml` that enables nfs over NFSv3 (MOUNT and NFS, one port).
    Serve(serve::ServeArgs),
    /// Run a gossip replica of the versioned KV over TCP.
    Node(node::NodeArgs),
    /// Talk to a running `cellar node`: set, get, list, delete, commit, log.
    Kv(kv::KvArgs),
    /// Run the deterministic simulator (seeds, profiles, planted bugs, replay).
    Sim(sim::SimArgs),
    /// The main job: model check every model and run a 500-seed simulation campaign.
    Verify(verify::VerifyArgs),
    #[command(flatten)]
    Got(fs::GotCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Vol(cmd) => vol::run(cmd),
        Command::Sector(cmd) => sector::run(cmd),
        Command::Check(args) => check::run(&args),
        Command::Conform(cmd) => conform::run(cmd),
        Command::Config(cmd) => config::run(cmd),
        Command::Demo(args) => demo::run(&args),
        Command::Mount(args) => mount::run(&args),
        Command::Node(args) => node::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Kv(args) => kv::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Got(cmd) => fs::run(cmd),
    }
}
