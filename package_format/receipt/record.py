# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The run record: what a run used and produced, as canonical CBOR (specs/receipts.md §3).

`RunRecord.encode()` gives the one byte string whose SHA-384 the NSM signs as `user_data`;
`RunRecord.decode()` accepts exactly those bytes back (any other encoding of the same
values is refused, so a record has one hash).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

import cbor2

from package_format.limits import CborScanError, decode_cbor
from package_format.receipt.errors import (
    ReceiptFormatError,
    ReceiptLimitError,
    ReceiptVersionError,
)

RECORD_FORMAT = "nitro-bundles/run-record/v1"
SHA256_LEN = 32
SIGNER_LEN = 32
_MAX_DEPTH = 4  # record map > inputs list > entry list > item
_BUNDLE_KEYS = ("role", "name", "version", "digest", "manifest_digest", "signer", "mount")
_TERMS_KEYS = ("max_output_bytes", "stdout", "stderr", "output_paths")
_RECORD_KEYS = (
    "format", "bundles", "entrypoint", "args", "env", "nonce", "inputs", "outputs",
    "stdout", "stderr", "exit_status", "started", "ended", "terms",
)  # fmt: skip
_MAX_UINT = 2**64 - 1


@dataclass(frozen=True)
class ReceiptLimits:
    """Limits on untrusted receipts (specs/receipts.md §3.4)."""

    max_receipt_bytes: int = 64 << 20
    """Whole `receipt.cbor` file."""
    max_files: int = 200_000
    """Inputs plus outputs (the session's own node limit)."""
    max_bundles: int = 64
    max_args: int = 4096
    max_text: int = 1 << 20
    """Characters of any one text (a path, an argument)."""


DEFAULT_LIMITS = ReceiptLimits()


@dataclass(frozen=True)
class FileDigest:
    """One file of a run: its session path, SHA-256 and size (specs/receipts.md §4)."""

    path: str
    sha256: bytes
    size: int


@dataclass(frozen=True)
class RecordBundle:
    """A bundle the run used (the fields of `enclave.runner.api.BundleRef`)."""

    role: str
    name: str
    version: str
    digest: bytes
    manifest_digest: bytes
    signer: bytes
    mount: str = ""


@dataclass(frozen=True)
class RecordTerms:
    """The output terms the run enforced (the fields of `enclave.runner.api.OutputTerms`)."""

    max_output_bytes: int | None = None
    stdout: bool = True
    stderr: bool = True
    output_paths: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RunRecord:
    """One run, as the enclave saw it (specs/receipts.md §3.2)."""

    bundles: tuple[RecordBundle, ...]
    entrypoint: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    nonce: bytes | None
    inputs: tuple[FileDigest, ...]
    outputs: tuple[FileDigest, ...]
    stdout: bytes
    stderr: bytes
    exit_status: int
    started: int
    ended: int
    terms: RecordTerms | None = None
    format: str = field(default=RECORD_FORMAT)

    def encode(self) -> bytes:
        """Return the canonical CBOR bytes (RFC 8949 §4.2.1; inputs/outputs sorted by path)."""
        return cbor2.dumps(self._to_cbor(), canonical=True)

    def sha384(self) -> bytes:
        """Return SHA-384 of `encode()`: the document's `user_data` (specs/receipts.md §5)."""
        return hashlib.sha384(self.encode()).digest()

    def _to_cbor(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "bundles": [{k: getattr(b, k) for k in _BUNDLE_KEYS} for b in self.bundles],
            "entrypoint": self.entrypoint,
            "args": list(self.args),
            "env": list(self.env),
            "nonce": self.nonce,
            "inputs": [[f.path, f.sha256, f.size] for f in sorted(self.inputs, key=_by_path)],
            "outputs": [[f.path, f.sha256, f.size] for f in sorted(self.outputs, key=_by_path)],
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_status": self.exit_status,
            "started": self.started,
            "ended": self.ended,
            "terms": None if self.terms is None else _terms_cbor(self.terms),
        }

    @classmethod
    def decode(cls, data: bytes, limits: ReceiptLimits = DEFAULT_LIMITS) -> RunRecord:
        """Decode canonical record bytes, checking every field (specs/receipts.md §3.3).

        Raises:
            ReceiptFormatError: Not one canonical CBOR map of the right fields and types.
            ReceiptVersionError: `format` is not `nitro-bundles/run-record/v1`.
            ReceiptLimitError: Too large or too many items.
        """
        obj = _decode(data, limits)
        if not isinstance(obj, dict) or set(obj) != set(_RECORD_KEYS):
            raise ReceiptFormatError("record: not a map of exactly the record's fields")
        if obj["format"] != RECORD_FORMAT:
            raise ReceiptVersionError(f"record: unknown format {str(obj['format'])[:64]!r}")
        record = cls(
            bundles=tuple(_bundle(b) for b in _list(obj["bundles"], "bundles", limits.max_bundles)),
            entrypoint=_text(obj["entrypoint"], "entrypoint", limits),
            args=tuple(
                _text(a, "args", limits) for a in _list(obj["args"], "args", limits.max_args)
            ),
            env=tuple(_text(e, "env", limits) for e in _list(obj["env"], "env", limits.max_args)),
            nonce=_opt_bytes(obj["nonce"], "nonce"),
            inputs=_files(obj["inputs"], "inputs", limits),
            outputs=_files(obj["outputs"], "outputs", limits),
            stdout=_digest(obj["stdout"], "stdout"),
            stderr=_digest(obj["stderr"], "stderr"),
            exit_status=_uint(obj["exit_status"], "exit_status"),
            started=_uint(obj["started"], "started"),
            ended=_uint(obj["ended"], "ended"),
            terms=None if obj["terms"] is None else _terms(obj["terms"], limits),
        )
        if record.encode() != bytes(data):
            raise ReceiptFormatError("record: cbor is not in canonical (deterministic) form")
        return record


