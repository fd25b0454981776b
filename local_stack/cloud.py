# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What an owner does once in an AWS account, done on the local stack (specs/local-kms.md §9.1).

A KMS key for the bundles and an S3 bucket for publishing: on AWS these come from the console
or the AWS CLI; here `local-stack create-key` and `create-bucket` make them on moto's server,
over HTTP with boto3, as the owner's local identity.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from local_stack.errors import ExternalError, InputError
from local_stack.stack import ENCLAVE_CREDENTIALS, StackInfo

__all__ = ["IDENTITIES", "create_bucket", "create_key", "identity_env"]

#: The local identities a shell can take (specs/local-kms.md §5.2): the owner (default) and
#: the enclave host, whose role the key policy admits only with the image's attestation.
IDENTITIES = ("owner", "host")
# S3's bucket naming rules, the common subset (3-63 chars, lowercase, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def identity_env(info: StackInfo, identity: str) -> dict[str, str]:
    """Environment for `identity`'s shell: endpoints, region and that identity's keys.

    Raises:
        InputError: `identity` is not one of IDENTITIES.
    """
    if identity not in IDENTITIES:
        raise InputError(f"unknown identity {identity!r}: choose one of {', '.join(IDENTITIES)}")
    env = info.env()
    if identity == "host":
        env.update(ENCLAVE_CREDENTIALS)
    return env


def _client(info: StackInfo, service: Literal["kms", "s3"]) -> Any:
    import boto3  # noqa: PLC0415 - heavy, needed only here

    env = info.env()
    url = env["AWS_ENDPOINT_URL_KMS"] if service == "kms" else env["AWS_ENDPOINT_URL_S3"]
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=info.region,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def create_key(info: StackInfo, description: str = "") -> str:
    """Create a symmetric KMS key as the owner; return its id.

    Its default key policy lets the owner's account use it; `owner-tools publish
    --apply-policy` later replaces that with one bound to the image.

    Raises:
        ExternalError: The local KMS did not answer or refused.
    """
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        meta = _client(info, "kms").create_key(Description=description)["KeyMetadata"]
    except (BotoCoreError, ClientError) as exc:
        raise ExternalError(f"local KMS: cannot create a key: {exc}") from exc
    return str(meta["KeyId"])


def create_bucket(info: StackInfo, name: str) -> bool:
    """Create S3 bucket `name` as the owner; False when the owner already has it.

    Raises:
        InputError: `name` is not a valid bucket name.
        ExternalError: The local S3 did not answer or refused.
    """
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    if not _BUCKET.fullmatch(name) or ".." in name:
        raise InputError(f"{name!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-'; no '..')")
    s3 = _client(info, "s3")
    try:
        # us-east-1 answers 200 to creating a bucket one already owns: ask first.
        if name in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            return False
        s3.create_bucket(Bucket=name)
    except ClientError as exc:
        raise ExternalError(f"local S3: cannot create bucket {name}: {exc}") from exc
    except BotoCoreError as exc:
        raise ExternalError(f"local S3: cannot create bucket {name}: {exc}") from exc
    return True
