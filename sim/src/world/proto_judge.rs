//! Judges what the protocol server executed for the cell clients' key/value requests against
//! `SectorSpec` (through [`KvModel`]), at the moment it executed them: a `Write` the server
//! answered `Written` is an acknowledged write (flushed if it asked to be), a `Read`'s reply must
//! be the key's current value or an error a fault explains (SEC-6), and a later recovery must
//! keep what was flushed (SEC-7, judged with the key/value workload's keys after every restart).
//! The reply is judged as the client reads it: decoded from the frame the server sent.
//!
//! Whether the reply reaches the client does not matter here: the engine executed the request,
//! so its effects are the engine's to keep, as for a client that disconnects mid-request
//! (PROTO-8).

use super::World;
use crate::cells::server::Executed;
use crate::oracle::Violation;
use cellar::sector::Version;
use cellar::sector::proto::{ErrorKind, Request, Response, codec};
use cellar_model::spec::{SectorFailure, SectorRead, SectorRecord};

/// The rule for a reply the key/value requests may not get.
pub const RULE_PROTO_REPLY: &str = "the protocol answers a write or read as the engine does";

impl World<'_> {
    /// Judges one executed request (cell requests are CELL-1's; others are ignored).
    pub(super) fn judge_executed(&mut self, e: &Executed) -> Result<(), Violation> {
        let response = codec::decode_response_frame(&e.reply)
            .map_err(|err| Violation::new(RULE_PROTO_REPLY, format!("reply frame: {err}")))?
            .0
            .response;
        match &e.request {
            Request::Write { key, value, options } if *key < self.knobs.kv_keys => {
                match response {
                    Response::Written { version } => {
                        // Written as a plain record: not compressed, not packed.
                        let plain = !options.compressed && !options.compact;
                        self.model.on_write(
                            *key,
                            Some(value.clone()),
                            Some(Version(version)),
                            plain,
                        );
                        if options.flush {
                            self.model.on_flush();
                        }
                        Ok(())
                    }
                    Response::Error(r) if r.kind == ErrorKind::NoSpace => Ok(()),
                    other => Err(Violation::new(
                        RULE_PROTO_REPLY,
                        format!("write {key} through the protocol: {other:?}"),
                    )),
                }
            }
            Request::Read { key } if *key < self.knobs.kv_keys => {
                let got: SectorRead = match response {
                    Response::Record(r) => {
                        Ok(r.map(|r| SectorRecord { value: r.value, version: r.version }))
                    }
                    // The wire's error carries no key: it answers this request's key.
                    Response::Error(r) => Err(match r.kind {
                        ErrorKind::Corrupt => {
                            SectorFailure::Corrupt { key: *key, detail: r.message }
                        }
                        ErrorKind::Io => SectorFailure::Device(r.message),
                        _ => SectorFailure::Other(r.message),
                    }),
                    other => {
                        return Err(Violation::new(
                            RULE_PROTO_REPLY,
                            format!("read {key} through the protocol: {other:?}"),
                        ));
                    }
                };
                self.model.check_read_spec(*key, &got, e.fault_hit)
            }
            _ => Ok(()),
        }
    }
}
