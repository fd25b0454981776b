# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Header encoding, limits and the reader's API contract (specs/bundle-format.md §3, §4, §11)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import cbor2
import pytest
from _vectors import VECTOR_DIR, generator, read_vector

from package_format.bundle.errors import (
    BadMagicError,
    BundleLimitError,
    HeaderEncodingError,
    HeaderFieldError,
    KeyCommitmentError,
    PayloadSourceError,
    SignatureNotVerifiedError,
    TruncatedHeaderError,
)
from package_format.bundle.header import BundleHeader, read_header
from package_format.bundle.limits import BundleLimits
from package_format.bundle.manifest import FileEntry
from package_format.bundle.reader import BundleReader
from package_format.bundle.signing import public_key_of
from package_format.bundle.writer import build_header, write_bundle

GEN = generator()


def ok_bundle() -> tuple[dict[str, str], bytes]:
    return read_vector(VECTOR_DIR / "bundle_ok")


def test_header_reencodes_to_identical_bytes() -> None:
    _, data = ok_bundle()
    parsed = read_header(io.BytesIO(data))
    body = parsed.signed_bytes[10:]
    assert parsed.header.encode() == body
    assert BundleHeader.decode(body) == parsed.header


def test_empty_input_is_bad_magic_or_truncated() -> None:
    with pytest.raises(BadMagicError):
        read_header(io.BytesIO(b"PK\x03\x04"))
    with pytest.raises(TruncatedHeaderError):
        read_header(io.BytesIO(b"NBN"))
    with pytest.raises(TruncatedHeaderError):
        read_header(io.BytesIO(b""))


def test_duplicate_cbor_keys_rejected() -> None:
    raw = b"\xa2" + cbor2.dumps("a") + b"\x01" + cbor2.dumps("a") + b"\x02"
    with pytest.raises(HeaderEncodingError):
        BundleHeader.decode(raw)


def test_indefinite_length_cbor_rejected() -> None:
    with pytest.raises(HeaderEncodingError):
        BundleHeader.decode(b"\xbf\x61a\x01\xff")


def test_cbor_tag_rejected() -> None:
    obj = GEN.header_obj(GEN.manifest())
    obj["manifest"]["created"] = cbor2.CBORTag(99, obj["manifest"]["created"])
    with pytest.raises(HeaderFieldError):
        BundleHeader.decode(cbor2.dumps(obj, canonical=True))


def test_reader_limits_are_applied() -> None:
    _, data = ok_bundle()
    with pytest.raises(BundleLimitError):
        read_header(io.BytesIO(data), BundleLimits(max_files=2))
    with pytest.raises(BundleLimitError):
        read_header(io.BytesIO(data), BundleLimits(max_header_size=100))


def test_context_must_name_bundle_and_version() -> None:
    obj = GEN.header_obj(GEN.manifest())
    obj["encryption_context"]["version"] = "9.9.9"
    with pytest.raises(HeaderFieldError):
        BundleHeader.decode(cbor2.dumps(obj, canonical=True))


def test_reserved_context_key_rejected() -> None:
    with pytest.raises(HeaderFieldError):
        build_header(
            GEN.manifest(),
            kms_key_id="k",
            encryption_context={"aws:x": "y"},
            wrapped_key=b"w",
            data_key=GEN.DATA_KEY,
            salt=bytes(32),
            signer=public_key_of(GEN.OWNER_SEED),
        )


def test_payload_before_signature_is_refused() -> None:
    fields, data = ok_bundle()
    reader = BundleReader.open(io.BytesIO(data))
    with pytest.raises(SignatureNotVerifiedError):
        next(reader.iter_files(bytes.fromhex(fields["data key"])))


def test_wrong_data_key_fails_commitment_before_any_segment() -> None:
    fields, data = ok_bundle()
    stream = io.BytesIO(data)
    reader = BundleReader.open(stream)
    reader.verify_signature([bytes.fromhex(fields["owner key"])])
    position = stream.tell()
    with pytest.raises(KeyCommitmentError):
        next(reader.iter_files(GEN.OTHER_DATA_KEY))
    assert stream.tell() == position


def test_verify_payload_returns_size() -> None:
    fields, data = ok_bundle()
    reader = BundleReader.open(io.BytesIO(data))
    reader.verify_signature([bytes.fromhex(fields["owner key"])])
    assert reader.verify_payload(bytes.fromhex(fields["data key"])) == sum(
        len(b) for b in GEN.FILES.values()
    )


def _header() -> BundleHeader:
    return BundleHeader.decode(cbor2.dumps(GEN.header_obj(GEN.manifest()), canonical=True))


@pytest.mark.parametrize("delta", [-1, 1], ids=["shrank", "grew"])
def test_file_changing_size_during_write_rejected(delta: int) -> None:
    header = _header()

    @contextlib.contextmanager
    def open_file(entry: FileEntry) -> Iterator[io.BytesIO]:
        data = GEN.FILES[entry.path]
        if entry.path == "data/weights.bin":
            data = data[:delta] if delta < 0 else data + b"x"
        yield io.BytesIO(data)

    with pytest.raises(PayloadSourceError):
        write_bundle(
            io.BytesIO(),
            header,
            signing_key=GEN.OWNER_SEED,
            data_key=GEN.DATA_KEY,
            open_file=open_file,
        )


def test_writer_output_matches_vector_assembler() -> None:
    header = _header()

    @contextlib.contextmanager
    def open_file(entry: FileEntry) -> Iterator[io.BytesIO]:
        yield io.BytesIO(GEN.FILES[entry.path])

    out = io.BytesIO()
    n = write_bundle(
        out, header, signing_key=GEN.OWNER_SEED, data_key=GEN.DATA_KEY, open_file=open_file
    )
    _, data = ok_bundle()
    assert out.getvalue() == data
    assert n == len(data)