def _by_path(entry: FileDigest) -> bytes:
    return entry.path.encode("utf-8", "surrogatepass")


def _terms_cbor(terms: RecordTerms) -> dict[str, Any]:
    paths = None if terms.output_paths is None else list(terms.output_paths)
    return {
        "max_output_bytes": terms.max_output_bytes,
        "stdout": terms.stdout,
        "stderr": terms.stderr,
        "output_paths": paths,
    }


def _decode(data: bytes, limits: ReceiptLimits) -> Any:
    if len(data) > limits.max_receipt_bytes:
        raise ReceiptLimitError(f"record: over {limits.max_receipt_bytes} bytes")
    items = 8 * limits.max_files + 4 * limits.max_args + 16 * limits.max_bundles + 64
    try:
        return decode_cbor(
            bytes(data),
            max_items=items,
            max_depth=_MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
    except CborScanError as exc:
        kind = ReceiptLimitError if exc.limit else ReceiptFormatError
        raise kind(f"record: invalid cbor ({exc})") from exc


def _list(value: object, name: str, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise ReceiptFormatError(f"record: {name} is not a list")
    if len(value) > most:
        raise ReceiptLimitError(f"record: {name} has more than {most} items")
    return value


def _text(value: object, name: str, limits: ReceiptLimits) -> str:
    if not isinstance(value, str):
        raise ReceiptFormatError(f"record: {name} is not text")
    if len(value) > limits.max_text:
        raise ReceiptLimitError(f"record: {name} is longer than {limits.max_text}")
    return value


def _uint(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_UINT:
        raise ReceiptFormatError(f"record: {name} is not an unsigned integer")
    return value


def _digest(value: object, name: str, size: int = SHA256_LEN) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise ReceiptFormatError(f"record: {name} is not {size} bytes")
    return value


def _opt_bytes(value: object, name: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, bytes) or not 1 <= len(value) <= 1024:
        raise ReceiptFormatError(f"record: {name} is not null or 1 to 1024 bytes")
    return value


def _files(value: object, name: str, limits: ReceiptLimits) -> tuple[FileDigest, ...]:
    entries = []
    for item in _list(value, name, limits.max_files):
        if not isinstance(item, list) or len(item) != 3:
            raise ReceiptFormatError(f"record: an entry of {name} is not [path, sha256, size]")
        path = _text(item[0], f"{name} path", limits)
        entries.append(FileDigest(path, _digest(item[1], f"{name} sha256"), _uint(item[2], name)))
    paths = [_by_path(e) for e in entries]
    if any(a >= b for a, b in itertools.pairwise(paths)):
        raise ReceiptFormatError(f"record: {name} are not sorted by path, or repeat one")
    return tuple(entries)


def _bundle(value: object) -> RecordBundle:
    if not isinstance(value, dict) or set(value) != set(_BUNDLE_KEYS):
        raise ReceiptFormatError("record: a bundle is not a map of exactly its fields")
    texts = {k: value[k] for k in ("role", "name", "version", "mount")}
    if not all(isinstance(v, str) for v in texts.values()):
        raise ReceiptFormatError("record: a bundle's role, name, version or mount is not text")
    return RecordBundle(
        role=value["role"],
        name=value["name"],
        version=value["version"],
        digest=_digest(value["digest"], "bundle digest"),
        manifest_digest=_digest(value["manifest_digest"], "bundle manifest_digest"),
        signer=_digest(value["signer"], "bundle signer", SIGNER_LEN),
        mount=value["mount"],
    )


def _terms(value: object, limits: ReceiptLimits) -> RecordTerms:
    if not isinstance(value, dict) or set(value) != set(_TERMS_KEYS):
        raise ReceiptFormatError("record: terms is not null or a map of exactly its fields")
    most = value["max_output_bytes"]
    if not isinstance(value["stdout"], bool) or not isinstance(value["stderr"], bool):
        raise ReceiptFormatError("record: terms stdout and stderr must be booleans")
    paths = value["output_paths"]
    return RecordTerms(
        max_output_bytes=None if most is None else _uint(most, "terms max_output_bytes"),
        stdout=value["stdout"],
        stderr=value["stderr"],
        output_paths=None
        if paths is None
        else tuple(_text(p, "terms output_paths", limits) for p in _list(paths, "terms", 1024)),
    )
