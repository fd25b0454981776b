# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/vsock/: one guest packet header per file (specs/vsock.md §4.3).

Each file (layout: vectorlib.py): `expect:` (`success` or `HeaderError`), `comment:`, on
success `op:` (the §4.2 name), a blank line, then the header bytes as the guest sent them.
The headers are packed here from the §4.1 table (little-endian), not by the encoder under
test; on success the test also checks that the header re-encodes to the same 44 bytes.
Usage: generate_vsock_vectors.py [OUT_DIR]
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from vectorlib import Vector, main, write_all

OUT = Path(__file__).resolve().parent / "vsock"
OPS = {"REQUEST": 1, "RESPONSE": 2, "RST": 3, "SHUTDOWN": 4, "RW": 5,
       "CREDIT_UPDATE": 6, "CREDIT_REQUEST": 7}  # fmt: skip
# The §4.1 example: guest CID 16, port 1234, calling the host's port 9000, 256 KiB buffer.
BASE = {"src_cid": 16, "dst_cid": 3, "src_port": 1234, "dst_port": 9000, "len": 0,
        "type": 1, "op": 1, "flags": 0, "buf_alloc": 256 * 1024, "fwd_cnt": 0}  # fmt: skip


def header(**change: Any) -> bytes:
    f = {**BASE, **change}
    return struct.pack(
        "<QQIIIHHIII", f["src_cid"], f["dst_cid"], f["src_port"], f["dst_port"], f["len"],
        f["type"], f["op"], f["flags"], f["buf_alloc"], f["fwd_cnt"],
    )  # fmt: skip


def _ok(name: str, comment: str, op: str, **change: Any) -> Vector:
    data = header(op=OPS[op], **change)
    return f"header_{name}", {"expect": "success", "comment": comment, "op": op}, data


def _bad(name: str, comment: str, data: bytes) -> Vector:
    return f"header_{name}", {"expect": "HeaderError", "comment": comment}, data


def vectors() -> list[Vector]:
    example = header()
    return [
        _ok("request", "the §4.1 example", "REQUEST"),
        _ok("rw_max_payload", "RW with len 65536", "RW", len=65536),
        _ok("shutdown_both", "SHUTDOWN RCV|SEND", "SHUTDOWN", flags=3),
        _ok("credit_update", "fwd_cnt near the wrap", "CREDIT_UPDATE", fwd_cnt=2**32 - 1),
        _ok("trailing_payload_ignored", "only the first 44 bytes are the header", "REQUEST"),
        _bad("short", "43 bytes", example[:43]),
        _bad("type_seqpacket", "type 2, SEQPACKET: only STREAM is supported", header(type=2)),
        _bad("op_0", "op 0 is not an op", header(op=0)),
        _bad("op_8", "op 8 is past CREDIT_REQUEST", header(op=8)),
        _bad("rw_len_over_max", "len 65537", header(op=5, len=65537)),
        _bad("len_on_request", "len 1 on a REQUEST", header(len=1)),
        _bad("shutdown_flag_4", "SHUTDOWN flags outside RCV|SEND", header(op=4, flags=4)),
        _bad("flags_on_rw", "flags on an RW", header(op=5, flags=1)),
    ]  # fmt: skip


def generate(out: Path = OUT) -> list[Path]:
    items = vectors()
    # The trailing-payload case carries 4 extra bytes after its header.
    items = [(n, f, d + b"\xaa" * 4 if n.endswith("ignored") else d) for n, f, d in items]
    return write_all(out, items)


if __name__ == "__main__":
    main(OUT, generate)
