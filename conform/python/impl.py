#!/usr/bin/env python3
"""An independent implementation of Cellar's formats, written from specs/ only.

It speaks the black-box protocol of specs/conform.md (JSON lines on stdin/stdout, logs on
stderr) so that `cellar conform vectors --impl 'python3 conform/python/impl.py'` can judge it.
Standard library, plus `blake3` and `cryptography` from PyPI for the formats that need
cryptography (without them those formats are simply not announced in `hello`).

Every decoder follows the order of checks its spec gives and raises Refuse(kind) with a kind of
specs/encoding.md ENC-5.
"""

import json
import struct
import sys

try:
    from blake3 import blake3
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    HAVE_CRYPTO = True
except ImportError:  # pragma: no cover - reported through hello
    HAVE_CRYPTO = False


class Refuse(Exception):
    """A decoder refusal with its ENC-5 kind."""

    def __init__(self, kind, message=""):
        super().__init__(message or kind)
        self.kind = kind


# ---------------------------------------------------------------- ENC-1 primitives


def crc32c(data):
    """CRC-32C (Castagnoli), reflected polynomial 0x82F63B78 (ENC-1)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class Reader:
    """Reads the ENC-1 types from a byte string."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise Refuse("truncated", "input ends early")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def bool(self):
        b = self.u8()
        if b > 1:
            raise Refuse("invalid_value", "bool byte %d" % b)
        return b == 1

    def varint(self, bits):
        """ENC-2: at most ceil(bits/7) bytes; the last byte of a maximal one only carries the
        bits left over. Overlong forms are accepted (they are `acceptable`)."""
        out = 0
        max_len = (bits + 6) // 7
        for i in range(max_len):
            b = self.u8()
            out |= (b & 0x7F) << (7 * i)
            if b & 0x80 == 0:
                if i == max_len - 1 and b > (1 << (bits % 7)) - 1:
                    raise Refuse("invalid_value", "varint too large")
                return out
        raise Refuse("invalid_value", "varint does not end")

    def bytes(self):
        return self.take(self.varint(64))

    def string(self):
        raw = self.bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refuse("invalid_value", "not UTF-8")

    def option(self, read):
        tag = self.u8()
        if tag == 0:
            return None
        if tag == 1:
            return read()
        raise Refuse("invalid_value", "option byte %d" % tag)

    def vec(self, read):
        return [read() for _ in range(self.varint(64))]

    def tag(self, count):
        t = self.varint(32)
        if t >= count:
            raise Refuse("unknown_variant", "tag %d" % t)
        return t

    def end(self):
        if self.pos != len(self.data):
            raise Refuse("trailing_bytes", "%d bytes left" % (len(self.data) - self.pos))


def u32le(b, at):
    return struct.unpack_from("<I", b, at)[0]


def u64le(b, at):
    return struct.unpack_from("<Q", b, at)[0]


# ---------------------------------------------------------------- refs (specs/refs.md)

REF_PREFIX = b"cellar:ref:v1:"
HEX = b"0123456789abcdef"


def ref_json(b):
    return {"cid": b[:32].hex(), "dek": b[32:].hex()}


def ref_from_json(v):
    return bytes.fromhex(v["cid"]) + bytes.fromhex(v["dek"])


def decode_ref_binary(b, params):
    if len(b) != 64:
        raise Refuse("bad_length", "%d bytes" % len(b))
    return ref_json(b)


def decode_ref_text(b, params):
    # REF-5, in its order: prefix, characters, length.
    if not b.startswith(REF_PREFIX):
        raise Refuse("bad_prefix")
    digits = b[len(REF_PREFIX):]
    for c in digits:
        if c not in HEX:
            raise Refuse("bad_char")
    if len(digits) != 128:
        raise Refuse("bad_length")
    return ref_json(bytes.fromhex(digits.decode()))


def ref_post(inp):
    salt = bytes.fromhex(inp["salt"])
    plaintext = bytes.fromhex(inp["plaintext"])
    k = blake3(salt, derive_key_context="cellar 2026 ref dek v1").digest()
    dek = blake3(plaintext, key=k).digest()
    ct = ChaCha20Poly1305(dek).encrypt(b"\0" * 12, plaintext, b"")
    cid = blake3(ct).digest()
    return {"ref": (cid + dek).hex(), "ciphertext": ct.hex()}, cid, ct


