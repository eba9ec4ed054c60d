//! The key/value service of a gossip node: one [`KvRequest`] in, one [`KvResponse`] out,
//! against the node's versioned KV (GitDb's API: set, get, list, delete, commit, rollback, log,
//! status).
//!
//! Why here and not in a command: the service is the node's behaviour towards its clients, and
//! it must not depend on how requests arrive. `cellar node` answers requests read from TCP
//! (framed by [`super::frame`]); the simulator's gossip clients write and commit through the
//! same [`answer`], so a change to the service is checked by the simulator's oracles too.
//!
//! The driver owns the disk: after a request it persists the node's head to its cell (as it
//! does after a merge, [`super::Handled::merged`]). [`answer`] never panics on a request; a
//! failure is a [`KvResponse::Error`].

use super::GossipNode;
use crate::db::hkv::HkvError;
use serde::{Deserialize, Serialize};

/// Most log entries one request returns (a larger `Log` limit is cut to this).
pub const LOG_LIMIT_MAX: usize = 1000;
/// Hex digits of a snapshot CID shown in a `Log` line.
pub const LOG_CID_HEX_DIGITS: usize = 12;

/// A client request (`cellar kv`). Part of the node protocol: the postcard encoding of this
/// type is on the wire, so variants are only ever appended.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum KvRequest {
    /// Set a key (uncommitted).
    Set(String, Vec<u8>),
    /// Read a key: the resolved value and every sibling.
    Get(String),
    /// List children (`false`) or all keys with their values (`true`) under a prefix.
    List(String, bool),
    /// Delete a key (uncommitted).
    Delete(String),
    /// Commit with a message.
    Commit(String),
    /// Drop uncommitted changes.
    Rollback,
    /// History, newest first, at most this many entries (cut to [`LOG_LIMIT_MAX`]).
    Log(usize),
    /// Head, root and counters.
    Status,
}

/// The answer to a [`KvRequest`]. On the wire like [`KvRequest`]: variants only appended.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum KvResponse {
    /// Done.
    Ok,
    /// A value (`None`: absent or deleted) and its siblings.
    Value(Option<Vec<u8>>, Vec<Option<Vec<u8>>>),
    /// Keys or child names (with values, for a recursive list).
    Keys(Vec<String>),
    /// A commit's snapshot ref (text form).
    Committed(String),
    /// History lines.
    Log(Vec<String>),
    /// Status lines.
    Status(Vec<String>),
    /// The request failed.
    Error(String),
}

/// Serves one request against `node`'s KV. A commit also makes the node announce at its next
/// tick; persisting the new head is the caller's job.
pub fn answer(node: &mut GossipNode, req: KvRequest) -> KvResponse {
    let result = match req {
        KvRequest::Set(k, v) => node.db_mut().set(&k, &v).map(|()| KvResponse::Ok),
        KvRequest::Delete(k) => node.db_mut().delete(&k).map(|()| KvResponse::Ok),
        KvRequest::Get(k) => {
            let db = node.db();
            db.get(&k).and_then(|v| Ok(KvResponse::Value(v, db.siblings(&k)?)))
        }
        KvRequest::List(p, false) => node.db().list(&p).map(KvResponse::Keys),
        KvRequest::List(p, true) => list_with_values(node, &p),
        KvRequest::Commit(m) => node.db_mut().commit(&m).map(|r| {
            node.announce_soon();
            KvResponse::Committed(r.to_string())
        }),
        KvRequest::Rollback => {
            node.db_mut().rollback();
            Ok(KvResponse::Ok)
        }
        KvRequest::Log(limit) => log(node, limit),
        KvRequest::Status => status(node),
    };
    result.unwrap_or_else(|e| KvResponse::Error(e.to_string()))
}

/// Text of a value as a client shows it (invalid UTF-8 replaced).
fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn list_with_values(node: &GossipNode, prefix: &str) -> Result<KvResponse, HkvError> {
    let db = node.db();
    let mut lines = Vec::new();
    for k in db.list_recursive(prefix)? {
        let values: Vec<String> =
            db.siblings(&k)?.into_iter().flatten().map(|v| text(&v)).collect();
        lines.push(format!("{k} = {}", values.join(" | ")));
    }
    Ok(KvResponse::Keys(lines))
}

fn log(node: &GossipNode, limit: usize) -> Result<KvResponse, HkvError> {
    let entries = node.db().log(limit.min(LOG_LIMIT_MAX))?;
    let lines = entries
        .into_iter()
        .map(|(r, s)| {
            let mut cid = r.cid.to_hex();
            cid.truncate(LOG_CID_HEX_DIGITS);
            format!(
                "{cid} lamport={} author={} parents={} {}",
                s.lamport,
                s.author.0,
                s.parents.len(),
                s.message
            )
        })
        .collect();
    Ok(KvResponse::Log(lines))
}

