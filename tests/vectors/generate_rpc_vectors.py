# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/rpc/: one transcript per file (specs/rpc-protocol.md §10).

Each file: `key: value` header lines (`expect:` first, `layer:`, `comment:`), a
blank line, then one line per frame: `> HEX` client to server, `< HEX` server to
client. `expect:` is `success` or the error class the last `>` line raises,
after which the server drops the connection. `layer: codec` errors come from
the frame codec or `parse_message`; `layer: server` ones from the server's
state machine. The replies are written out here from the spec, not produced by
the server, so a test replays them against it. The server clock is fixed at
NOW. Usage: generate_rpc_vectors.py [OUT_DIR]
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import cbor2

from package_format.rpc import FrameLimits, Hello, Request, Response, Welcome
from package_format.rpc.frames import frame_bytes

OUT = Path(__file__).resolve().parent / "rpc"
NOW = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z, the server's fixed clock
DIR_STAT = {
    "mode": 0o40755,
    "size": 0,
    "nlink": 2,
    "atime_ns": NOW,
    "mtime_ns": NOW,
    "ctime_ns": NOW,
}


def req(rid: int, op: str, args: dict[str, Any], body: bytes = b"") -> bytes:
    return frame_bytes(Request(rid, op, args).header(), body)


def res(rid: int, args: dict[str, Any] | None = None, body: bytes = b"") -> bytes:
    return frame_bytes(Response(rid, 0, args or {}).header(), body)


def err(rid: int, status: int, name: str, message: str) -> bytes:
    return frame_bytes(Response(rid, status, {"name": name, "message": message}).header())


def raw(header: bytes) -> bytes:
    """A frame around header bytes as given (no validation, no re-encoding)."""
    return struct.pack(">II", len(header), 0) + header


HELLO = frame_bytes(Hello((1,)).header())
WELCOME = frame_bytes(Welcome(1, FrameLimits()).header())
OPEN = [(">", HELLO), ("<", WELCOME)]

