# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Inputs the parser fuzzing of issue 15 found in attestation payloads (attestation.md §2, §6)."""

from __future__ import annotations

from pathlib import Path

import cbor2
import pytest

from package_format.attestation.cose import parse_cose_sign1
from package_format.attestation.document import parse_payload
from package_format.attestation.errors import AttestationError, FieldError, FieldLimitError

VECTOR = (
    Path(__file__).resolve().parents[2]
    / "vectors"
    / "aws"
    / "attestation"
    / "nitrite_pr2_d2d8010.cose"
)
HUGE = 1 << 20_000  # over 6,000 decimal digits: Python refuses to print it


def _fields() -> dict[str, object]:
    payload = parse_cose_sign1(VECTOR.read_bytes()).payload
    fields = cbor2.loads(payload)
    assert isinstance(fields, dict)
    return fields


def test_huge_pcr_index_is_a_typed_error() -> None:
    fields = _fields()
    fields["pcrs"] = {HUGE: bytes(48)}
    with pytest.raises(AttestationError):
        parse_payload(cbor2.dumps(fields))


def test_huge_digest_is_a_typed_error() -> None:
    fields = _fields()
    fields["digest"] = HUGE
    with pytest.raises(AttestationError):
        parse_payload(cbor2.dumps(fields))


def test_bignum_over_the_limit_refused_before_decoding() -> None:
    fields = _fields()
    fields["timestamp"] = 1 << 200
    with pytest.raises(FieldLimitError):
        parse_payload(cbor2.dumps(fields))


def test_pcr_index_over_64_bits_still_named_in_the_error() -> None:
    fields = _fields()
    fields["pcrs"] = {1 << 70: bytes(48)}
    with pytest.raises(FieldError, match="out of range"):
        parse_payload(cbor2.dumps(fields))
