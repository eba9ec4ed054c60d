//! Who may talk to the sector server (`specs/sector-protocol.md`, PROTO-12): the socket file is
//! made owner-only (mode 0600) right after it is bound, and every accepted connection's peer uid,
//! read from the kernel with `SO_PEERCRED`, must be on the server's allow list (default: the
//! server's own effective uid). A connection from anyone else is closed before a byte of it is
//! read.
//!
//! Why both: the mode keeps other users from connecting at all; the uid check also covers the
//! moment between `bind` and `chmod`, and a socket file whose directory or mode an operator
//! loosened. The kernel vouches for the uid, so the peer cannot lie about it.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The socket file's mode: read and write for its owner only.
pub const SOCKET_MODE: u32 = 0o600;

/// Makes the socket file at `path` owner-only.
///
/// # Errors
/// The mode could not be set.
pub fn restrict_socket_file(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
}

/// The effective uid of this process (the default allow list).
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid of the process at the other end of `stream`, as the kernel recorded it at connect.
///
/// # Errors
/// `getsockopt(SO_PEERCRED)` failed.
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes passed; the fd is open for the
    // lifetime of `stream`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::other("SO_PEERCRED returned a short credential"));
    }
    Ok(cred.uid)
}

/// Is the peer of `stream` on `allowed`? A peer whose uid cannot be read is refused.
pub fn peer_allowed(stream: &UnixStream, allowed: &[u32]) -> bool {
    peer_uid(stream).is_ok_and(|uid| allowed.contains(&uid))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests report failure by panicking")]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_reports_our_own_uid() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(peer_uid(&a).unwrap(), own_uid());
        assert!(peer_allowed(&a, &[own_uid()]));
        assert!(!peer_allowed(&a, &[own_uid().wrapping_add(1)]));
        assert!(!peer_allowed(&a, &[]));
    }
}