Line = tuple[str, bytes]
SCENARIOS: dict[str, tuple[str, str, str, list[Line]]] = {
    # name: (expect, layer, comment, lines)
    "handshake_ok": (
        "success",
        "server",
        "hello offering version 1, welcome with the limits",
        OPEN,
    ),
    "handshake_unsupported_version": (
        "success",
        "server",
        "hello offering only version 2: explicit error on id 0, then the server closes",
        [
            (">", frame_bytes(Hello((2,)).header())),
            (
                "<",
                err(
                    0,
                    1005,
                    "UNSUPPORTED_VERSION",
                    "no common protocol version (client offers 2, server speaks 1)",
                ),
            ),
        ],
    ),
    "fs_create_write_read_stat": (
        "success",
        "server",
        "create, a write with a raw body, a read returning a raw body, stat",
        [
            *OPEN,
            (
                ">",
                req(
                    1,
                    "create",
                    {"path": "dataset/a.txt", "mode": 0o644, "truncate": True, "exclusive": False},
                ),
            ),
            ("<", res(1)),
            (">", req(2, "write", {"path": "dataset/a.txt", "offset": 0}, b"hello\n")),
            ("<", res(2, {"written": 6})),
            (">", req(3, "read", {"path": "dataset/a.txt", "offset": 0, "length": 4096})),
            ("<", res(3, body=b"hello\n")),
            (">", req(4, "stat", {"path": "dataset/a.txt"})),
            (
                "<",
                res(4, {"stat": {**DIR_STAT, "mode": 0o100644, "size": 6, "nlink": 1}}),
            ),
        ],
    ),
    "fs_put_read": (
        "success",
        "server",
        "put: a whole small file (create, truncate, write at 0) in one request, then read it",
        [
            *OPEN,
            (">", req(1, "put", {"path": "dataset/p.csv", "mode": 0o600}, b"a,b\n1,2\n")),
            ("<", res(1, {"written": 8})),
            (">", req(2, "put", {"path": "dataset/p.csv", "mode": 0o600}, b"c\n")),
            ("<", res(2, {"written": 2})),
            (">", req(3, "read", {"path": "dataset/p.csv", "offset": 0, "length": 4096})),
            ("<", res(3, body=b"c\n")),
        ],
    ),
    "fs_puts_read": (
        "success",
        "server",
        (
            "puts: three small files in one request (§7.7); the second's folder is missing, so"
            " only it fails (ENOENT, by its index), the others are written; then read them"
        ),
        [
            *OPEN,
            (
                ">",
                req(
                    1,
                    "puts",
                    {
                        "files": [
                            ["dataset/a.csv", 0o644, 4],
                            ["dataset/no/b.csv", 0o644, 2],
                            ["dataset/c.csv", 0o600, 3],
                        ]
                    },
                    b"a,b\nb\nc,d",
                ),
            ),
            ("<", res(1, {"failed": [[1, 2]]})),
            (">", req(2, "read", {"path": "dataset/a.csv", "offset": 0, "length": 4096})),
            ("<", res(2, body=b"a,b\n")),
            (">", req(3, "read", {"path": "dataset/c.csv", "offset": 0, "length": 4096})),
            ("<", res(3, body=b"c,d")),
        ],
    ),
    "op_puts_sizes_mismatch": (
        "success",
        "server",
        "puts whose sizes do not add up to its body: refused whole, nothing written",
        [
            *OPEN,
            (">", req(1, "puts", {"files": [["dataset/a.csv", 0o644, 5]]}, b"abc")),
            ("<", err(1, 1006, "BAD_ARGS", "puts: sizes do not add up to the body")),
            (">", req(2, "stat", {"path": "dataset/a.csv"})),
            ("<", err(2, 2, "ENOENT", "dataset/a.csv: no such file or directory")),
        ],
    ),
    "op_puts_empty": (
        "success",
        "server",
        "puts of no files: BAD_ARGS (1 to 1024 entries of [path, mode, size])",
        [
            *OPEN,
            (">", req(1, "puts", {"files": []})),
            ("<", err(1, 1006, "BAD_ARGS", "puts: argument 'files' is not files")),
        ],
    ),
    "fs_listdir_root": (
        "success",
        "server",
        "listdir of the session root: names and stats in one reply, no further page",
        [
            *OPEN,
            (">", req(1, "listdir", {"path": ""})),
            (
                "<",
                res(
                    1,
                    {
                        "entries": [
                            [n, DIR_STAT] for n in ("dataset", "encrypted", "model", "output")
                        ],
                        "more": False,
                    },
                ),
            ),
        ],
    ),
    "fs_pipelined_writes": (
        "success",
        "server",
        "three writes sent before any reply; replies come in order",
        [
            *OPEN,
            (">", req(1, "create", {"path": "model/m.bin"})),
            (">", req(2, "write", {"path": "model/m.bin", "offset": 0}, b"abc")),
            (">", req(3, "write", {"path": "model/m.bin", "offset": 3}, b"def")),
            (">", req(4, "write", {"path": "model/missing/x", "offset": 0}, b"g")),
            ("<", res(1)),
            ("<", res(2, {"written": 3})),
            ("<", res(3, {"written": 3})),
            ("<", err(4, 2, "ENOENT", "model/missing/x: no such file or directory")),
        ],
    ),
    "op_unknown": (
        "success",
        "server",
        "an unknown operation gets an error reply; the connection stays",
        [
            *OPEN,
            (">", req(7, "exec", {"cmd": "sh"})),
            ("<", err(7, 1001, "UNKNOWN_OP", "unknown operation 'exec'")),
            (">", req(8, "ping", {})),
            ("<", res(8)),
        ],
    ),
    "op_bad_args": (
        "success",
        "server",
        "stat with a mistyped path",
        [
            *OPEN,
            (">", req(1, "stat", {"path": 7})),
            ("<", err(1, 1006, "BAD_ARGS", "stat: argument 'path' is not text")),
        ],
    ),
    "path_dotdot": (
        "success",
        "server",
        "a '..' component is refused with EINVAL",
        [
            *OPEN,
            (">", req(1, "stat", {"path": "dataset/../../etc/passwd"})),
            (
                "<",
                err(1, 22, "EINVAL", "dataset/../../etc/passwd: empty, '.' or '..' path component"),
            ),
        ],
    ),
    "path_double_slash": (
        "success",
        "server",
        "an empty component ('//') is refused with EINVAL",
        [
            *OPEN,
            (">", req(1, "unlink", {"path": "dataset//a"})),
            ("<", err(1, 22, "EINVAL", "dataset//a: empty, '.' or '..' path component")),
        ],
    ),
    "path_absolute": (
        "success",
        "server",
        "an absolute path is refused with EINVAL",
        [
            *OPEN,
            (">", req(1, "create", {"path": "/etc/passwd"})),
            ("<", err(1, 22, "EINVAL", "/etc/passwd: absolute paths are not allowed")),
        ],
    ),
    "path_name_too_long": (
        "success",
        "server",
        "a 256-byte name is refused with ENAMETOOLONG",
        [
            *OPEN,
            (">", req(1, "mkdir", {"path": "dataset/" + "n" * 256})),
            ("<", err(1, 36, "ENAMETOOLONG", "dataset/" + "n" * 56 + "...: name too long")),
        ],
    ),
    "frame_garbage_http": (
        "FrameTooLargeError",
        "codec",
        "an HTTP request: its first 4 bytes declare a 1.1 GB header",
        [*OPEN, (">", b"GET / HTTP/1.1\r\nHost: enclave\r\n\r\n")],
    ),
    "frame_header_too_large": (
        "FrameTooLargeError",
        "codec",
        "a prefix declaring a 64 KiB + 1 header",
        [*OPEN, (">", struct.pack(">II", 65537, 0))],
    ),
    "frame_body_too_large": (
        "FrameTooLargeError",
        "codec",
        "a prefix declaring header + body over 4 MiB",
        [*OPEN, (">", struct.pack(">II", 20, 4 * 1024 * 1024 - 19))],
    ),
    "frame_truncated": (
        "TruncatedFrameError",
        "codec",
        "the stream ends inside a write frame",
        [*OPEN, (">", req(1, "write", {"path": "dataset/x", "offset": 0}, b"y" * 64)[:40])],
    ),
    "header_empty": (
        "MalformedFrameError",
        "codec",
        "a zero-length header",
        [*OPEN, (">", struct.pack(">II", 0, 0))],
    ),
    "header_not_map": (
        "MalformedFrameError",
        "codec",
        "a header that is a CBOR array",
        [*OPEN, (">", struct.pack(">II", 3, 0) + bytes.fromhex("820102"))],
    ),
    "header_not_cbor": (
        "MalformedFrameError",
        "codec",
        "a header that is not CBOR (reserved initial byte 0xfc)",
        [*OPEN, (">", struct.pack(">II", 2, 0) + b"\xfc\x00")],
    ),
    "header_non_canonical": (
        "NonCanonicalHeaderError",
        "codec",
        "a ping whose map keys are not in deterministic order",
        [*OPEN, (">", raw(cbor2.dumps({"type": "req", "id": 1, "op": "ping", "args": {}})))],
    ),
    "header_trailing_bytes": (
        "NonCanonicalHeaderError",
        "codec",
        "a canonical ping header followed by one stray byte inside the header length",
        [*OPEN, (">", raw(req(1, "ping", {})[8:] + b"\x00"))],
    ),
    "header_tag": (
        "MalformedFrameError",
        "codec",
        "a header holding a CBOR tag (epoch datetime)",
        [*OPEN, (">", raw(bytes.fromhex("a16174c11a514b67b0")))],
    ),
    "header_float": (
        "MalformedFrameError",
        "codec",
        "a header holding a float",
        [*OPEN, (">", raw(cbor2.dumps({"id": 1.5}, canonical=True)))],
    ),
    "message_unknown_type": (
        "MessageSchemaError",
        "codec",
        "a well-formed header of an unknown message type",
        [*OPEN, (">", frame_bytes({"type": "pickle", "id": 1, "args": {}}))],
    ),
    "message_extra_field": (
        "MessageSchemaError",
        "codec",
        "a request header with a field the spec does not define",
        [*OPEN, (">", frame_bytes({"type": "req", "id": 1, "op": "ping", "args": {}, "x": 0}))],
    ),
    "message_request_before_hello": (
        "MessageSchemaError",
        "server",
        "a request as the first frame",
        [(">", req(1, "ping", {}))],
    ),
    "message_request_id_zero": (
        "MessageSchemaError",
        "server",
        "a request using the reserved id 0",
        [*OPEN, (">", req(0, "ping", {}))],
    ),
}


def render(expect: str, layer: str, comment: str, lines: list[Line]) -> bytes:
    head = f"expect: {expect}\nlayer: {layer}\ncomment: {comment}\n\n"
    return (head + "".join(f"{d} {data.hex()}\n" for d, data in lines)).encode()


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, scenario in sorted(SCENARIOS.items()):
        path = out / name
        path.write_bytes(render(*scenario))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(p)
