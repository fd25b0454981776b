# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every vector of tests/vectors/nsm/ gives its `expect:` (specs/attestation.md §10.2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from vector_files import assert_regenerates, check_expect, files, read

from enclave.nsm import errors, messages

REQUESTS = files("nsm", "request_")
RESPONSES = files("nsm", "response_")

ENCODERS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "DescribeNSM": lambda _a: messages.encode_describe_nsm(),
    "GetRandom": lambda _a: messages.encode_get_random(),
    "DescribePCR": lambda a: messages.encode_describe_pcr(a["index"]),
    "Attestation": lambda a: messages.encode_attestation(
        a.get("public_key"), a.get("user_data"), a.get("nonce")
    ),
}


def _decode(call: str, data: bytes) -> str:
    if call == "Attestation":
        return messages.decode_attestation(data).hex()
    if call == "GetRandom":
        return messages.decode_get_random(data).hex()
    pcr = messages.decode_describe_pcr(data)
    return f"{pcr.locked} {pcr.data.hex()}"


def test_vector_set_has_both_outcomes_each_side() -> None:
    assert {read(p)[0]["expect"] for p in REQUESTS} == {"success", "NsmArgumentError"}
    assert {read(p)[0]["expect"] for p in RESPONSES} == {"success", "NsmResponseError"}


@pytest.mark.parametrize("path", REQUESTS, ids=[p.name for p in REQUESTS])
def test_request_vector(path: Path) -> None:
    fields, data = read(path)
    args = {
        k: v if isinstance(v, int) else bytes.fromhex(v)
        for k, v in json.loads(fields["args"]).items()
    }
    fields = {**fields, "bytes": data.hex()}
    check_expect(fields, errors, lambda: ENCODERS[fields["call"]](args).hex(), "bytes")


@pytest.mark.parametrize("path", RESPONSES, ids=[p.name for p in RESPONSES])
def test_response_vector(path: Path) -> None:
    fields, data = read(path)
    check_expect(fields, errors, lambda: _decode(fields["call"], data), "result")


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    assert_regenerates("nsm", "nsm", tmp_path)
