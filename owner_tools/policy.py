# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""KMS key policies bound to an enclave image, and a checker (specs/key-policy.md).

`build_key_policy` lets only an attested enclave (PCR0, and PCR8 when signed)
decrypt a bundle's data key, for that bundle's encryption context; key
administrators get everything except the actions that release or re-wrap key
material; an optional owner principal may call GenerateDataKey (to pack) but
never Decrypt. `check_policy` flags the shapes that let a user get the key
without the enclave.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from owner_tools.errors import InputError, UsageError

ATTESTATION_PREFIX = "kms:RecipientAttestation:"
IMAGE_SHA384 = ATTESTATION_PREFIX + "ImageSha384"
PCR8_KEY = ATTESTATION_PREFIX + "PCR8"
CONTEXT_PREFIX = "kms:EncryptionContext:"
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
_PCR_RE = re.compile(r"^[0-9a-fA-F]{96}$")
_ARN_RE = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::(\d{12}):.+$")


class PolicyInputError(InputError):
    """A PCR value, principal or policy document given to the policy tools is invalid."""


@dataclass(frozen=True)
class Finding:
    """One reason a policy is unsafe."""

    code: str
    statement: str
    message: str

    def __str__(self) -> str:
        return f"statement {self.statement}: {self.message} [{self.code}]"


def check_pcr(value: str, name: str) -> str:
    """Validate a PCR as 96 hex digits; return it in lowercase.

    Raises:
        PolicyInputError: wrong length, non-hex, or all zero (a debug-mode enclave).
    """
    if not _PCR_RE.match(value):
        raise PolicyInputError(f"{name}: expected 96 hex digits, got {value[:20]!r}")
    if set(value) == {"0"}:
        raise PolicyInputError(f"{name}: all-zero pcr (debug-mode enclaves) must not be trusted")
    return value.lower()


def _check_principal(arn: str, account_id: str, flag: str) -> str:
    m = _ARN_RE.match(arn)
    if m is None:
        raise UsageError(f"{flag} {arn!r}: not an iam principal arn")
    if m.group(2) != account_id:
        raise UsageError(f"{flag} {arn!r}: not in account {account_id}")
    return arn


def build_key_policy(
    *,
    account_id: str,
    pcr0: str,
    bundle_name: str | Sequence[str],
    enclave_principal: str,
    admin_principals: list[str],
    pcr8: str | None = None,
    bundle_version: str | None = None,
    owner_principal: str | None = None,
    bind: str = "pcr0",
    kind: str = "app",
) -> dict[str, Any]:
    """The key policy for one bundle (or several: a list) served by one enclave image.

    Several names share one key: the conditions list them all (IAM: any of them matches);
    one name gives exactly the single-bundle policy (specs/key-policy.md §3).

    `bind` `pcr0` pins the image (and its signer when signed); `pcr8` pins only the image
    signer, so a data provider need not edit its policy for each image release (§3.1).
    `kind` `data` also binds the key to data bundles (`kms:EncryptionContext:kind`). Either
    makes the policy's `Id` say what it is bound to.

    Raises:
        UsageError: a principal is not an ARN of `account_id`, or no admin.
        PolicyInputError: a PCR is malformed or all zero.
    """
    if not re.fullmatch(r"\d{12}", account_id):
        raise UsageError(f"--account {account_id!r}: expected 12 digits")
    if not admin_principals:
        raise UsageError("at least one --admin-principal is required")
    names = [bundle_name] if isinstance(bundle_name, str) else list(dict.fromkeys(bundle_name))
    if not names or not all(names):
        raise UsageError("--bundle-name must not be empty")
    if len(names) > 1 and bundle_version is not None:
        raise UsageError("--bundle-version needs exactly one --bundle-name")
    bundle: str | list[str] = names[0] if len(names) == 1 else names
    admins = [_check_principal(a, account_id, "--admin-principal") for a in admin_principals]
    enclave = _check_principal(enclave_principal, account_id, "--enclave-principal")
    attestation = _attestation(bind, pcr0, pcr8)
    context: dict[str, str | list[str]] = {CONTEXT_PREFIX + "bundle": bundle}
    if bundle_version is not None:
        context[CONTEXT_PREFIX + "version"] = bundle_version
    if kind == "data":
        context[CONTEXT_PREFIX + "kind"] = "data"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "KeyAdministrationWithoutKeyRelease",
            "Effect": "Allow",
            "Principal": {"AWS": admins if len(admins) > 1 else admins[0]},
            "NotAction": list(KEY_RELEASE_ACTIONS),
            "Resource": "*",
        },
        {
            "Sid": "AttestedEnclaveOnly",
            "Effect": "Allow",
            "Principal": {"AWS": enclave},
            "Action": list(ENCLAVE_ACTIONS),
            "Resource": "*",
            "Condition": {"StringEqualsIgnoreCase": attestation, "StringEquals": context},
        },
    ]
    if owner_principal is not None:
        owner = _check_principal(owner_principal, account_id, "--owner-principal")
        statements.append(
            {
                "Sid": "OwnerPackNoDecrypt",
                "Effect": "Allow",
                "Principal": {"AWS": owner},
                "Action": "kms:GenerateDataKey",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {k: v for k, v in context.items() if "version" not in k}
                },
            }
        )
    ident = f"nitro-bundles:{','.join(names)}"
    if bind != "pcr0" or kind != "app":
        bound = "PCR8 (the image signer)" if bind == "pcr8" else "PCR0 (this image)"
        ident += f"; {kind} key; bound to {bound}"
    return {"Version": "2012-10-17", "Id": ident, "Statement": statements}


