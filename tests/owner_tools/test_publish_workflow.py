# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The publish + key-policy workflow is a library function (issue 19); the CLI only prints."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path

import pytest

from owner_tools import _cli_publish, publish_policy
from owner_tools.errors import UsageError
from owner_tools.publish_policy import PolicyTarget, Principals, default_pcrs, publish_with_policy
from package_format.index import S3Location

ACCOUNT = "111122223333"


def test_policy_without_image_refused_before_any_upload() -> None:
    target = PolicyTarget(
        kms=object(),  # type: ignore[arg-type]
        principals=Principals(
            ACCOUNT, f"arn:aws:iam::{ACCOUNT}:role/e", [f"arn:aws:iam::{ACCOUNT}:role/a"]
        ),
    )
    with pytest.raises(UsageError) as info:
        publish_with_policy(
            object(),  # type: ignore[arg-type]  # an S3 client that must not be called
            S3Location.parse("s3://bucket/repo"),
            Path("demo.nbundle"),
            private_key=b"\x01" * 32,
            now=datetime(2026, 1, 1, tzinfo=UTC),
            policy=target,
        )
    assert info.value.field == "image"
    assert "--" not in str(info.value)


def test_default_pcrs_is_what_build_eif_writes() -> None:
    assert default_pcrs(Path("a/x.eif"), None) == Path("a/x.eif.pcrs.json")
    assert default_pcrs(Path("a/x.eif"), Path("p.json")) == Path("p.json")
    assert default_pcrs(None, None) is None


def test_cli_calls_the_workflows_and_does_not_apply_policies_itself() -> None:
    source = inspect.getsource(_cli_publish)
    assert "publish_with_policy" in source
    assert "revoke_with_policy" in source
    for step in ("apply_image_policy", "apply_revocation", "build_key_policy", "pub.publish("):
        assert step not in source, step
    assert callable(publish_policy.revoke_with_policy)
