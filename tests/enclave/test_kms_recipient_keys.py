# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Recipient key pairs made ahead of time (enclave.kms_client.RecipientKeys): never reused."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from enclave.kms_client import RecipientKeys


def _public(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_recipient_key_pair_never_serves_two_requests() -> None:
    keys = RecipientKeys()
    taken = [keys.take() for _ in range(3)]
    assert len({_public(k) for k in taken}) == 3
    assert all(k.key_size == 2048 for k in taken)


def test_recipient_keys_without_ahead_are_made_on_demand() -> None:
    keys = RecipientKeys(ahead=False)
    assert _public(keys.take()) != _public(keys.take())
