# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The key policy the owner writes for an enclave image, and its revocations.

specs/key-policy.md §3: only an attested enclave (PCR0, and PCR8 when signed) may decrypt a
bundle's data key, for that bundle's encryption context; administrators get everything except
key release; an optional owner principal may GenerateDataKey (to pack) but never Decrypt.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from package_format.key_policy.conditions import (
    BUNDLE_CONTEXT,
    ENCLAVE_ACTIONS,
    IMAGE_SHA384,
    KEY_RELEASE_ACTIONS,
    KIND_CONTEXT,
    PCR8_KEY,
    REVOKED_ACTIONS,
    VERSION_CONTEXT,
)
from package_format.key_policy.errors import PolicyInputError

__all__ = [
    "REVOCATION_SID_PREFIX",
    "PolicyRequest",
    "add_revocation",
    "build_key_policy",
    "build_policy",
    "check_pcr",
    "revocation_sid",
]

_PCR_RE = re.compile(r"^[0-9a-fA-F]{96}$")
_ARN_RE = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::(\d{12}):.+$")
REVOCATION_SID_PREFIX = "Revoke"


def check_pcr(value: str, name: str) -> str:
    """Validate a PCR as 96 hex digits; return it in lowercase (specs/key-policy.md §1).

    Raises:
        PolicyInputError: wrong length, non-hex, or all zero (a debug-mode enclave).
    """
    field = name.lower()
    if not _PCR_RE.match(value):
        raise PolicyInputError(
            f"{name}: expected 96 hex digits, got {value[:20]!r}",
            field=field,
            hint="give the PCR as build-eif or describe-eif prints it",
        )
    if set(value) == {"0"}:
        raise PolicyInputError(
            f"{name}: all-zero pcr (debug-mode enclaves) must not be trusted",
            field=field,
            hint="take the PCRs of a production image, not of a debug-mode run",
        )
    return value.lower()


def _check_principal(arn: str, account_id: str, field: str) -> str:
    m = _ARN_RE.match(arn)
    if m is None:
        raise PolicyInputError(
            f"{arn!r}: not an iam principal arn", field=field, hint="arn:aws:iam::ACCOUNT:role/NAME"
        )
    if m.group(2) != account_id:
        raise PolicyInputError(
            f"{arn!r}: not in account {account_id}",
            field=field,
            hint="every principal must be in the key's account",
        )
    return arn


@dataclass(frozen=True)
class PolicyRequest:
    """Everything a key policy is built from (specs/key-policy.md §3).

    `bundle_names` lists one or several bundles sharing one key; `bundle_version`
    pins one version and needs exactly one name.
    """

    account_id: str
    pcr0: str
    bundle_names: tuple[str, ...]
    enclave_principal: str
    admin_principals: tuple[str, ...]
    pcr8: str | None = None
    bundle_version: str | None = None
    owner_principal: str | None = None
    bind: str = "pcr0"
    kind: str = "app"


def _validated_names(request: PolicyRequest) -> list[str]:
    if not re.fullmatch(r"\d{12}", request.account_id):
        raise PolicyInputError(
            f"{request.account_id!r}: expected 12 digits",
            field="account_id",
            hint="an AWS account id",
        )
    if not request.admin_principals:
        raise PolicyInputError(
            "at least one admin principal is required",
            field="admin_principals",
            hint="without an admin nobody could ever change the key policy",
        )
    names = list(dict.fromkeys(request.bundle_names))
    if not names or not all(names):
        raise PolicyInputError("bundle name must not be empty", field="bundle_names")
    if len(names) > 1 and request.bundle_version is not None:
        raise PolicyInputError(
            "a bundle version needs exactly one bundle name", field="bundle_version"
        )
    return names


def _enclave_statement(request: PolicyRequest, bundle: str | list[str]) -> dict[str, Any]:
    enclave = _check_principal(request.enclave_principal, request.account_id, "enclave_principal")
    attestation = _attestation(request)
    context = _context(request, bundle)
    if request.bundle_version is not None:
        context[VERSION_CONTEXT] = request.bundle_version
    return {
        "Sid": "AttestedEnclaveOnly",
        "Effect": "Allow",
        "Principal": {"AWS": enclave},
        "Action": list(ENCLAVE_ACTIONS),
        "Resource": "*",
        "Condition": {"StringEqualsIgnoreCase": attestation, "StringEquals": context},
    }


