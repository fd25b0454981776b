# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Verify a receipt, then the files it names (specs/receipts.md §6, steps 1-8).

Pure: the caller passes the pinned root, the time, the PCRs it expects and a way to open
files (`FileOpener`); nothing here reads the file system or the clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from package_format.attestation.document import AttestationDocument, parse_document
from package_format.attestation.errors import AttestationError
from package_format.attestation.verify import verify_attestation
from package_format.receipt.errors import (
    DocumentInvalidError,
    FileMismatchError,
    InputMismatchError,
    NonceMismatchError,
    OutputMismatchError,
    PcrMismatchError,
    RecordHashMismatchError,
)
from package_format.receipt.receipt import parse_receipt
from package_format.receipt.record import DEFAULT_LIMITS, FileDigest, ReceiptLimits, RunRecord

if TYPE_CHECKING:
    from datetime import datetime

    from cryptography import x509

#: Opens a file named by the record (its session path), or returns None when it is absent.
FileOpener = Callable[[str], BinaryIO | None]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt whose document, PCRs, record hash and nonce verified."""

    record: RunRecord
    record_bytes: bytes
    document: AttestationDocument
    verified_at: datetime


def verify_receipt(
    data: bytes,
    *,
    root: bytes | x509.Certificate,
    expect_pcrs: Mapping[int, bytes],
    nonce: bytes | None = None,
    at: datetime | None = None,
    limits: ReceiptLimits = DEFAULT_LIMITS,
) -> VerifiedReceipt:
    """Verify a receipt file's bytes (specs/receipts.md §6 steps 1-6).

    Args:
        data: the `receipt.cbor` bytes.
        root: the pinned root certificate (the AWS Nitro root, or the simulator's).
        expect_pcrs: PCR index to the value the verifier expects (at least one).
        nonce: the nonce the user sent with the run; None skips the freshness check.
        at: the verification time; None means the document's own timestamp (§6 step 2).
        limits: limits on untrusted input.

    Returns:
        The record and document, verified.

    Raises:
        ValueError: `expect_pcrs` is empty (the caller must say which image it expects).
        ReceiptFormatError: The receipt or record is malformed or not canonical.
        ReceiptVersionError: An unknown receipt or record format.
        ReceiptLimitError: The receipt is too large.
        DocumentInvalidError: The attestation document does not verify.
        PcrMismatchError: A PCR differs from the expected value.
        RecordHashMismatchError: `user_data` is not SHA-384 of the record.
        NonceMismatchError: The nonce differs from `nonce`, or record and document disagree.
    """
    if not expect_pcrs:
        raise ValueError("verify_receipt: expect_pcrs must name at least one pcr")
    receipt = parse_receipt(data, limits)  # step 1
    document = _verify_document(receipt.document, root, at)  # step 2
    when = at if at is not None else document.timestamp
    for index in sorted(expect_pcrs):  # step 3
        got = document.pcrs.get(index)
        if got is None or not hmac.compare_digest(got, expect_pcrs[index]):
            shown = "absent" if got is None else got.hex()[:16] + "..."
            raise PcrMismatchError(
                f"pcr{index}: the receipt's enclave ran another image "
                f"(document {shown}, expected {expect_pcrs[index].hex()[:16]}...)",
                index,
            )
    expected = hashlib.sha384(receipt.record).digest()  # step 4
    if document.user_data is None or not hmac.compare_digest(document.user_data, expected):
        raise RecordHashMismatchError("record: sha-384 does not match the document's user_data")
    record = RunRecord.decode(receipt.record, limits)  # step 5
    if record.nonce != document.nonce:  # step 6
        raise NonceMismatchError("nonce: the record and the document disagree")
    if nonce is not None and record.nonce != nonce:
        raise NonceMismatchError("nonce: the receipt does not carry the nonce given (a replay?)")
    return VerifiedReceipt(record, receipt.record, document, when)


def _verify_document(
    document: bytes, root: bytes | x509.Certificate, at: datetime | None
) -> AttestationDocument:
    try:
        when = at if at is not None else parse_document(document)[1].timestamp
        return verify_attestation(document, root=root, at=when)
    except AttestationError as exc:
        raise DocumentInvalidError(f"document: {exc}") from exc


def verify_outputs(record: RunRecord, open_file: FileOpener) -> int:
    """Check each output the record names (specs/receipts.md §6 step 7); return the count.

    Raises:
        OutputMismatchError: An output is missing or differs.
    """
    return _check(record.outputs, open_file, OutputMismatchError)


def verify_inputs(record: RunRecord, open_file: FileOpener) -> int:
    """Check each input the record names (specs/receipts.md §6 step 8); return the count.

    Raises:
        InputMismatchError: An input is missing or differs.
    """
    return _check(record.inputs, open_file, InputMismatchError)


def _check(
    entries: Iterable[FileDigest], open_file: FileOpener, error: type[FileMismatchError]
) -> int:
    what = "output" if error is OutputMismatchError else "input"
    count = 0
    for entry in entries:
        stream = open_file(entry.path)
        if stream is None:
            raise error(f"{what} {entry.path}: missing", entry.path, "missing")
        with stream:
            digest, size = sha256_stream(stream)
        if size != entry.size:
            raise error(
                f"{what} {entry.path}: {size} bytes, the record says {entry.size}",
                entry.path,
                "size",
            )
        if not hmac.compare_digest(digest, entry.sha256):
            raise error(
                f"{what} {entry.path}: sha-256 differs from the record", entry.path, "digest"
            )
        count += 1
    return count


def sha256_stream(stream: BinaryIO) -> tuple[bytes, int]:
    """Return SHA-256 and length of what `stream` holds from its position to its end."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.digest(), size
