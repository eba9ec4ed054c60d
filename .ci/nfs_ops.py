#!/usr/bin/env python3
"""NFSv3 namespace operations that libnfs-utils has no command for (mkdir, rename, unlink,
rmdir), through the same libnfs (Debian's libnfs13) that nfs-cp and nfs-ls use, by ctypes.

    nfs_ops.py URL mkdir PATH | rename FROM TO | unlink PATH | rmdir PATH

URL is `nfs://127.0.0.1/EXPORT/?version=3&nfsport=P&mountport=P`; paths are inside the export.
Exit status 0 on success, 1 with libnfs's error on stderr otherwise.
"""
import ctypes
import sys


class NfsUrl(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]


def main() -> int:
    url, op, *args = sys.argv[1:]
    lib = ctypes.CDLL("libnfs.so.13")
    lib.nfs_init_context.restype = ctypes.c_void_p
    lib.nfs_parse_url_dir.restype = ctypes.POINTER(NfsUrl)
    lib.nfs_parse_url_dir.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nfs_get_error.restype = ctypes.c_char_p
    lib.nfs_get_error.argtypes = [ctypes.c_void_p]
    for f in ("nfs_mount", "nfs_rename"):
        getattr(lib, f).argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    for f in ("nfs_mkdir", "nfs_unlink", "nfs_rmdir"):
        getattr(lib, f).argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    nfs = lib.nfs_init_context()
    u = lib.nfs_parse_url_dir(nfs, url.encode())
    if not u:
        print(f"nfs_ops: bad url: {lib.nfs_get_error(nfs).decode()}", file=sys.stderr)
        return 1
    if lib.nfs_mount(nfs, u.contents.server, u.contents.path) != 0:
        print(f"nfs_ops: mount: {lib.nfs_get_error(nfs).decode()}", file=sys.stderr)
        return 1
    paths = [a.encode() for a in args]
    rc = {"mkdir": lib.nfs_mkdir, "unlink": lib.nfs_unlink, "rmdir": lib.nfs_rmdir,
          "rename": lib.nfs_rename}[op](nfs, *paths)
    if rc != 0:
        print(f"nfs_ops: {op} {args}: {lib.nfs_get_error(nfs).decode()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
