# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Inputs the parser fuzzing of issue 15 found, one test each (bundle-format.md §5.5, §7.3, §8).

Each failed on the code before the fix: an untyped exception, or work before the signature.
"""

from __future__ import annotations

import io
import struct

import cbor2
import pytest
from _vectors import VECTOR_DIR, read_vector

from package_format.bundle import header as header_module
from package_format.bundle import stream as stream_module
from package_format.bundle.config import parse_bundle_toml
from package_format.bundle.errors import (
    BundleLimitError,
    BundleSignatureError,
    HeaderEncodingError,
    ManifestConfigError,
    SegmentAuthenticationError,
    UntrustedSignerError,
)
from package_format.bundle.header import read_header
from package_format.bundle.limits import FORMAT_VERSION, MAGIC
from package_format.bundle.reader import BundleReader
from package_format.bundle.stream import SegmentOpener, SegmentSealer


def _bundle_with_body(body: bytes) -> bytes:
    return MAGIC + bytes([FORMAT_VERSION]) + struct.pack(">I", len(body)) + body + bytes(64)


def _ok() -> tuple[bytes, bytes]:
    fields, data = read_vector(VECTOR_DIR / "bundle_ok")
    return data, bytes.fromhex(fields["owner key"])


def test_header_of_empty_cbor_arrays_refused_before_decoding(monkeypatch) -> None:
    # 16 MiB of empty arrays: ~20 s and 1.2 GiB in cbor2 before the fix.
    body = b"\x9a" + struct.pack(">I", (16 << 20) - 5) + b"\x80" * ((16 << 20) - 5)
    monkeypatch.setattr(cbor2, "loads", _must_not_decode)
    with pytest.raises(BundleLimitError):
        read_header(io.BytesIO(_bundle_with_body(body)))


def test_cbor_decoder_panic_becomes_header_encoding_error(monkeypatch) -> None:
    # Under less memory cbor2's Rust decoder panics: pyo3's PanicException is a BaseException.
    class PanicException(BaseException):
        pass

    def panic(*_args: object, **_kwargs: object) -> object:
        raise PanicException("capacity overflow")

    data, _ = _ok()
    monkeypatch.setattr(cbor2, "loads", panic)
    with pytest.raises(HeaderEncodingError):
        read_header(io.BytesIO(data))


def test_keyboard_interrupt_in_decoder_is_not_swallowed(monkeypatch) -> None:
    def interrupt(*_args: object, **_kwargs: object) -> object:
        raise KeyboardInterrupt

    data, _ = _ok()
    monkeypatch.setattr(cbor2, "loads", interrupt)
    with pytest.raises(KeyboardInterrupt):
        read_header(io.BytesIO(data))


def test_large_file_table_not_decoded_before_signature_check(monkeypatch) -> None:
    # A 100,000-entry file table cost 2.5 s of decoding before the signature was checked.
    data, owner = _ok()
    monkeypatch.setattr(header_module.BundleHeader, "decode", _must_not_decode)
    with pytest.raises(UntrustedSignerError):
        BundleReader.open(io.BytesIO(data), trusted_keys=[bytes(32)])
    forged = bytearray(data)
    (length,) = struct.unpack(">I", data[6:10])
    forged[10 + length] ^= 1  # the signature's first byte
    with pytest.raises(BundleSignatureError):
        BundleReader.open(io.BytesIO(bytes(forged)), trusted_keys=[owner])


def test_header_without_signer_prefix_refused_before_decoding(monkeypatch) -> None:
    monkeypatch.setattr(header_module.BundleHeader, "decode", _must_not_decode)
    with pytest.raises(HeaderEncodingError):
        BundleReader.open(io.BytesIO(_bundle_with_body(b"\x80" * 100)), trusted_keys=[bytes(32)])


def test_signed_bundle_opens_verified_with_trusted_keys() -> None:
    data, owner = _ok()
    reader = BundleReader.open(io.BytesIO(data), trusted_keys=[owner])
    assert reader.header.signer == owner
    assert reader.verify_signature([owner]) == owner


def test_manifest_toml_deep_nesting_is_a_config_error() -> None:
    with pytest.raises(ManifestConfigError, match="nested deeper"):
        parse_bundle_toml("name = " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ManifestConfigError):
        parse_bundle_toml("name = " + "{a=" * 5000 + "1" + "}" * 5000)


def test_manifest_toml_huge_integer_is_a_config_error() -> None:
    with pytest.raises(ManifestConfigError):
        parse_bundle_toml("[output]\nmax_files_size = 1" + "0" * 5000 + "\n")


def test_manifest_toml_brackets_in_strings_and_comments_not_counted() -> None:
    text = 'name = "demo"\nexclude = ["' + "[" * 40 + '"]  # ' + "{" * 40 + "\n"
    assert parse_bundle_toml(text).exclude == ("[" * 40,)


class _CountingAead:
    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0

    def decrypt_into(self, *args: object) -> None:
        self.calls += 1
        self.inner.decrypt_into(*args)  # type: ignore[attr-defined]


def test_segment_diagnosis_is_bounded_for_a_flipped_bit() -> None:
    # 8,192 decryptions per bad segment before the fix (1.6-5 s of enclave CPU).
    key, aad, seg, count = b"P" * 32, b"A" * 32, 64, 10_000
    sealer = SegmentSealer(key, aad, seg * count, seg)
    sealed = None
    for i in range(count // 2 + 1):
        sealed = bytes(sealer.seal(memoryview(bytes([i % 256]) * seg)))
    assert sealed is not None
    bad = bytearray(sealed)
    bad[5] ^= 1
    opener = SegmentOpener(key, aad, seg * count, seg)
    counting = _CountingAead(opener._aead)
    opener._aead = counting  # type: ignore[assignment]
    with pytest.raises(SegmentAuthenticationError):
        opener.open(count // 2, memoryview(bytes(bad)))
    assert counting.calls <= 1 + stream_module.MAX_ORDER_PROBES


def _must_not_decode(*_args: object, **_kwargs: object) -> object:
    raise AssertionError("decoded before the limits or the signature were checked")
