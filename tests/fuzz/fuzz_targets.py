# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The fuzz targets: one per parser, each seeded from the repository's vectors (issue 15).

A target is one small function registered with `@target(...)`: it takes the fuzzer's bytes
and runs a parser entry point on them. Every exception it lets out must be the parser's
typed error (`PackageFormatError` unless the target says otherwise); anything else is a
finding. Adding a target means writing one such function and a seed loader.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from package_format.errors import PackageFormatError

TESTS = Path(__file__).resolve().parents[1]
VECTORS = TESTS / "vectors"
REPO = TESTS.parent

Seeds = Callable[[], list[bytes]]


@dataclass(frozen=True)
class Target:
    """One parser under fuzzing.

    Attributes:
        name: the target's name (`make fuzz` lists and selects targets by it).
        run: feeds one input to the parser.
        seeds: the starting corpus.
        typed: the exception classes the parser may raise; anything else is a finding.
        max_len: the largest input the fuzzer builds (bytes).
        weight: its share of `make fuzz`'s inputs (1.0 = an equal share); the costliest
            parsers (a certificate and an ECDSA check per input) get less.
    """

    name: str
    run: Callable[[bytes], object]
    seeds: Seeds
    typed: tuple[type[BaseException], ...] = (PackageFormatError,)
    max_len: int = 4096
    weight: float = 1.0


TARGETS: dict[str, Target] = {}
#: Targets whose module is not on this branch yet, with the reason (printed by `make fuzz`).
SKIPPED: dict[str, str] = {}


def target(
    name: str,
    seeds: Seeds,
    *,
    typed: tuple[type[BaseException], ...] = (PackageFormatError,),
    max_len: int = 4096,
    weight: float = 1.0,
) -> Callable[[Callable[[bytes], object]], Callable[[bytes], object]]:
    """Register the decorated function as the fuzz target `name`."""

    def register(run: Callable[[bytes], object]) -> Callable[[bytes], object]:
        TARGETS[name] = Target(name, run, functools.cache(seeds), typed, max_len, weight)
        return run

    return register


# --- seeds --------------------------------------------------------------------------------


def _vector_payload(path: Path) -> bytes:
    """The bytes of a bundle vector file: what follows its text lines and a blank line."""
    return path.read_bytes().split(b"\n\n", 1)[1]


def _bundle_seeds() -> list[bytes]:
    return [_vector_payload(p) for p in sorted((VECTORS / "bundle").iterdir()) if p.is_file()]


def _owner_key() -> bytes:
    for line in (VECTORS / "bundle" / "bundle_ok").read_bytes().split(b"\n\n", 1)[0].splitlines():
        if line.startswith(b"owner key: "):
            return bytes.fromhex(line.split(b": ", 1)[1].decode())
    raise LookupError("bundle_ok has no owner key line")


def _data_key() -> bytes:
    for line in (VECTORS / "bundle" / "bundle_ok").read_bytes().split(b"\n\n", 1)[0].splitlines():
        if line.startswith(b"data key: "):
            return bytes.fromhex(line.split(b": ", 1)[1].decode())
    raise LookupError("bundle_ok has no data key line")


def _toml_seeds() -> list[bytes]:
    found = [p.read_bytes() for p in sorted(REPO.glob("examples/**/bundle.toml"))]
    own = (
        b'name = "demo"\nversion = "1.0.0"\nexclude = ["*.pyc"]\n'
        b"not_before = 2026-01-01T00:00:00Z\nexpires = 2027-01-01\n"
        b'[[entrypoints]]\npath = "main.py"\nallow_args = false\n'
        b"[output]\nstdout = true\nfiles = true\nmax_files_size = 1024\n"
        b'[encryption_context]\nteam = "ml"\n'
    )
    return [*found, own]


def _eif_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((VECTORS / "aws" / "eif" / "eif").glob("*.eif"))]


def _signature_section_seeds() -> list[bytes]:
    from package_format.eif import read_eif
    from package_format.eif.signature import encode_signature_section

    image = read_eif(io.BytesIO(_signed_eif()))
    return [encode_signature_section(list(image.signatures))]


def _signed_eif() -> bytes:
    return (VECTORS / "aws" / "eif" / "eif" / "tiny-x86_64-signed-after.eif").read_bytes()


def _cpio_seeds() -> list[bytes]:
    inputs = VECTORS / "aws" / "eif" / "inputs"
    return [(inputs / n).read_bytes() for n in ("ramdisk0.bin", "ramdisk1.bin")]


def _cms_seeds() -> list[bytes]:
    dirs = [VECTORS / "aws" / "kms-cms", VECTORS / "cms"]
    return [p.read_bytes() for d in dirs for p in sorted(d.glob("*.der"))]


def _attestation_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((VECTORS / "aws" / "attestation").glob("*.cose"))]


