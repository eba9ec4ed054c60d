//! The sector server's socket is its owner's only (specs/sector-protocol.md PROTO-12): the
//! socket file has mode 0600, a peer whose uid is on the allow list is served, and with the
//! allow list not naming our uid the same client is closed before anything it sent is read.
//! (A test cannot run as another user; refusing our own uid exercises the same check.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::proto::access::own_uid;
use cellar::sector::proto::server::{Backend, Server, ServerConfig};
use cellar::sector::proto::{ErrorReply, Request, Response, SectorClient};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Answers every read with "absent".
struct Empty;

impl Backend for Empty {
    fn handle(&self, _request: Request) -> Response {
        Response::Record(None)
    }
    fn flush(&self) -> Result<(), ErrorReply> {
        Ok(())
    }
}

/// Serves `socket` with `uids` allowed until the returned guard stops it.
fn serve(socket: &Path, uids: Option<Vec<u32>>) -> impl Drop {
    let mut server = Server::bind(socket, Empty, ServerConfig::default().workers(1)).unwrap();
    if let Some(u) = uids {
        server = server.allow_uids(u);
    }
    let handle = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    struct Stop(Option<Box<dyn FnOnce()>>);
    impl Drop for Stop {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Stop(Some(Box::new(move || {
        handle.shutdown();
        let _ = thread.join();
    })))
}

#[test]
fn socket_is_owner_only_and_foreign_uids_are_closed_unread() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sector.sock");
    {
        let _server = serve(&socket, None);
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "PROTO-12: owner-only socket file");
        let mut client = SectorClient::connect(&socket).unwrap();
        assert_eq!(client.read(7).unwrap(), None, "our own uid is served by default");
    }
    {
        let _server = serve(&socket, Some(vec![own_uid().wrapping_add(1)]));
        let mut client = SectorClient::connect(&socket).unwrap();
        assert!(client.read(7).is_err(), "a uid off the allow list is closed unread");
    }
    {
        let _server = serve(&socket, Some(vec![own_uid().wrapping_add(1), own_uid()]));
        let mut client = SectorClient::connect(&socket).unwrap();
        assert_eq!(client.read(7).unwrap(), None, "any uid on the list is served");
    }
}
