# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every vector of tests/vectors/key-policy/ gives its `expect:` (specs/key-policy.md §7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from vector_files import assert_regenerates, files, read_json

from package_format.key_policy import (
    PolicyInputError,
    PolicyRequest,
    RequestContext,
    attestation_condition_keys,
    build_policy,
    check_policy,
    context_condition_keys,
    evaluate,
    principal_condition_keys,
)

BUILD = files("key-policy", "build_")
CHECK = files("key-policy", "check_")
EVAL = files("key-policy", "eval_")


def test_every_area_has_vectors_of_each_outcome() -> None:
    assert {read_json(p)[0]["expect"] for p in BUILD} == {"success", "PolicyInputError"}
    assert {read_json(p)[0]["expect"] for p in CHECK} == {"success", "findings"}
    assert {read_json(p)[0]["expect"] for p in EVAL} == {"allow", "deny"}
    assert {read_json(p)[0]["rule"] for p in EVAL} == {
        "allow",
        "explicit-deny",
        "implicit-deny",
        "not-understood",
    }


def _policy_request(data: dict[str, Any]) -> PolicyRequest:
    return PolicyRequest(
        **{
            **data,
            "bundle_names": tuple(data["bundle_names"]),
            "admin_principals": tuple(data["admin_principals"]),
        }
    )


@pytest.mark.parametrize("path", BUILD, ids=[p.name for p in BUILD])
def test_build_vector(path: Path) -> None:
    fields, body = read_json(path)
    request = _policy_request(body["input"])
    if fields["expect"] == "success":
        assert build_policy(request) == body["policy"]
        assert check_policy(body["policy"]) == []
        return
    with pytest.raises(PolicyInputError) as info:
        build_policy(request)
    assert info.value.field == fields["field"]
    assert "--" not in str(info.value), "library errors name inputs, not CLI flags"


@pytest.mark.parametrize("path", CHECK, ids=[p.name for p in CHECK])
def test_check_vector(path: Path) -> None:
    fields, body = read_json(path)
    codes = sorted({f.code for f in check_policy(body["policy"])})
    expected = fields["codes"].split(",") if fields["expect"] == "findings" else []
    assert codes == expected


def request_context(request: dict[str, Any]) -> RequestContext:
    """The condition keys the local KMS front derives (specs/local-kms.md §5.2)."""
    keys = attestation_condition_keys(
        {int(n): bytes.fromhex(v) for n, v in request["pcrs"].items()}
    )
    single, multi = context_condition_keys(request["context"])
    if request["context"]:
        keys.update(single)
    keys.update(principal_condition_keys(request["principal"]))
    return RequestContext(
        request["action"],
        request["principal"],
        request["resource"],
        keys,
        multi if request["context"] else {},
    )


@pytest.mark.parametrize("path", EVAL, ids=[p.name for p in EVAL])
def test_eval_vector(path: Path) -> None:
    fields, body = read_json(path)
    decision = evaluate(body["policy"], request_context(body["request"]))
    assert (decision.allowed, decision.rule) == (fields["expect"] == "allow", fields["rule"])


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    assert_regenerates("key_policy", "key-policy", tmp_path)
