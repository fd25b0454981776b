# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The CBOR pre-scan and the JSON/repr helpers every parser uses (package_format/limits.py)."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from package_format.limits import (
    CborScanError,
    JsonLimitError,
    decode_cbor,
    is_decoder_panic,
    json_depth,
    json_loads,
    scan_cbor,
    short_repr,
)

_LEAVES = (
    st.integers(-(2**64), 2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(_VALUES)
@settings(max_examples=300)
def test_scan_finds_the_end_of_every_encoded_value(value: object) -> None:
    data = cbor2.dumps(value)
    assert scan_cbor(data, max_items=10_000, max_depth=64) == len(data)
    assert decode_cbor(data, max_items=10_000, max_depth=63) == value


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_scan_of_any_bytes_raises_only_its_error(data: bytes) -> None:
    with contextlib.suppress(CborScanError):
        decode_cbor(data, max_items=100, max_depth=8)


@pytest.mark.parametrize(
    ("data", "limit"),
    [
        (b"\x81" * 9 + b"\x00", True),  # nine arrays deep
        (b"\x9a\xff\xff\xff\xff", True),  # declares more items than allowed
        (b"\x83\x01\x02", False),  # truncated
        (b"\xc2\x58\x20" + bytes(32), True),  # a 32-byte bignum
        (b"\x5f\x41\x00\xff", False),  # indefinite, refused below
        (b"\xff", False),  # a lone break
        (b"\x1c", False),  # reserved additional information
    ],
)
def test_scan_refusals_are_classified(data: bytes, limit: bool) -> None:
    with pytest.raises(CborScanError) as info:
        scan_cbor(data, max_items=100, max_depth=8, allow_indefinite=False)
    assert info.value.limit is limit


def test_trailing_bytes_are_marked() -> None:
    with pytest.raises(CborScanError) as info:
        decode_cbor(b"\x01\x02")
    assert info.value.trailing


def test_json_limits_apply_before_conversion() -> None:
    assert json_depth('{"a":["[[[[", {"b": []}]}') == 4
    with pytest.raises(JsonLimitError):
        json_loads("[" * 40 + "]" * 40)
    with pytest.raises(JsonLimitError):
        json_loads("1" * 21)
    assert json_loads('{"a": -12345678901234567890}') == {"a": -12345678901234567890}


def test_short_repr_of_a_huge_integer() -> None:
    assert short_repr(1 << 20_000).startswith("<integer of")
    assert short_repr([1 << 20_000]) == "<list>"
    assert short_repr("x" * 100) == repr("x" * 100)[:40]


def test_only_a_panic_counts_as_a_decoder_panic() -> None:
    class PanicException(BaseException):
        pass

    assert is_decoder_panic(PanicException())
    assert not is_decoder_panic(KeyboardInterrupt())
    assert not is_decoder_panic(ValueError())