def _rpc_streams() -> list[bytes]:
    """Each RPC vector's client bytes and server bytes, as two streams."""
    out = []
    for path in sorted((VECTORS / "rpc").iterdir()):
        sides: dict[str, bytes] = {">": b"", "<": b""}
        for line in path.read_text().splitlines():
            if line[:2] in ("> ", "< "):
                sides[line[0]] += bytes.fromhex(line[2:].strip())
        out += [s for s in sides.values() if s]
    return out


def _rpc_headers() -> list[bytes]:
    """The CBOR header of every frame in the RPC vectors (what sync's messages carry)."""
    headers = []
    for stream in _rpc_streams():
        pos = 0
        while pos + 8 <= len(stream):
            header_len = int.from_bytes(stream[pos : pos + 4], "big")
            body_len = int.from_bytes(stream[pos + 4 : pos + 8], "big")
            headers.append(stream[pos + 8 : pos + 8 + header_len])
            pos += 8 + header_len + body_len
    return [h for h in headers if h]


# --- targets ------------------------------------------------------------------------------


@target("bundle_header", _bundle_seeds, max_len=8192)
def _bundle_header(data: bytes) -> None:
    from package_format.bundle.header import read_header
    from package_format.bundle.reader import BundleReader

    read_header(io.BytesIO(data))  # the unverified path (`inspect`)
    BundleReader.open(io.BytesIO(data), trusted_keys=[_owner_key()])


@target("bundle_stream", _bundle_seeds, max_len=8192)
def _bundle_stream(data: bytes) -> None:
    from package_format.bundle.reader import BundleReader

    # Header bytes are signed, so mutations that survive reach the payload's segments.
    reader = BundleReader.open(io.BytesIO(data), trusted_keys=[_owner_key()])
    reader.verify_payload(_data_key())


@target("manifest_toml", _toml_seeds)
def _manifest_toml(data: bytes) -> None:
    from package_format.bundle.config import parse_bundle_toml

    parse_bundle_toml(data.decode("utf-8", "replace"))


@target("index", lambda: _index_seeds()[0])
def _index(data: bytes) -> None:
    from package_format.index import verify_index

    verify_index(data, _index_seeds()[1], name="demo", now=datetime(2026, 1, 1, tzinfo=UTC))


@target("index_signed_part", lambda: _index_seeds()[2])
def _index_signed_part(data: bytes) -> None:
    # What runs after the signature check: a fuzzer cannot forge signatures, so the decoder
    # behind the gate gets its own target (the owner's own index is input too).
    from package_format.index.codec import _decode_canonical, _index_from_json
    from package_format.index.model import DEFAULT_LIMITS

    _index_from_json(_decode_canonical(data), DEFAULT_LIMITS)


@functools.cache
def _index_seeds() -> tuple[list[bytes], bytes, list[bytes]]:
    """(signed envelopes, the owner's public key, signed parts)."""
    from datetime import timedelta

    from nacl.signing import SigningKey

    from package_format.index import FileEntry, Index, Revocation, VersionEntry, sign_index

    owner = SigningKey(b"\x01" * 32)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = now + timedelta(days=30)
    index = Index.empty("demo", later)
    for i, ver in enumerate(("1.0.0", "1.1.0-rc.1")):
        entry = VersionEntry(
            bundle=FileEntry("demo.nbundle", 10 + i, "a" * 64),
            published=now,
            kms_key_id="arn:aws:kms:us-east-1:111122223333:key/k",
            encryption_context={"bundle": "demo", "version": ver},
            image=FileEntry("demo.eif", 5, "b" * 64) if i else None,
        )
        index = index.with_version(ver, entry, expires=later)
    revoked = index.with_revocation("1.0.0", Revocation("bad", now), expires=later)
    envelopes = [sign_index(x, bytes(owner)) for x in (index, revoked)]
    signed = [e[e.index(b',"signed":') + 10 : -1] for e in envelopes]
    return envelopes, bytes(owner.verify_key), signed


@target("eif", _eif_seeds, max_len=32768, weight=0.5)
def _eif(data: bytes) -> None:
    from package_format.eif import describe, read_eif

    image = read_eif(io.BytesIO(data))
    describe(image)
    image.signature_ok()
    image.verify()


@target("eif_signature", _signature_section_seeds, weight=0.3)
def _eif_signature(data: bytes) -> None:
    from package_format.eif.describe import certificate_json
    from package_format.eif.signature import decode_signature_section, verify_signature

    for sig in decode_signature_section(data):
        certificate_json(sig.certificate)
        verify_signature(sig, _signed_pcr0())


@functools.cache
def _signed_pcr0() -> bytes:
    from package_format.eif import read_eif

    return read_eif(io.BytesIO(_signed_eif())).measurements.pcr0