fn status(node: &GossipNode) -> Result<KvResponse, HkvError> {
    let db = node.db();
    let root = db.head_root()?;
    Ok(KvResponse::Status(vec![
        format!("node {}", db.node().0),
        format!("head {}", db.head().map_or("none".into(), |h| h.cid.to_hex())),
        format!("root {}", root.map_or("none".into(), |r| r.cid.to_hex())),
        format!("uncommitted {}", db.uncommitted()),
        format!("fetches {}", node.fetches_in_progress()),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::gossip::{GossipConfig, PeerId};
    use crate::db::hkv::Hkv;
    use crate::db::merge::{MergePolicy, NodeId};
    use crate::env::DetEntropy;
    use crate::storage::store::{MemStore, Store};
    use std::sync::Arc;

    fn node() -> GossipNode {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let db = Hkv::new(store, [3; 32], NodeId(7), MergePolicy::LastWriteWins, None);
        GossipNode::new(db, vec![PeerId(1)], Arc::new(DetEntropy::new(1)), GossipConfig::default())
    }

    fn set(k: &str, v: &str) -> KvRequest {
        KvRequest::Set(k.into(), v.as_bytes().to_vec())
    }

    #[test]
    fn set_commit_get_list_delete() {
        let mut n = node();
        assert_eq!(answer(&mut n, set("/users/alice", "1")), KvResponse::Ok);
        assert_eq!(answer(&mut n, set("/users/bob", "2")), KvResponse::Ok);
        let KvResponse::Committed(r) = answer(&mut n, KvRequest::Commit("first".into())) else {
            panic!("commit answers with its ref");
        };
        assert_eq!(n.db().head().map(|h| h.to_string()), Some(r));
        let got = answer(&mut n, KvRequest::Get("/users/alice".into()));
        assert_eq!(got, KvResponse::Value(Some(b"1".to_vec()), vec![Some(b"1".to_vec())]));
        let kids = answer(&mut n, KvRequest::List("/".into(), false));
        assert_eq!(kids, KvResponse::Keys(vec!["users".into()]));
        let all = answer(&mut n, KvRequest::List("/".into(), true));
        assert_eq!(all, KvResponse::Keys(vec!["/users/alice = 1".into(), "/users/bob = 2".into()]));
        assert_eq!(answer(&mut n, KvRequest::Delete("/users/bob".into())), KvResponse::Ok);
        // The delete is seen before the rollback undoes it (the test used to go straight to the
        // rollback, so a delete that did nothing passed).
        let gone = answer(&mut n, KvRequest::Get("/users/bob".into()));
        assert!(matches!(gone, KvResponse::Value(None, _)), "{gone:?}");
        assert_eq!(n.db().uncommitted(), 1);
        assert_eq!(answer(&mut n, KvRequest::Rollback), KvResponse::Ok);
        assert_eq!(n.db().uncommitted(), 0);
        let bob = answer(&mut n, KvRequest::Get("/users/bob".into()));
        assert_eq!(bob, KvResponse::Value(Some(b"2".to_vec()), vec![Some(b"2".to_vec())]));
    }

    #[test]
    fn log_is_cut_to_its_limit_and_status_names_the_node() {
        let mut n = node();
        for i in 0..3 {
            answer(&mut n, set("/k", &i.to_string()));
            answer(&mut n, KvRequest::Commit(format!("c{i}")));
        }
        let KvResponse::Log(lines) = answer(&mut n, KvRequest::Log(2)) else {
            panic!("log answers with lines");
        };
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" c2") && lines[1].ends_with(" c1"), "{lines:?}");
        assert_eq!(lines[0].split(' ').next().map(str::len), Some(LOG_CID_HEX_DIGITS));
        let KvResponse::Status(st) = answer(&mut n, KvRequest::Status) else {
            panic!("status answers with lines");
        };
        assert_eq!(st[0], "node 7");
        assert!(st.contains(&"uncommitted 0".to_owned()), "{st:?}");
    }

    #[test]
    fn bad_requests_get_an_error_not_a_panic() {
        let mut n = node();
        for req in [set("no-slash", "x"), KvRequest::Get("".into()), KvRequest::Delete("/".into())]
        {
            assert!(matches!(answer(&mut n, req.clone()), KvResponse::Error(_)), "{req:?}");
        }
        assert_eq!(n.db().uncommitted(), 0, "a refused request changes nothing");
    }
}
