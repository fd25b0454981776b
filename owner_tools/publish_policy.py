# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Publish and revoke with `--apply-policy`: the KMS key policy (specs/distribution.md §6.3).

`publish_with_policy` and `revoke_with_policy` are the whole workflows (upload, sign the
index, then put the policy); the CLI only parses flags and prints their outcome.

publish: the policy that lets the published image (its PCRs) Decrypt the bundle's data key,
keeping every revocation (from the index and from the policy in force). revoke: the policy
in force plus a Deny of Decrypt for the revoked version's encryption context, so a copy of
the old bundle no longer opens even in an enclave whose PCRs match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore import exceptions as bx
from botocore.config import Config

from owner_tools import publish as pub
from owner_tools import s3
from owner_tools.errors import ExternalError, InputError, UsageError
from package_format import key_policy

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_s3.client import S3Client

    from package_format.index import Index, S3Location

POLICY_NAME = "default"
REVOCATION_SID_PREFIX = key_policy.REVOCATION_SID_PREFIX


class KeyPolicyError(ExternalError):
    """KMS refused or failed GetKeyPolicy / PutKeyPolicy."""


class NoKmsKeyError(InputError):
    """The index entry records no KMS key for this version."""


@dataclass(frozen=True)
class Principals:
    """Who the image policy names (specs/key-policy.md)."""

    account_id: str
    enclave_principal: str
    admin_principals: list[str]
    owner_principal: str | None = None


def kms_client(endpoint_url: str | None) -> KMSClient:
    """Return a KMS client; `endpoint_url` (or AWS_ENDPOINT_URL_KMS) points at a local stack."""
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10)
    return boto3.session.Session().client("kms", endpoint_url=endpoint_url, config=config)


def _call(where: str, func: Any, **kwargs: Any) -> Any:
    try:
        return func(**kwargs)
    except (bx.NoCredentialsError, bx.PartialCredentialsError) as e:
        raise KeyPolicyError(f"{where}: no AWS credentials found") from e
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError) as e:
        raise KeyPolicyError(f"{where}: cannot reach the KMS endpoint ({e})") from e
    except bx.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        message = e.response.get("Error", {}).get("Message", "")
        raise KeyPolicyError(f"{where}: {code} {' '.join(str(message).split())}".strip()) from e
    except bx.BotoCoreError as e:
        raise KeyPolicyError(f"{where}: {e}") from e


def get_policy(client: KMSClient, key_id: str) -> dict[str, Any]:
    """Return the key policy in force on `key_id`.

    Raises:
        KeyPolicyError: KMS failed or the policy is not a JSON object.
    """
    where = f"kms key {key_id}"
    answer = _call(where, client.get_key_policy, KeyId=key_id, PolicyName=POLICY_NAME)
    try:
        policy = json.loads(answer["Policy"])
    except (KeyError, TypeError, ValueError) as e:
        raise KeyPolicyError(f"{where}: key policy is not JSON") from e
    if not isinstance(policy, dict):
        raise KeyPolicyError(f"{where}: key policy is not a JSON object")
    return policy


def put_policy(client: KMSClient, key_id: str, policy: dict[str, Any]) -> None:
    """Put `policy` on `key_id`.

    Raises:
        KeyPolicyError: KMS refused or failed.
    """
    _call(
        f"kms key {key_id}",
        client.put_key_policy,
        KeyId=key_id,
        PolicyName=POLICY_NAME,
        Policy=json.dumps(policy, indent=1, sort_keys=True),
    )


def _key_of(index: Index, version: str) -> str:
    key_id = index.entry(version).kms_key_id
    if not key_id:
        raise NoKmsKeyError(f"{index.name}@{version}: the index records no kms key")
    return key_id


def apply_revocation(client: KMSClient, index: Index, version: str) -> str:
    """Deny Decrypt for NAME@VERSION's encryption context in its key's policy (idempotent).

    Returns the key id.

    Raises:
        NoKmsKeyError: the index records no key for `version`.
        KeyPolicyError: KMS failed.
        package_format.key_policy.PolicyInputError: the policy in force has no Statement list.
    """
    key_id = _key_of(index, version)
    policy = get_policy(client, key_id)
    updated = key_policy.add_revocation(policy, index.name, version)
    if updated != policy:
        put_policy(client, key_id, updated)
    return key_id