def _attestation(request: PolicyRequest) -> dict[str, str]:
    """PCR0 (+ PCR8 when signed), or PCR8 alone: the image signer (key-policy.md §3.1).

    `bind` `pcr8` lets a data provider keep one policy across the owner's image releases.
    """
    if request.bind == "pcr8":
        if request.pcr8 is None:
            raise PolicyInputError(
                "binding to PCR8 needs a signed image (it has no PCR8)", field="bind"
            )
        return {PCR8_KEY: check_pcr(request.pcr8, "PCR8")}
    if request.bind != "pcr0":
        raise PolicyInputError(f"bind {request.bind!r}: expected pcr0 or pcr8", field="bind")
    attestation = {IMAGE_SHA384: check_pcr(request.pcr0, "PCR0")}
    if request.pcr8 is not None:
        attestation[PCR8_KEY] = check_pcr(request.pcr8, "PCR8")
    return attestation


def _context(request: PolicyRequest, bundle: str | list[str]) -> dict[str, str | list[str]]:
    # A data key is also bound to its kind (bundle-format.md §4.3): no app context opens it.
    context: dict[str, str | list[str]] = {BUNDLE_CONTEXT: bundle}
    if request.kind == "data":
        context[KIND_CONTEXT] = "data"
    return context


def build_policy(request: PolicyRequest) -> dict[str, Any]:
    """The key policy for `request` (specs/key-policy.md §3).

    Raises:
        PolicyInputError: a principal is not an ARN of the account, no admin, a bad
            account id or name, or a PCR malformed or all zero; `field` says which.
    """
    names = _validated_names(request)
    bundle: str | list[str] = names[0] if len(names) == 1 else names
    admins = [
        _check_principal(a, request.account_id, "admin_principals")
        for a in request.admin_principals
    ]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "KeyAdministrationWithoutKeyRelease",
            "Effect": "Allow",
            "Principal": {"AWS": admins if len(admins) > 1 else admins[0]},
            "NotAction": list(KEY_RELEASE_ACTIONS),
            "Resource": "*",
        },
        _enclave_statement(request, bundle),
    ]
    if request.owner_principal is not None:
        owner = _check_principal(request.owner_principal, request.account_id, "owner_principal")
        statements.append(
            {
                "Sid": "OwnerPackNoDecrypt",
                "Effect": "Allow",
                "Principal": {"AWS": owner},
                "Action": "kms:GenerateDataKey",
                "Resource": "*",
                "Condition": {"StringEquals": _context(request, bundle)},
            }
        )
    ident = f"nitro-bundles:{','.join(names)}"
    if request.bind != "pcr0" or request.kind != "app":
        bound = "PCR8 (the image signer)" if request.bind == "pcr8" else "PCR0 (this image)"
        ident += f"; {request.kind} key; bound to {bound}"
    return {"Version": "2012-10-17", "Id": ident, "Statement": statements}


def build_key_policy(
    *,
    account_id: str,
    pcr0: str,
    bundle_name: str | Sequence[str],
    enclave_principal: str,
    admin_principals: Sequence[str],
    pcr8: str | None = None,
    bundle_version: str | None = None,
    owner_principal: str | None = None,
    bind: str = "pcr0",
    kind: str = "app",
) -> dict[str, Any]:
    """`build_policy` with keyword arguments; `bundle_name` is one name or several.

    Raises:
        PolicyInputError: as `build_policy`.
    """
    names = (bundle_name,) if isinstance(bundle_name, str) else tuple(bundle_name)
    return build_policy(
        PolicyRequest(
            account_id=account_id,
            pcr0=pcr0,
            bundle_names=names,
            enclave_principal=enclave_principal,
            admin_principals=tuple(admin_principals),
            pcr8=pcr8,
            bundle_version=bundle_version,
            owner_principal=owner_principal,
            bind=bind,
            kind=kind,
        )
    )


def revocation_sid(bundle_name: str, version: str) -> str:
    """A stable, alphanumeric Sid revoking one bundle version (specs/key-policy.md §3)."""
    slug = re.sub(r"[^0-9A-Za-z]", "", f"{bundle_name}{version}")[:40]
    digest = hashlib.sha256(f"{bundle_name}\0{version}".encode()).hexdigest()[:12]
    return f"{REVOCATION_SID_PREFIX}{slug}{digest}"


def add_revocation(policy: dict[str, Any], bundle_name: str, version: str) -> dict[str, Any]:
    """A copy of `policy` that denies Decrypt for one bundle version's context (idempotent).

    Raises:
        PolicyInputError: `policy` has no Statement list.
    """
    out = copy.deepcopy(policy)
    statements = out.get("Statement")
    if not isinstance(statements, list):
        raise PolicyInputError("key policy: no Statement list", field="policy")
    sid = revocation_sid(bundle_name, version)
    if any(isinstance(s, dict) and s.get("Sid") == sid for s in statements):
        return out
    statements.append(
        {
            "Sid": sid,
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": list(REVOKED_ACTIONS),
            "Resource": "*",
            "Condition": {"StringEquals": {BUNDLE_CONTEXT: bundle_name, VERSION_CONTEXT: version}},
        }
    )
    return out
