# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Inputs the parser fuzzing of issue 15 found in the signed index (distribution.md §3.5)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from nacl.signing import SigningKey

from package_format.index import (
    FileEntry,
    Index,
    IndexFormatError,
    IndexLimitError,
    IndexSignatureError,
    VersionEntry,
    key_id,
    sign_index,
    verify_index,
)
from package_format.index.signing import SIGNATURE_CONTEXT

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = SigningKey(b"\x01" * 32)
PUB = bytes(OWNER.verify_key)


def _index(versions: int = 1) -> Index:
    index = Index.empty("demo", NOW + timedelta(days=30))
    for i in range(versions):
        entry = VersionEntry(
            bundle=FileEntry("demo.nbundle", 10, "a" * 64),
            published=NOW,
            kms_key_id="arn:aws:kms:us-east-1:111122223333:key/k",
            encryption_context={"bundle": "demo", "version": f"1.0.{i}"},
        )
        index = index.with_version(f"1.0.{i}", entry, expires=NOW + timedelta(days=30))
    return index


def _envelope(signed: bytes) -> bytes:
    """Sign `signed` (canonical JSON text, possibly hand-made) as the owner would."""
    sig = OWNER.sign(SIGNATURE_CONTEXT + signed).signature
    head = {"keyid": key_id(PUB), "sig": base64.b64encode(sig).decode()}
    return (
        b'{"signature":'
        + json.dumps(head, separators=(",", ":")).encode()
        + b',"signed":'
        + signed
        + b"}"
    )


def _signed_text(**changes: object) -> bytes:
    obj = _index().to_json()
    obj.update(changes)
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_huge_json_integer_is_a_typed_error() -> None:
    signed = _signed_text(version=12345).replace(b'"version":12345', b'"version":1' + b"0" * 5000)
    assert b"0" * 5000 in signed
    with pytest.raises(IndexLimitError):
        verify_index(_envelope(signed), PUB, name="demo", now=NOW)


def test_large_index_not_decoded_before_signature_check(monkeypatch) -> None:
    data = sign_index(_index(2000), bytes(OWNER))
    assert len(data) > 500_000
    forged = data.replace(b'"1.0.7"', b'"1.0.8"', 1)  # any change to the signed part
    monkeypatch.setattr(json, "loads", _must_not_decode)
    with pytest.raises(IndexSignatureError):
        verify_index(forged, PUB, name="demo", now=NOW)


def test_spec_version_true_refused() -> None:
    signed = _signed_text(spec_version=True)
    with pytest.raises(IndexFormatError):
        verify_index(_envelope(signed), PUB, name="demo", now=NOW)


def test_deep_json_in_a_signed_index_is_a_limit_error() -> None:
    signed = _signed_text()[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(IndexLimitError):
        verify_index(_envelope(signed), PUB, name="demo", now=NOW)


def _must_not_decode(*_args: object, **_kwargs: object) -> object:
    raise AssertionError("the index was decoded before its signature was checked")
