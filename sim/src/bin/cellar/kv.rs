//! `cellar kv --node ADDR ...`: a client of a running `cellar node` (GitDb's API over TCP):
//! arguments → one `KvRequest`, sent in a frame; the `KvResponse` printed. The node answers
//! with `cellar::db::gossip::service::answer`.

use crate::node::{connect, read_frame, write_frame};
use cellar::db::gossip::frame::NetFrame;
use cellar::db::gossip::service::{KvRequest, KvResponse};
use std::process::ExitCode;

/// `cellar kv` arguments.
#[derive(clap::Args, Debug)]
pub struct KvArgs {
    /// The node to talk to.
    #[arg(long)]
    pub node: String,
    /// The operation.
    #[command(subcommand)]
    pub op: KvOp,
}

/// Operations of `cellar kv`.
#[derive(clap::Subcommand, Debug)]
pub enum KvOp {
    /// Set KEY (a path like /users/alice) to VALUE (uncommitted until `commit`).
    Set {
        /// The key.
        key: String,
        /// The value (UTF-8 text).
        value: String,
    },
    /// Print KEY's value (all siblings, one per line, if concurrent writes are kept).
    Get {
        /// The key.
        key: String,
    },
    /// List the direct children of PREFIX (or every key under it with --recursive).
    List {
        /// The prefix, e.g. / or /users.
        #[arg(default_value = "/")]
        prefix: String,
        /// List every key under PREFIX, with its value.
        #[arg(long, short)]
        recursive: bool,
    },
    /// Delete KEY (uncommitted until `commit`).
    Delete {
        /// The key.
        key: String,
    },
    /// Commit the uncommitted changes as a snapshot.
    Commit {
        /// The message.
        message: String,
    },
    /// Drop uncommitted changes.
    Rollback,
    /// Show the history, newest first.
    Log {
        /// At most this many snapshots.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show the node's head and root.
    Status,
}

/// Runs one client request and prints the answer.
pub fn run(args: &KvArgs) -> ExitCode {
    let req = match &args.op {
        KvOp::Set { key, value } => KvRequest::Set(key.clone(), value.clone().into_bytes()),
        KvOp::Get { key } => KvRequest::Get(key.clone()),
        KvOp::List { prefix, recursive } => KvRequest::List(prefix.clone(), *recursive),
        KvOp::Delete { key } => KvRequest::Delete(key.clone()),
        KvOp::Commit { message } => KvRequest::Commit(message.clone()),
        KvOp::Rollback => KvRequest::Rollback,
        KvOp::Log { limit } => KvRequest::Log(*limit),
        KvOp::Status => KvRequest::Status,
    };
    let resp = connect(&args.node).and_then(|mut s| {
        write_frame(&mut s, &NetFrame::Request(req))?;
        read_frame::<KvResponse>(&mut s)
    });
    match resp {
        Ok(KvResponse::Error(e)) => {
            eprintln!("cellar kv: {e}");
            ExitCode::FAILURE
        }
        Ok(KvResponse::Value(None, _)) => {
            eprintln!("cellar kv: not found");
            ExitCode::from(2)
        }
        Ok(r) => {
            print_response(r);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cellar kv: {}: {e}", args.node);
            ExitCode::FAILURE
        }
    }
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn print_response(r: KvResponse) {
    match r {
        KvResponse::Ok => {}
        KvResponse::Value(Some(v), siblings) if siblings.len() <= 1 => println!("{}", text(&v)),
        KvResponse::Value(_, siblings) => {
            for s in siblings {
                println!("{}", s.map_or_else(|| "<deleted>".to_owned(), |v| text(&v)));
            }
        }
        KvResponse::Keys(keys) | KvResponse::Log(keys) | KvResponse::Status(keys) => {
            for k in keys {
                println!("{k}");
            }
        }
        KvResponse::Committed(r) => println!("{r}"),
        KvResponse::Error(e) => eprintln!("{e}"),
    }
}
