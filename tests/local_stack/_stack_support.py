# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Helpers for the local-stack tests: tiny images A and B, a recording NSM, policies, clients."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from enclave.nsm.simulator import SimulatedNsm
from local_stack import stack
from local_stack.processes import LOCAL_CREDENTIALS
from package_format.eif.layout import SectionType
from package_format.eif.pcr import Measurements
from package_format.eif.writer import SectionSource, write_eif


def tiny_eif_measurements(app: bytes) -> Measurements:
    """Write a tiny EIF (kernel, cmdline, bootstrap and app ramdisks) and return its PCRs."""
    sections = [
        SectionSource.from_bytes(SectionType.KERNEL, b"tiny kernel"),
        SectionSource.from_bytes(SectionType.CMDLINE, b"console=ttyS0"),
        SectionSource.from_bytes(SectionType.RAMDISK, b"bootstrap ramdisk"),
        SectionSource.from_bytes(SectionType.RAMDISK, app),
    ]
    return write_eif(io.BytesIO(), sections).measurements


IMAGE_A = tiny_eif_measurements(b"application A")
IMAGE_B = tiny_eif_measurements(b"application B")
PCR0_A = IMAGE_A.pcr0
PCR0_B = IMAGE_B.pcr0


@dataclass
class RecordingNsm:
    """Wraps an `Nsm`: records each document; can swap in another public key (an attacker's)."""

    inner: SimulatedNsm
    override_public_key: bytes | None = None
    documents: list[bytes] = field(default_factory=list)

    def attestation(self, public_key=None, user_data=None, nonce=None) -> bytes:
        key = self.override_public_key or public_key
        doc = self.inner.attestation(public_key=key, user_data=user_data, nonce=nonce)
        self.documents.append(doc)
        return doc


def kms_client(url: str, credentials: Mapping[str, str] = LOCAL_CREDENTIALS):
    import boto3

    return boto3.session.Session().client(
        "kms",
        region_name=credentials["AWS_DEFAULT_REGION"],
        endpoint_url=url,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )


def enclave_policy(pcr0: bytes, context: Mapping[str, str]) -> str:
    """The shape owner-tools `policy` writes: admin by NotAction, owner packs, enclave decrypts."""
    conditions: dict[str, dict[str, str]] = {
        "StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": pcr0.hex()},
    }
    if context:
        conditions["StringEquals"] = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "KeyAdministration",
                    "Effect": "Allow",
                    "Principal": {"AWS": stack.OWNER_PRINCIPAL},
                    "NotAction": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateRandom"],
                    "Resource": "*",
                },
                {
                    "Sid": "OwnerPacks",
                    "Effect": "Allow",
                    "Principal": {"AWS": stack.OWNER_PRINCIPAL},
                    "Action": "kms:GenerateDataKey",
                    "Resource": "*",
                },
                {
                    "Sid": "EnclaveDecrypts",
                    "Effect": "Allow",
                    "Principal": {"AWS": stack.ENCLAVE_PRINCIPAL},
                    "Action": "kms:Decrypt",
                    "Resource": "*",
                    "Condition": conditions,
                },
            ],
        }
    )