def ref_open(inp):
    r = bytes.fromhex(inp["ref"])
    ct = bytes.fromhex(inp["ciphertext"])
    # REF-4: CID, then length, then tag.
    if blake3(ct).digest() != r[:32]:
        raise Refuse("auth_failed", "CID mismatch")
    if len(ct) < 16:
        raise Refuse("truncated")
    try:
        p = ChaCha20Poly1305(r[32:]).decrypt(b"\0" * 12, ct, b"")
    except InvalidTag:
        raise Refuse("auth_failed", "tag")
    return {"plaintext": p.hex()}


# ---------------------------------------------------------------- cells (specs/cells.md)


def decode_cell_file(b, params):
    max_size = params.get("max_size_bytes", 4096)
    if len(b) > max_size + 19:
        raise Refuse("too_large")
    if len(b) < 10:
        raise Refuse("truncated")
    body, crc = b[:-4], u32le(b, len(b) - 4)
    if crc32c(body) != crc:
        raise Refuse("bad_checksum")
    r = Reader(body)
    magic, version, value = r.take(4), r.u8(), r.bytes()
    if magic != b"CLCF":
        raise Refuse("bad_magic")
    if version != 1:
        raise Refuse("unsupported_version")
    r.end()
    if len(value) > max_size:
        raise Refuse("too_large")
    return {"value": value.hex()}


def encode_cell_file(v, params):
    value = bytes.fromhex(v["value"])
    body = b"CLCF\x01" + varint(len(value)) + value
    return body + struct.pack("<I", crc32c(body))


def rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def hchacha20(key, nonce16):
    """HChaCha20 (draft-irtf-cfrg-xchacha): the subkey of XChaCha20."""
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


SEAL_AAD_PURPOSE = b"cellar 2026 sealed cell value"


def xchacha_open(key, nonce, ct, aad):
    """XChaCha20-Poly1305 decryption: ChaCha20-Poly1305 under the HChaCha20 subkey."""
    aead = ChaCha20Poly1305(hchacha20(key, nonce[:16]))
    try:
        return aead.decrypt(b"\0\0\0\0" + nonce[16:], ct, aad)
    except InvalidTag:
        raise Refuse("auth_failed")


def decode_cell_sealed(b, params):
    """specs/cells.md §4.6: version 1 (§4.1, counter 0) or version 2 (§4.5, counted)."""
    key = bytes.fromhex(params["key"])
    if len(b) == 0:
        return {"counter": 0, "plaintext": ""}
    if b[0] == 2:
        if len(b) < 49:
            raise Refuse("truncated")
        msg = xchacha_open(key, b[1:25], b[25:], SEAL_AAD_PURPOSE + b"\x02")
        return {"counter": struct.unpack("<Q", msg[:8])[0], "plaintext": msg[8:].hex()}
    if len(b) < 41:
        raise Refuse("truncated")
    if b[0] != 1:
        raise Refuse("unsupported_version")
    p = xchacha_open(key, b[1:25], b[25:], SEAL_AAD_PURPOSE + b"\x01")
    return {"counter": 0, "plaintext": p.hex()}


# ---------------------------------------------------------------- volume dir (specs/volume-dir.md)


def decode_volume_header(b, params):
    if len(b) > 4096:
        raise Refuse("too_large")
    if len(b) < 4:
        raise Refuse("truncated")
    body = b[:-4]
    if crc32c(body) != u32le(b, len(b) - 4):
        raise Refuse("bad_checksum")
    r = Reader(body)
    magic, version, secret = r.take(8), r.varint(32), r.take(32)
    r.end()
    if magic != b"CELLARVL":
        raise Refuse("bad_magic")
    if version != 1:
        raise Refuse("unsupported_version")
    return {"secret": secret.hex()}


def encode_volume_header(v, params):
    body = b"CELLARVL\x01" + bytes.fromhex(v["secret"])
    return body + struct.pack("<I", crc32c(body))


def volume_keys(inp):
    secret = bytes.fromhex(inp["secret"])
    return {
        "cell_key": blake3(secret, derive_key_context="cellar 2026 volume cell seal key v1").hexdigest(),
        "ref_salt": blake3(secret, derive_key_context="cellar 2026 volume ref salt v1").hexdigest(),
    }


