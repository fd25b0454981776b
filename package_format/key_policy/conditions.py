# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The condition keys and action sets of a key policy: one definition for writer and evaluator.

specs/key-policy.md §3 (what the writer conditions on) and specs/local-kms.md §5.2 (what a
request carries). Both sides take every key name from here, so a policy written by
`build_key_policy` and a request built by `request_condition_keys` always speak of the same keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ATTESTATION_PREFIX = "kms:RecipientAttestation:"
#: AWS names PCR0 twice: as ImageSha384 and as PCR0 (reference/attestation-kms.md §4).
IMAGE_SHA384 = ATTESTATION_PREFIX + "ImageSha384"
CONTEXT_PREFIX = "kms:EncryptionContext:"
CONTEXT_KEYS = "kms:EncryptionContextKeys"
BUNDLE_CONTEXT = CONTEXT_PREFIX + "bundle"
VERSION_CONTEXT = CONTEXT_PREFIX + "version"
KIND_CONTEXT = CONTEXT_PREFIX + "kind"
PRINCIPAL_ARN = "aws:PrincipalArn"
CALLER_ACCOUNT = "kms:CallerAccount"


def pcr_key(index: int) -> str:
    """The condition key of PCR `index` (`kms:RecipientAttestation:PCR<n>`)."""
    return f"{ATTESTATION_PREFIX}PCR{index}"


PCR0_KEY = pcr_key(0)
PCR8_KEY = pcr_key(8)
#: The keys that pin the image (either spelling of PCR0), lower-cased as IAM compares names.
IMAGE_KEYS = frozenset({IMAGE_SHA384.lower(), PCR0_KEY.lower()})

ENCLAVE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
#: Actions that release, re-wrap or delegate key material: never for administrators.
KEY_RELEASE_ACTIONS = (
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateRandom",
    "kms:DeriveSharedSecret",
    "kms:CreateGrant",
)
#: What makes a statement "decrypting": it can open an existing bundle's data key.
DECRYPTING = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:CreateGrant")
#: Actions a revocation denies for one version's encryption context.
REVOKED_ACTIONS = ("kms:Decrypt", "kms:ReEncryptFrom")


def attestation_condition_keys(pcrs: Mapping[int, bytes]) -> dict[str, str]:
    """Condition keys AWS derives from a verified attestation document.

    reference/attestation-kms.md §4: `ImageSha384` is PCR0; `PCR<n>` is each PCR;
    values are lower-case hex.
    """
    keys = {pcr_key(index): value.hex() for index, value in pcrs.items()}
    if 0 in pcrs:
        keys[IMAGE_SHA384] = pcrs[0].hex()
    return keys


def context_condition_keys(
    context: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Single- and multi-valued keys of an encryption context (specs/local-kms.md §5.2)."""
    single = {CONTEXT_PREFIX + k: v for k, v in context.items()}
    return single, {CONTEXT_KEYS: sorted(context)}


def principal_condition_keys(principal: str) -> dict[str, str]:
    """`aws:PrincipalArn` and `kms:CallerAccount` for a known caller (empty when unknown)."""
    if not principal:
        return {}
    keys = {PRINCIPAL_ARN: principal}
    account = principal.split(":")[4] if principal.count(":") >= 5 else ""
    if account:
        keys[CALLER_ACCOUNT] = account
    return keys


def iam_wildcard(pattern: str, value: str, *, ignore_case: bool) -> bool:
    """IAM wildcard match: `*` any run, `?` one character; nothing else is special."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    flags = re.IGNORECASE if ignore_case else 0
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Does an Action pattern cover `action` (case-insensitive, as IAM compares actions)."""
    return iam_wildcard(str(pattern), action, ignore_case=True)


def as_list(value: Any) -> list[Any]:
    """A policy element as a list (`None` is empty, a scalar is one item)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def decrypting_actions(statement: Mapping[str, Any]) -> list[str]:
    """The DECRYPTING actions a statement's Action or NotAction covers."""
    if "NotAction" in statement:
        excluded = as_list(statement["NotAction"])
        return [a for a in DECRYPTING if not any(action_matches(p, a) for p in excluded)]
    actions = as_list(statement.get("Action"))
    return [a for a in DECRYPTING if any(action_matches(p, a) for p in actions)]
