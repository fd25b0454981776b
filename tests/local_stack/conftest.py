# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Fixtures for the local stack: a test NSM PKI, the running stack, boto3 clients, policies."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from local_stack import stack
from local_stack.processes import LOCAL_CREDENTIALS
from package_format.attestation.build import (
    build_ca_certificate,
    build_document,
    build_leaf_certificate,
    serial_from,
)

PCR0_A = bytes.fromhex("a0" * 48)
PCR0_B = bytes.fromhex("b0" * 48)


@dataclass
class FakePki:
    """A P-384 root and intermediate, enough to sign Nitro-shaped documents."""

    root_key: ec.EllipticCurvePrivateKey
    root_der: bytes
    root_pem: bytes
    inter_key: ec.EllipticCurvePrivateKey
    inter: object
    inter_der: bytes

    @classmethod
    def create(cls, name: str = "test") -> FakePki:
        now = datetime.now(UTC)
        root_key = ec.generate_private_key(ec.SECP384R1())
        root = build_ca_certificate(
            common_name=f"{name}-root",
            public_key=root_key.public_key(),
            issuer=None,
            issuer_key=root_key,
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=3650),
            serial=serial_from(os.urandom(16)),
            path_length=None,
        )
        inter_key = ec.generate_private_key(ec.SECP384R1())
        inter = build_ca_certificate(
            common_name=f"{name}-intermediate",
            public_key=inter_key.public_key(),
            issuer=root,
            issuer_key=root_key,
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=30),
            serial=serial_from(os.urandom(16)),
            path_length=0,
        )
        der = serialization.Encoding.DER
        return cls(
            root_key=root_key,
            root_der=root.public_bytes(der),
            root_pem=root.public_bytes(serialization.Encoding.PEM),
            inter_key=inter_key,
            inter=inter,
            inter_der=inter.public_bytes(der),
        )

    def document(
        self,
        pcrs: Mapping[int, bytes],
        public_key: bytes | None,
        at: datetime | None = None,
    ) -> bytes:
        at = at or datetime.now(UTC)
        leaf_key = ec.generate_private_key(ec.SECP384R1())
        leaf = build_leaf_certificate(
            common_name="i-00000000000000000-enc0000000000000000",
            public_key=leaf_key.public_key(),
            issuer=self.inter,
            issuer_key=self.inter_key,
            not_before=at - timedelta(minutes=1),
            not_after=at + timedelta(hours=3),
            serial=serial_from(os.urandom(16)),
        )
        return build_document(
            signing_key=leaf_key,
            module_id="i-00000000000000000-enc0000000000000000",
            timestamp_ms=int(at.timestamp() * 1000),
            pcrs=pcrs,
            certificate=leaf.public_bytes(serialization.Encoding.DER),
            cabundle=[self.root_der, self.inter_der],
            public_key=public_key,
        )


@dataclass
class FakeNsm:
    """An `AttestationSource` for the enclave client: fixed PCRs, documents from `pki`."""

    pki: FakePki
    pcrs: Mapping[int, bytes]
    documents: list[bytes] = field(default_factory=list)
    override_public_key: bytes | None = None

    def attestation(self, *, public_key=None, user_data=None, nonce=None) -> bytes:
        del user_data, nonce
        doc = self.pki.document(self.pcrs, self.override_public_key or public_key)
        self.documents.append(doc)
        return doc


def pcrs_of(pcr0: bytes) -> dict[int, bytes]:
    return {0: pcr0, 1: bytes.fromhex("11" * 48), 2: bytes.fromhex("22" * 48), 8: bytes(48)}


@pytest.fixture(scope="session")
def test_pki() -> FakePki:
    return FakePki.create()


@pytest.fixture(scope="session")
def local_stack_info(tmp_path_factory, test_pki) -> Iterator[stack.StackInfo]:
    """The whole local stack (moto + KMS front processes), up for the session."""
    state = tmp_path_factory.mktemp("nb-state")
    pki_dir = state / stack.PKI_DIR
    pki_dir.mkdir()
    (pki_dir / "root.pem").write_bytes(test_pki.root_pem)
    info, started = stack.up(state)
    assert started
    try:
        yield info
    finally:
        stack.down(state)


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


@pytest.fixture
def root_pem_path(local_stack_info) -> Path:
    return local_stack_info.root_pem_path