def decode_file_index(b, params):
    r = Reader(b)
    version, level, size = r.u8(), r.u8(), r.varint(64)
    children = r.vec(lambda: r.take(64))
    r.end()
    if version != 1:
        raise Refuse("unsupported_version")
    if level >= 8:
        raise Refuse("invalid_value", "level")
    if not children:
        raise Refuse("invalid_value", "no children")
    if len(children) > 4096:
        raise Refuse("too_large")
    return {"level": level, "size_bytes": size, "children": [c.hex() for c in children]}


def encode_file_index(v, params):
    children = [bytes.fromhex(c) for c in v["children"]]
    return bytes([1, v["level"]]) + varint(v["size_bytes"]) + varint(len(children)) + b"".join(children)


def file_tree(inp):
    salt, content = inp["salt"], bytes.fromhex(inp["content"])
    chunk = inp["max_blob_size_bytes"] - 16
    fanout = min(max(max(chunk - 64, 0) // 64, 2), 4096)
    blobs = set()

    def post(plaintext):
        out, cid, _ = ref_post({"salt": salt, "plaintext": plaintext.hex()})
        blobs.add(cid)
        return bytes.fromhex(out["ref"])

    level = []
    pos = 0
    while True:
        piece = content[pos:pos + chunk]
        if not piece and level:
            break
        level.append((post(piece), len(piece)))
        pos += len(piece)
        if len(piece) < chunk:
            break
    height = 0
    while True:
        nxt = []
        for i in range(0, len(level), fanout):
            group = level[i:i + fanout]
            size = sum(s for _, s in group)
            node = {"level": height, "size_bytes": size, "children": [r.hex() for r, _ in group]}
            nxt.append((post(encode_file_index(node, {})), size))
        if len(nxt) == 1:
            return {"root": nxt[0][0].hex(), "blobs": len(blobs)}
        level = nxt
        height += 1


# ---------------------------------------------------------------- sector (specs/sector.md)


def check_crc(b, end):
    if crc32c(b[:end]) != u32le(b, end):
        raise Refuse("bad_checksum")


# specs/sector.md §2.1: version 2 added the record's own sector (SEC-17).
SECTOR_FORMAT_VERSION = 2


def decode_superblock(b, params):
    if len(b) < 4096:
        raise Refuse("truncated")
    if b[:8] != b"CELLSECT":
        raise Refuse("bad_magic")
    check_crc(b, 4092)
    if u32le(b, 8) != SECTOR_FORMAT_VERSION:
        raise Refuse("unsupported_version")
    if u32le(b, 12) != 4096:
        raise Refuse("invalid_value", "sector size")
    zsc, zc, dsc = u32le(b, 16), u32le(b, 20), u64le(b, 24)
    if not 8 <= zsc <= 65536 or zc < 2:
        raise Refuse("invalid_value", "geometry")
    if 2 + zc * zsc > dsc or dsc > 2**32 - 2:
        raise Refuse("invalid_value", "device size")
    return {"zone_sector_count": zsc, "zone_count": zc, "device_sector_count": dsc, "copy": u32le(b, 32)}


def encode_superblock(v, params):
    s = bytearray(4096)
    struct.pack_into("<8sIIIIQI", s, 0, b"CELLSECT", SECTOR_FORMAT_VERSION, 4096, v["zone_sector_count"],
                     v["zone_count"], v["device_sector_count"], v["copy"])
    struct.pack_into("<I", s, 4092, crc32c(bytes(s[:4092])))
    return bytes(s)


def zone_magic(params):
    return b"CELLFREE" if params.get("free") else b"CELLZONE"


def decode_zone_header(b, params):
    if len(b) < 32:
        raise Refuse("truncated")
    if b[:8] != zone_magic(params):
        raise Refuse("bad_magic")
    check_crc(b, 28)
    if u32le(b, 8) != SECTOR_FORMAT_VERSION:
        raise Refuse("unsupported_version")
    if u32le(b, 16) == 0:
        raise Refuse("invalid_value", "epoch 0")
    return {"zone": u32le(b, 12), "epoch": u32le(b, 16)}


def encode_zone_header(v, params):
    s = bytearray(32)
    struct.pack_into("<8sIII", s, 0, zone_magic(params), SECTOR_FORMAT_VERSION, v["zone"], v["epoch"])
    struct.pack_into("<I", s, 28, crc32c(bytes(s[:28])))
    return bytes(s)


RECORD_KINDS = {1: "Put", 2: "Tombstone", 3: "Commit", 4: "Seal", 5: "Mark"}
RECORD_FIELDS = "<IBBHQQIIQQQIIQ4sI"


def decode_record_header(b, params):
    if len(b) < 80:
        raise Refuse("truncated")
    if u32le(b, 0) != 0x31434552:
        raise Refuse("bad_magic")
    check_crc(b, 76)
    (_, kind, flags, zero, key, seq, epoch, plen, nxt, txn, mark, vlen, pcrc, sector, zeros, _) = \
        struct.unpack_from(RECORD_FIELDS, b, 0)
    if flags & ~31:
        raise Refuse("invalid_value", "flags")
    if zero or any(zeros):
        raise Refuse("invalid_value", "reserved")
    if kind not in RECORD_KINDS:
        raise Refuse("unknown_variant", "kind")
    if len(b) != 80:
        raise Refuse("trailing_bytes")
    return {"kind": RECORD_KINDS[kind], "flags": flags, "key": key, "seq": seq, "zone_epoch": epoch,
            "payload_len": plen, "next": nxt, "txn": txn, "durable_mark": mark, "value_len": vlen,
            "payload_crc": pcrc, "sector": sector}


def encode_record_header(v, params):
    kind = {n: k for k, n in RECORD_KINDS.items()}[v["kind"]]
    h = bytearray(struct.pack(RECORD_FIELDS, 0x31434552, kind, v["flags"], 0, v["key"], v["seq"],
                              v["zone_epoch"], v["payload_len"], v["next"], v["txn"], v["durable_mark"],
                              v["value_len"], v["payload_crc"], v["sector"], bytes(4), 0))
    struct.pack_into("<I", h, 76, crc32c(bytes(h[:76])))
    return bytes(h)


def decode_commit_payload(b, params):
    if len(b) < 4:
        raise Refuse("truncated")
    n = u32le(b, 0)
    if len(b) != 4 + 16 * n:
        raise Refuse("invalid_value", "length")
    return {"members": [{"key": u64le(b, 4 + 16 * i), "seq": u64le(b, 12 + 16 * i)} for i in range(n)]}


def encode_commit_payload(v, params):
    out = struct.pack("<I", len(v["members"]))
    return out + b"".join(struct.pack("<QQ", m["key"], m["seq"]) for m in v["members"])


# ---------------------------------------------------------------- sector protocol


def expected(r):
    t = r.tag(2)
    return {"type": "Absent"} if t == 0 else {"type": "Version", "value": r.varint(64)}


def options(r):
    return {"compressed": r.bool(), "compact": r.bool(), "revertible": r.bool(),
            "expected": r.option(lambda: expected(r)), "flush": r.bool(),
            "next": r.option(lambda: r.varint(64))}


def request(r):
    t = r.tag(13)
    key = lambda: r.varint(64)  # noqa: E731
    if t == 0:
        return {"type": "Read", "key": key()}
    if t == 1:
        return {"type": "ReadRange", "ranges": r.vec(lambda: {"first": key(), "last": key()})}
    if t == 2:
        return {"type": "ReadFollow", "key": key(), "records_max": r.varint(32)}
    if t in (3, 4):
        return {"type": "Write" if t == 3 else "Append", "key": key(), "value": r.bytes().hex(),
                "options": options(r)}
    if t == 5:
        return {"type": "Delete", "key": key(), "expected": r.option(lambda: expected(r)), "flush": r.bool()}
    if t == 6:
        return {"type": "Compare", "key": key(), "expected": expected(r)}
    if t == 7:
        item = lambda: {"key": key(), "expected": expected(r),  # noqa: E731
                        "new_value": r.option(lambda: r.bytes().hex())}
        return {"type": "Cas", "items": r.vec(item), "flush": r.bool()}
    names = {8: "Flush", 9: "Verify", 10: "Revert", 11: "Commit", 12: "Stat"}
    out = {"type": names[t]}
    if t in (9, 10, 11):
        out["key"] = key()
    return out


ERROR_KINDS = ["MalformedFrame", "FrameTooLarge", "InvalidRequest", "NotFound", "VersionMismatch",
               "Corrupt", "NoSpace", "Io", "ShuttingDown", "Busy", "Unsupported", "Internal"]


def response(r):
    t = r.tag(11)
    u64 = lambda: r.varint(64)  # noqa: E731
    record = lambda: {"key": u64(), "version": u64(), "value": r.bytes().hex(),  # noqa: E731
                      "next": r.option(u64)}
    if t == 0:
        return {"type": "Record", "value": r.option(record)}
    if t == 1:
        return {"type": "Records", "value": r.vec(record)}
    if t == 2:
        return {"type": "Written", "version": u64()}
    if t == 3:
        return {"type": "Deleted", "existed": r.bool()}
    if t == 4:
        return {"type": "Compared", "matches": r.bool()}
    if t == 5:
        c = r.tag(2)
        if c == 0:
            value = {"type": "Applied", "versions": r.vec(lambda: r.option(u64))}
        else:
            value = {"type": "Conflict", "index": r.varint(32), "key": u64(), "current": r.option(u64)}
        return {"type": "Cas", "value": value}
    if t == 6:
        return {"type": "Flushed"}
    if t == 7:
        return {"type": "Verified", "version": u64()}
    if t == 8:
        return {"type": "Done"}
    if t == 9:
        stat = {"keys": u64(), "corrupt_keys": u64(), "live_bytes": u64(), "index_bytes": u64(),
                "free_zones": r.varint(32)}
        stat["zones"] = r.vec(lambda: {"zone": r.varint(32), "used_bytes": u64(), "records": r.varint(32),
                                       "live_records": r.varint(32), "dead_percent": r.u8()})
        return {"type": "Stat", "value": stat}
    kind = ERROR_KINDS[r.tag(len(ERROR_KINDS))]
    return {"type": "Error", "value": {"kind": kind, "message": r.string()}}


def decode_frame(b, is_request):
    # specs/sector-protocol.md, "Decoding a frame: order of checks".
    if len(b) < 4:
        raise Refuse("truncated")
    length = u32le(b, 0)
    if length > 16 * 1024 * 1024:
        raise Refuse("too_large")
    if len(b) < 4 + length:
        raise Refuse("truncated")
    if len(b) > 4 + length:
        raise Refuse("trailing_bytes")
    r = Reader(b[4:])
    fid = r.varint(64)
    message = request(r) if is_request else response(r)
    r.end()
    if is_request and fid == 2**64 - 1:
        raise Refuse("invalid_value", "reserved id")
    return {"id": fid, "request" if is_request else "response": message}


# ---------------------------------------------------------------- kv and gossip (specs/kv.md)


def clock(r):
    pairs = r.vec(lambda: (r.varint(32), r.varint(64)))
    if len(pairs) > 1024:
        raise Refuse("too_large", "clock entries")
    if any(c == 0 for _, c in pairs) or any(a[0] >= b[0] for a, b in zip(pairs, pairs[1:])):
        raise Refuse("non_canonical", "clock")
    return pairs


def decode_clock(b, params):
    r = Reader(b)
    c = clock(r)
    r.end()
    return [list(p) for p in c]


def decode_node(b, params):
    r = Reader(b)
    version, level = r.u8(), r.u8()
    entries = r.vec(lambda: (r.bytes(), r.bytes()))
    r.end()
    if version != 1:
        raise Refuse("unsupported_version")
    if level > 40 or not entries:
        raise Refuse("invalid_value")
    for k, v in entries:
        if len(k) > 4096:
            raise Refuse("too_large", "key")
        if level == 0 and len(v) > 262144:
            raise Refuse("too_large", "value")
        if level > 0 and len(v) != 64:
            raise Refuse("invalid_value", "child ref")
    if any(a[0] >= b[0] for a, b in zip(entries, entries[1:])):
        raise Refuse("invalid_value", "unsorted")
    return {"level": level, "entries": [{"key": k.hex(), "value": v.hex()} for k, v in entries]}


def covers(big, small):
    d = dict(big)
    return all(c <= d.get(n, 0) for n, c in small)


def precedence(v):
    value, writer, clk = v
    return (sum(c for _, c in clk), writer, (0, b"") if value is None else (1, value), clk)


def decode_key_state(b, params):
    r = Reader(b)
    key_clock = clock(r)
    versions = r.vec(lambda: (r.option(r.bytes), r.varint(32), clock(r)))
    r.end()
    if not 1 <= len(versions) <= 64:
        raise Refuse("invalid_value", "version count")
    if any(precedence(a) >= precedence(b) for a, b in zip(versions, versions[1:])):
        raise Refuse("invalid_value", "precedence")
    if not all(covers(key_clock, v[2]) for v in versions):
        raise Refuse("invalid_value", "uncovered clock")
    return {"clock": [list(p) for p in key_clock],
            "versions": [{"value": None if v is None else v.hex(), "writer": w, "clock": [list(p) for p in c]}
                         for v, w, c in versions]}


def decode_snapshot(b, params):
    r = Reader(b)
    version = r.u8()
    root = r.option(lambda: r.take(64))
    parents = r.vec(lambda: r.take(64))
    clk = clock(r)
    author, message, lamport = r.varint(32), r.string(), r.varint(64)
    r.end()
    if version != 1:
        raise Refuse("unsupported_version")
    if len(parents) > 16 or len(message.encode()) > 4096:
        raise Refuse("too_large")
    if lamport == 0 or dict(clk).get(author, 0) == 0:
        raise Refuse("invalid_value")
    return {"root": None if root is None else root.hex(), "parents": [p.hex() for p in parents],
            "clock": [list(p) for p in clk], "author": author, "message": message, "lamport": lamport}


def decode_gossip(b, params):
    # specs/gossip-wire.md GW-1: size, decode, trailing bytes, version, counts.
    if len(b) > 16 * 1024 * 1024:
        raise Refuse("too_large")
    r = Reader(b)
    version = r.u8()
    t = r.tag(3)
    if t == 0:
        m = {"type": "Announce", "head": r.take(64).hex(), "clock": [list(p) for p in clock(r)]}
        count, limit = 0, 0
    elif t == 1:
        cids = r.vec(lambda: r.take(32).hex())
        m, count, limit = {"type": "Want", "cids": cids}, len(cids), 4096
    else:
        blobs = r.vec(lambda: r.bytes().hex())
        m, count, limit = {"type": "Objects", "blobs": blobs}, len(blobs), 1024
    r.end()
    if version != 1:
        raise Refuse("unsupported_version")
    if count > limit:
        raise Refuse("too_large", "count")
    return m



# ---------------------------------------------------------------- state (specs/conform.md CONF-4)
# A file cell (specs/cells.md §3) and a directory store (§5.1) in $CELLAR_CONFORM_DIR.

import fcntl  # noqa: E402
import os  # noqa: E402

STATE_DIR = os.environ.get("CELLAR_CONFORM_DIR", "/tmp/cellar-conform-python")
_tmp_counter = [0]


class OpError(Exception):
    """An operation error of specs/conform.md CONF-2."""

    def __init__(self, kind, definite=True, message=""):
        super().__init__(message or kind)
        self.kind, self.definite = kind, definite


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path, data, tmp):
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(path))