def apply_image_policy(
    client: KMSClient, index: Index, version: str, pcrs: Path, principals: Principals
) -> str:
    """Put the policy admitting the image of `pcrs` on NAME@VERSION's key; return the key id.

    Revocations survive: every revoked version of the index and every `Revoke*` statement
    of the policy in force are carried into the new policy.

    Raises:
        NoKmsKeyError: the index records no key for `version`.
        InputError: `pcrs` is not a measurements JSON with PCR0.
        KeyPolicyError: KMS failed.
        package_format.key_policy.PolicyInputError: a principal or PCR is invalid.
    """
    key_id = _key_of(index, version)
    pcr0, pcr8 = read_pcrs(pcrs)
    policy = key_policy.build_policy(
        key_policy.PolicyRequest(
            account_id=principals.account_id,
            pcr0=pcr0,
            pcr8=pcr8,
            bundle_names=(index.name,),
            enclave_principal=principals.enclave_principal,
            admin_principals=tuple(principals.admin_principals),
            owner_principal=principals.owner_principal,
        )
    )
    old = get_policy(client, key_id)
    kept = [
        s
        for s in old.get("Statement", [])
        if isinstance(s, dict) and str(s.get("Sid", "")).startswith(REVOCATION_SID_PREFIX)
    ]
    policy["Statement"].extend(s for s in kept if s not in policy["Statement"])
    for ver, entry in sorted(index.versions.items()):
        if entry.revoked is not None:
            policy = key_policy.add_revocation(policy, index.name, ver)
    put_policy(client, key_id, policy)
    return key_id


def read_pcrs(path: Path) -> tuple[str, str | None]:
    """Return (PCR0, PCR8 or None) from a `.pcrs.json` (build-eif / describe-eif shape).

    Raises:
        InputError: not a measurements JSON with PCR0.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        values = doc.get("Measurements", doc)
        pcr8 = values.get("PCR8")
        return str(values["PCR0"]), None if pcr8 is None else str(pcr8)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(
            f"{path}: not a measurements json with PCR0",
            field="pcrs",
            hint="build-eif writes IMAGE.eif.pcrs.json; describe-eif prints one",
        ) from e


def default_pcrs(image: Path | None, pcrs: Path | None) -> Path | None:
    """`pcrs`, or the `IMAGE.pcrs.json` build-eif writes beside `image`."""
    if image is None or pcrs is not None:
        return pcrs
    return image.with_name(image.name + ".pcrs.json")


@dataclass(frozen=True)
class PolicyTarget:
    """Where and how to put the key policy: KMS, and who the policy names."""

    kms: KMSClient
    principals: Principals


@dataclass(frozen=True)
class PublishOutcome:
    """What `publish_with_policy` did: the publish result and the key whose policy changed."""

    result: pub.PublishResult
    key_id: str | None


def publish_with_policy(
    client: S3Client,
    location: S3Location,
    bundle: Path,
    *,
    private_key: bytes,
    now: datetime,
    image: Path | None = None,
    pcrs: Path | None = None,
    lifetime: timedelta = pub.DEFAULT_LIFETIME,
    part_size: int = s3.DEFAULT_PART_SIZE,
    progress: Callable[[int], None] | None = None,
    policy: PolicyTarget | None = None,
) -> PublishOutcome:
    """Publish `bundle` (and `image`), then, with `policy`, admit the image in the key policy.

    `pcrs` defaults to the file build-eif writes beside `image` (specs/distribution.md §7).

    Raises:
        UsageError: `policy` without `image`.
        OwnerToolsError: as `publish.publish` and `apply_image_policy`.
    """
    if policy is not None and image is None:
        raise UsageError(
            "applying the key policy needs the enclave image",
            field="image",
            hint="the policy binds the image's PCRs: publish it with its image",
        )
    pcrs = default_pcrs(image, pcrs)
    result = pub.publish(
        client,
        location,
        bundle,
        private_key=private_key,
        now=now,
        image=image,
        pcrs=pcrs,
        lifetime=lifetime,
        part_size=part_size,
        progress=progress,
    )
    key_id = None
    if policy is not None and pcrs is not None:
        key_id = apply_image_policy(
            policy.kms, result.index, result.version, pcrs, policy.principals
        )
    return PublishOutcome(result, key_id)


def revoke_with_policy(
    client: S3Client,
    location: S3Location,
    name: str,
    version: str,
    *,
    private_key: bytes,
    now: datetime,
    reason: str,
    lifetime: timedelta = pub.DEFAULT_LIFETIME,
    kms: KMSClient | None = None,
) -> tuple[pub.RevokeResult, str | None]:
    """Revoke NAME@VERSION in the signed index, then, with `kms`, deny it in the key policy.

    Returns the revoke result and the key id whose policy now denies it (None without `kms`).
    """
    result = pub.revoke(
        client,
        location,
        name,
        version,
        private_key=private_key,
        now=now,
        reason=reason,
        lifetime=lifetime,
    )
    key_id = None if kms is None else apply_revocation(kms, result.index, version)
    return result, key_id