@target("cpio", _cpio_seeds, max_len=8192)
def _cpio(data: bytes) -> None:
    from package_format.eif.cpio_reader import extract_files, read_cpio

    read_cpio(data)
    extract_files(data, "rootfs/")


@target("cms", _cms_seeds, max_len=6144, weight=0.5)
def _cms(data: bytes) -> None:
    from package_format.cms import parse_envelope

    parse_envelope(data)


@target("attestation", _attestation_seeds, max_len=16384, weight=0.7)
def _attestation(data: bytes) -> None:
    # COSE, the payload's CBOR fields and the X.509 chain (root pinned, clock fixed).
    from package_format.attestation.document import parse_document
    from package_format.attestation.verify import verify_attestation

    at = parse_document(data)[1].timestamp  # the document's own time: reach the chain checks
    verify_attestation(data, root=_attestation_root(), at=at)


@functools.cache
def _attestation_root() -> bytes:
    return (VECTORS / "aws" / "attestation" / "aws_nitro_root_g1.pem").read_bytes()


def _attestation_payloads() -> list[bytes]:
    from package_format.attestation.cose import parse_cose_sign1

    return [parse_cose_sign1(d).payload for d in _attestation_seeds()]


@target("attestation_payload", _attestation_payloads, max_len=16384)
def _attestation_payload(data: bytes) -> None:
    from package_format.attestation.document import parse_payload

    parse_payload(data)


@target("rpc_frames", _rpc_streams)
def _rpc_frames(data: bytes) -> None:
    from package_format.rpc import FrameDecoder, parse_message

    decoder = FrameDecoder()
    for frame in decoder.feed(data):
        parse_message(frame)
    decoder.end_of_stream()


@target("sync_messages", _rpc_headers)
def _sync_messages(data: bytes) -> None:
    # The messages sync exchanges: a header map, its message shape, then the op's arguments.
    from package_format.rpc import Request, parse_message, validate_args
    from package_format.rpc.frames import Frame, decode_header

    message = parse_message(Frame(decode_header(data), memoryview(b"")))
    if isinstance(message, Request):
        validate_args(message.op, message.args)


def _vsock_seeds() -> list[bytes]:
    """specs/vsock.md: src_cid, dst_cid, src_port, dst_port, len, type, op, flags, buf_alloc,
    fwd_cnt (little-endian); a REQUEST, an RW of 100 bytes, a SHUTDOWN, a CREDIT_UPDATE."""
    head = struct.Struct("<QQIIIHHIII")
    return [
        head.pack(3, 2, 1024, 5000, 0, 1, 1, 0, 65536, 0),
        head.pack(3, 2, 1024, 5000, 100, 1, 5, 0, 65536, 0),
        head.pack(3, 2, 1024, 5000, 0, 1, 4, 3, 65536, 0),
        head.pack(2, 3, 5000, 1024, 0, 1, 6, 0, 65536, 4096),
    ]


def _vsock_target() -> None:
    """The vsock packet parser (user_runtime/vsock, `parse_header`), once it is merged."""
    if importlib.util.find_spec("user_runtime.vsock") is None:
        SKIPPED["vsock"] = "user_runtime/vsock (parse_header) is not on this branch yet"
        return
    from user_runtime.errors import UserRuntimeError

    @target("vsock", _vsock_seeds, typed=(UserRuntimeError,), max_len=64)
    def _vsock(data: bytes) -> None:
        from user_runtime.vsock import parse_header  # here, so that atheris instruments it

        parse_header(data)


_vsock_target()


# --- receipts (specs/receipts.md) ----------------------------------------------------------


def _receipt_seeds() -> list[bytes]:
    return [_vector_payload(p) for p in sorted((VECTORS / "receipts").iterdir())]


def _record_seeds() -> list[bytes]:
    from package_format.receipt import ReceiptError, parse_receipt

    records = []
    for data in _receipt_seeds():
        try:
            records.append(parse_receipt(data).record)
        except ReceiptError:
            continue
    return records


@target("receipt", _receipt_seeds, max_len=16384, weight=0.5)
def _receipt(data: bytes) -> None:
    # The whole verification: container, document (chain and signature), PCR, record.
    from package_format.receipt import verify_receipt

    verify_receipt(data, root=_receipt_root(), expect_pcrs={0: _receipt_pcr0()})


@target("run_record", _record_seeds, max_len=8192)
def _run_record(data: bytes) -> None:
    from package_format.receipt import RunRecord

    RunRecord.decode(data)


@functools.cache
def _receipt_header() -> dict[str, str]:
    head = (VECTORS / "receipts" / "receipt_ok").read_bytes().split(b"\n\n", 1)[0]
    return dict(line.split(": ", 1) for line in head.decode().splitlines())


def _receipt_root() -> bytes:
    return bytes.fromhex(_receipt_header()["root"])


def _receipt_pcr0() -> bytes:
    return bytes.fromhex(_receipt_header()["pcr0"])