def cell_lock(exclusive):
    os.makedirs(STATE_DIR, exist_ok=True)
    f = open(os.path.join(STATE_DIR, "cell.lock"), "a+b")
    fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    return f


def cell_value():
    try:
        with open(os.path.join(STATE_DIR, "cell"), "rb") as f:
            raw = f.read(4096 + 20)
    except FileNotFoundError:
        return b""
    try:
        return bytes.fromhex(decode_cell_file(raw, {})["value"])
    except Refuse as e:
        raise OpError("corrupt", True, e.kind)


def cell_read(req):
    with cell_lock(False):
        return {"value": cell_value().hex()}


def cell_cas(req):
    expected, new = bytes.fromhex(req["expected"]), bytes.fromhex(req["new"])
    if len(new) > 4096:
        raise OpError("too_large")
    with cell_lock(True):
        current = cell_value()
        if current != expected:
            return {"swapped": False, "current": current.hex()}
        path = os.path.join(STATE_DIR, "cell")
        write_durably(path, encode_cell_file({"value": new.hex()}, {}), path + ".tmp")
        return {"swapped": True, "current": new.hex()}


def blob_path(h):
    return os.path.join(STATE_DIR, "store", h[:2], h)


def store_put(req):
    data = bytes.fromhex(req["data"])
    if len(data) > 4 * 1024 * 1024:
        raise OpError("too_large")
    h = blake3(data).hexdigest()
    path = blob_path(h)
    fan = os.path.dirname(path)
    if not os.path.isdir(fan):
        os.makedirs(fan, exist_ok=True)
        fsync_dir(os.path.dirname(fan))
    _tmp_counter[0] += 1
    write_durably(path, data, os.path.join(fan, ".tmp-%d-%d" % (os.getpid(), _tmp_counter[0])))
    return {"hash": h}