def _attestation(bind: str, pcr0: str, pcr8: str | None) -> dict[str, str]:
    """The attestation condition: PCR0 (+ PCR8 when signed), or PCR8 alone (§3.1)."""
    if bind == "pcr8":
        if pcr8 is None:
            raise UsageError("--bind pcr8 needs a signed image (it has no PCR8)")
        return {PCR8_KEY: check_pcr(pcr8, "PCR8")}
    if bind != "pcr0":
        raise UsageError(f"--bind {bind!r}: expected pcr0 or pcr8")
    attestation = {IMAGE_SHA384: check_pcr(pcr0, "PCR0")}
    if pcr8 is not None:
        attestation[PCR8_KEY] = check_pcr(pcr8, "PCR8")
    return attestation


def revocation_sid(bundle_name: str, version: str) -> str:
    """A stable, alphanumeric Sid for the revocation of one bundle version."""
    slug = re.sub(r"[^0-9A-Za-z]", "", f"{bundle_name}{version}")[:40]
    digest = hashlib.sha256(f"{bundle_name}\0{version}".encode()).hexdigest()[:12]
    return f"Revoke{slug}{digest}"


def add_revocation(policy: dict[str, Any], bundle_name: str, version: str) -> dict[str, Any]:
    """A copy of `policy` that denies kms:Decrypt for one bundle version's context (idempotent).

    Raises:
        PolicyInputError: `policy` has no Statement list.
    """
    out = copy.deepcopy(policy)
    statements = out.get("Statement")
    if not isinstance(statements, list):
        raise PolicyInputError("key policy: no Statement list")
    sid = revocation_sid(bundle_name, version)
    if any(isinstance(s, dict) and s.get("Sid") == sid for s in statements):
        return out
    statements.append(
        {
            "Sid": sid,
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt", "kms:ReEncryptFrom"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    CONTEXT_PREFIX + "bundle": bundle_name,
                    CONTEXT_PREFIX + "version": version,
                }
            },
        }
    )
    return out


def as_list(  # noqa: D103
    value: Any,
) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def action_matches(  # noqa: D103
    pattern: str, action: str
) -> bool:
    return fnmatch.fnmatchcase(action.lower(), str(pattern).lower())


def decrypting_actions(  # noqa: D103
    stmt: dict[str, Any],
) -> list[str]:
    if "NotAction" in stmt:
        excluded = as_list(stmt["NotAction"])
        return [a for a in DECRYPTING if not any(action_matches(p, a) for p in excluded)]
    actions = as_list(stmt.get("Action"))
    return [a for a in DECRYPTING if any(action_matches(p, a) for p in actions)]


def check_policy(policy: Any) -> list[Finding]:
    """Every finding for a key policy document (see `owner_tools.policy_check`)."""
    from owner_tools.policy_check import check_policy as _check  # noqa: PLC0415 - cycle

    return _check(policy)
