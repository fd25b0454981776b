# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A data provider's key policy (specs/key-policy.md §3.1): bound to PCR0 or to PCR8, kind data.

The generated policy is evaluated by the evaluator the local KMS front uses, with the condition
keys KMS derives from an attestation document.
"""

from __future__ import annotations

import pytest

from package_format.key_policy import (
    PolicyInputError,
    RequestContext,
    attestation_condition_keys,
    build_key_policy,
    check_policy,
    evaluate,
)

ACCOUNT = "123456789012"
PARENT = f"arn:aws:iam::{ACCOUNT}:role/enclave-parent"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/provider-admin"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
PCR0 = bytes(range(1, 49))
PCR8 = bytes(range(2, 50))
OTHER = bytes(range(3, 51))
CONTEXT = {"bundle": "records", "version": "1.0.0", "kind": "data"}


def _policy(bind: str) -> dict:
    return build_key_policy(
        account_id=ACCOUNT, pcr0=PCR0.hex(), pcr8=PCR8.hex(), bundle_name="records",
        enclave_principal=PARENT, admin_principals=[ADMIN], bind=bind, kind="data",
    )  # fmt: skip


def _decrypt(policy: dict, pcrs: dict[int, bytes], context=CONTEXT) -> bool:
    keys = attestation_condition_keys(pcrs)
    keys.update({f"kms:EncryptionContext:{k}": v for k, v in context.items()})
    return evaluate(policy, RequestContext("kms:Decrypt", PARENT, KEY, keys)).allowed


@pytest.mark.parametrize("bind", ["pcr0", "pcr8"])
def test_data_providers_policy_releases_to_the_bound_image_and_says_which(bind) -> None:
    policy = _policy(bind)
    assert check_policy(policy) == []
    assert _decrypt(policy, {0: PCR0, 8: PCR8})
    assert ("PCR8 (the image signer)" if bind == "pcr8" else "PCR0 (this image)") in policy["Id"]


def test_policy_naming_other_pcrs_denies_the_key() -> None:
    assert not _decrypt(_policy("pcr0"), {0: OTHER, 8: PCR8})
    assert not _decrypt(_policy("pcr8"), {0: PCR0, 8: OTHER})
    assert not _decrypt(_policy("pcr8"), {0: bytes(48), 8: bytes(48)})  # debug mode


def test_pcr8_binding_survives_a_new_image_of_the_same_signer() -> None:
    assert _decrypt(_policy("pcr8"), {0: OTHER, 8: PCR8})
    assert not _decrypt(_policy("pcr0"), {0: OTHER, 8: PCR8})


def test_data_key_policy_refuses_an_app_context() -> None:
    # The key is bound to kind = data: a wrapped key moved into an app bundle is not released.
    app_context = {"bundle": "records", "version": "1.0.0"}
    assert not _decrypt(_policy("pcr0"), {0: PCR0, 8: PCR8}, app_context)


def test_pcr8_binding_needs_a_signed_image() -> None:
    with pytest.raises(PolicyInputError, match="signed image"):
        build_key_policy(
            account_id=ACCOUNT, pcr0=PCR0.hex(), bundle_name="records",
            enclave_principal=PARENT, admin_principals=[ADMIN], bind="pcr8",
        )  # fmt: skip