def store_get(req):
    h = req["hash"]
    try:
        with open(blob_path(h), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise OpError("not_found")
    if blake3(data).hexdigest() != h:
        raise OpError("corrupt")
    return {"data": data.hex()}


def store_delete(req):
    try:
        os.remove(blob_path(req["hash"]))
    except FileNotFoundError:
        pass
    return {}


def store_list(req):
    root = os.path.join(STATE_DIR, "store")
    start, limit = req.get("from") or "", req.get("limit", 1024)
    out = []
    for fan in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for name in sorted(os.listdir(os.path.join(root, fan))):
            if len(name) == 64 and not name.startswith(".") and name >= start:
                out.append(name)
                if len(out) >= limit:
                    return {"hashes": out}
    return {"hashes": out}


STATE_OPS = {}
if HAVE_CRYPTO:
    STATE_OPS = {"cell.read": cell_read, "cell.cas": cell_cas, "store.put": store_put,
                 "store.get": store_get, "store.delete": store_delete, "store.list": store_list}

# ---------------------------------------------------------------- the protocol (specs/conform.md)

DECODERS = {
    "ref.binary": decode_ref_binary, "ref.text": decode_ref_text, "cell.file": decode_cell_file,
    "volume.header": decode_volume_header, "file.index": decode_file_index,
    "sector.superblock": decode_superblock, "sector.zone_header": decode_zone_header,
    "sector.record_header": decode_record_header, "sector.commit_payload": decode_commit_payload,
    "sector.request_frame": lambda b, p: decode_frame(b, True),
    "sector.response_frame": lambda b, p: decode_frame(b, False),
    "kv.clock": decode_clock, "kv.node": decode_node, "kv.key_state": decode_key_state,
    "kv.snapshot": decode_snapshot, "gossip.message": decode_gossip,
}
ENCODERS = {
    "ref.binary": lambda v, p: ref_from_json(v), "ref.text": lambda v, p: REF_PREFIX + ref_from_json(v).hex().encode(),
    "cell.file": encode_cell_file, "volume.header": encode_volume_header, "file.index": encode_file_index,
    "sector.superblock": encode_superblock, "sector.zone_header": encode_zone_header,
    "sector.record_header": encode_record_header, "sector.commit_payload": encode_commit_payload,
}
FUNCTIONS = {}
if HAVE_CRYPTO:
    DECODERS["cell.sealed"] = decode_cell_sealed
    FUNCTIONS = {"ref.post": lambda i: ref_post(i)[0], "ref.open": ref_open, "volume.keys": volume_keys,
                 "file.tree": file_tree}


def error(rid, kind, message=""):
    return {"id": rid, "ok": False, "error": {"kind": kind, "definite": True, "message": message}}


def answer(req):
    rid = req.get("id")
    kind = req.get("type")
    try:
        if kind == "hello":
            return {"id": rid, "ok": True, "name": "cellar-python (conform/python/impl.py)",
                    "formats": sorted(DECODERS), "functions": sorted(FUNCTIONS),
                    "suites": ["cell", "store"] if STATE_OPS else []}
        if kind == "decode":
            fn = DECODERS.get(req["format"])
            if fn is None:
                return error(rid, "unsupported", req["format"])
            return {"id": rid, "ok": True, "value": fn(bytes.fromhex(req["bytes"]), req.get("params") or {})}
        if kind == "encode":
            fn = ENCODERS.get(req["format"])
            if fn is None:
                return error(rid, "unsupported", req["format"])
            return {"id": rid, "ok": True, "bytes": fn(req["value"], req.get("params") or {}).hex()}
        if kind == "derive":
            fn = FUNCTIONS.get(req["function"])
            if fn is None:
                return error(rid, "unsupported", req["function"])
            return {"id": rid, "ok": True, "value": fn(req["input"])}
        if kind in STATE_OPS:
            out = STATE_OPS[kind](req)
            out.update({"id": rid, "ok": True})
            return out
        return error(rid, "unsupported", str(kind))
    except OpError as e:
        return {"id": rid, "ok": False, "error": {"kind": e.kind, "definite": e.definite, "message": str(e)}}
    except OSError as e:
        return {"id": rid, "ok": False, "error": {"kind": "io", "definite": False, "message": str(e)}}
    except Refuse as e:
        return error(rid, e.kind, str(e))
    except (KeyError, ValueError, TypeError) as e:
        return error(rid, "bad_request", repr(e))


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except ValueError:
            print(json.dumps(error(None, "bad_request", "not JSON")), flush=True)
            continue
        print(json.dumps(answer(req)), flush=True)


if __name__ == "__main__":
    main()
