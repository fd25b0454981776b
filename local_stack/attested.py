# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The KMS front's view of a `Recipient`: verify its document, wrap a secret to its key.

specs/local-kms.md §4. A thin adapter over `package_format.attestation` (the
same verifier that checks AWS documents, here pinned to the local root) and
`package_format.cms` (the KMS-shaped envelope builder), plus the checks KMS
adds on top: the key-encryption algorithm, an RSA-2048 DER SPKI public key,
and freshness against the front's clock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local_stack.errors import InputError
from package_format.attestation.verify import verify_attestation
from package_format.cms.build import build_enveloped_data
from package_format.errors import PackageFormatError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "KEY_ENCRYPTION_ALGORITHM",
    "AttestedRecipient",
    "RecipientRejectedError",
    "check_recipient",
    "wrap_for_recipient",
]

KEY_ENCRYPTION_ALGORITHM = "RSAES_OAEP_SHA_256"
RSA_BITS = 2048


class RecipientRejectedError(InputError):
    """The `Recipient` of a request is not acceptable; the front answers AccessDenied."""


@dataclass(frozen=True)
class AttestedRecipient:
    """A verified `Recipient`: the enclave's PCRs and the key to wrap answers to.

    Attributes:
        pcrs: PCR index to value, from the verified document.
        public_key_der: the document's RSA-2048 public key (DER SubjectPublicKeyInfo).
        timestamp: when the NSM signed the document.
        digest: SHA-256 of the document bytes (the replay cache key).
    """

    pcrs: Mapping[int, bytes]
    public_key_der: bytes
    timestamp: datetime
    digest: bytes


def check_recipient(
    *,
    algorithm: object,
    document: bytes,
    root_pem: bytes,
    now: datetime,
    max_age: timedelta,
    max_skew: timedelta,
) -> AttestedRecipient:
    """Verify a `Recipient` the way KMS does, at the front's current time.

    specs/local-kms.md §4, steps 1-4 in order (step 5, replay, is the front's cache);
    vectors: tests/vectors/local-kms/.

    Raises:
        RecipientRejectedError: wrong algorithm, a document that does not verify,
            a missing or non-RSA-2048 public key, or a document outside the window;
            `field` names the part of the `Recipient` at fault.
    """
    # reference/attestation-kms.md §3: RSAES_OAEP_SHA_256 is the only value.
    if algorithm != KEY_ENCRYPTION_ALGORITHM:
        raise RecipientRejectedError(
            f"recipient: key encryption algorithm must be {KEY_ENCRYPTION_ALGORITHM}",
            field="algorithm",
        )
    try:
        doc = verify_attestation(document, root=root_pem, at=now)
    except PackageFormatError as exc:
        raise RecipientRejectedError(
            f"recipient: attestation document rejected: {exc}", field="document"
        ) from exc
    if doc.timestamp < now - max_age:
        raise RecipientRejectedError(
            "recipient: attestation document is too old (replay window)", field="timestamp"
        )
    if doc.timestamp > now + max_skew:
        raise RecipientRejectedError(
            "recipient: attestation document is from the future", field="timestamp"
        )
    if not doc.public_key:
        raise RecipientRejectedError(
            "recipient: attestation document has no public key", field="public_key"
        )
    try:
        key = serialization.load_der_public_key(doc.public_key)
    except ValueError as exc:
        raise RecipientRejectedError(
            "recipient: public key is not DER SubjectPublicKeyInfo", field="public_key"
        ) from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != RSA_BITS:
        raise RecipientRejectedError("recipient: public key must be RSA-2048", field="public_key")
    sha = hashes.Hash(hashes.SHA256())
    sha.update(document)
    return AttestedRecipient(
        pcrs=dict(doc.pcrs),
        public_key_der=doc.public_key,
        timestamp=doc.timestamp,
        digest=sha.finalize(),
    )


def wrap_for_recipient(recipient: AttestedRecipient, secret: bytes) -> bytes:
    """Build the KMS-shaped CMS envelope (`CiphertextForRecipient`) of `secret`."""
    return build_enveloped_data(
        secret,
        recipient_public_key_der=recipient.public_key_der,
        content_key=os.urandom(32),
        iv=os.urandom(16),
    )
