//! `cellar kv --node ADDR ...`: a client of a running `cellar node` (GitDb's API over TCP):
//! arguments → one `KvRequest`, sent as one message over a secure channel
//! (`cellar::net::channel`); the `KvResponse` printed. The node answers with
//! `cellar::db::gossip::service::answer`.
//!
//! The client proves group membership with the group secret (the channel PSK is derived from
//! it), read from `--secret-file` or `CELLAR_SECRET`, never from the command line. Its static
//! channel key is fresh for every run: a client has no identity beyond membership.

use crate::link::{Credentials, Link, SECRET_ENV, given_secret};
use cellar::db::gossip::frame::{self, NetFrame};
use cellar::db::gossip::service::{KvRequest, KvResponse};
use cellar::env::OsEntropy;
use cellar::net::channel::{ChannelPsk, StaticKeys};
use cellar::net::limits::ConnectionLimits;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `cellar kv` arguments.
#[derive(clap::Args, Debug)]
pub struct KvArgs {
    /// The node to talk to.
    #[arg(long)]
    pub node: String,
    /// A file holding the group secret (64 hex digits). Or set CELLAR_SECRET.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
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
    let creds = match credentials(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cellar kv: {e}");
            return ExitCode::from(2);
        }
    };
    match exchange(&args.node, &creds, &NetFrame::Request(req)) {
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

/// The client's credentials: a fresh static key and the group PSK.
fn credentials(args: &KvArgs) -> Result<Credentials, String> {
    let Some(secret) = given_secret(args.secret_file.as_deref())? else {
        return Err(format!(
            "no credentials: pass --secret-file FILE or set {SECRET_ENV} (the group secret)"
        ));
    };
    let keys = StaticKeys::generate(Arc::new(OsEntropy)).map_err(|e| e.to_string())?;
    Ok(Credentials { keys, psk: ChannelPsk::from_secret(&secret) })
}

/// One request, one response, over a fresh channel (the node keeps serving a connection until
/// the client closes it, NP-1; `cellar kv` sends one request per run).
fn exchange(node: &str, creds: &Credentials, req: &NetFrame) -> std::io::Result<KvResponse> {
    let body = frame::encode_body(req).map_err(std::io::Error::other)?;
    let mut link = Link::connect(node, creds, ConnectionLimits::default())?;
    link.send(&body)?;
    let answer = link.recv_reply().map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
            std::io::Error::other("the node closed the connection (wrong group secret?)")
        }
        _ => e,
    })?;
    frame::decode_body(&answer).map_err(std::io::Error::other)
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
