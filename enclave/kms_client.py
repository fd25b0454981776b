# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The enclave's KMS client: attested Decrypt and GenerateRandom, fail closed.

specs/local-kms.md §8. Every request uses a fresh RSA-2048 key pair whose
public half (DER SubjectPublicKeyInfo) goes into a new attestation document
from the NSM; the answer must be a `CiphertextForRecipient` CMS envelope for
exactly that key. An answer that carries `Plaintext`, lacks the envelope, or
holds an envelope for another key is refused with its own error: a KMS (or a
host in the middle) that ignores `Recipient` never gets a key used in plaintext.

On Nitro the endpoint is the parent's vsock-proxy (e.g. vsock-proxy 8000
kms.<region>.amazonaws.com 443 and a TCP->vsock forwarder in the enclave);
locally it is the KMS front. Credentials are handed in by the host at run time.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave.errors import EnclaveError, ExternalError, InputError
from package_format.cms.envelope import open_envelope
from package_format.cms.errors import CmsError, RecipientMismatchError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from enclave.nsm.interface import Nsm

__all__ = [
    "KmsAccessDeniedError",
    "KmsClientConfig",
    "KmsCredentials",
    "KmsRecipientClient",
    "KmsRequestError",
    "KmsResponseError",
    "MissingCiphertextForRecipientError",
    "PlaintextInResponseError",
    "RecipientEnvelopeError",
    "RecipientKeyMismatchError",
    "RecipientKeys",
]

KEY_ENCRYPTION_ALGORITHM = "RSAES_OAEP_SHA_256"
RSA_BITS = 2048
MAX_RANDOM_BYTES = 1024


class KmsRequestError(ExternalError):
    """KMS could not be reached or answered with an error other than access denied."""


class KmsAccessDeniedError(KmsRequestError):
    """KMS refused the request (AccessDeniedException): policy, PCRs or document."""


class KmsResponseError(EnclaveError):
    """KMS answered, but not in a shape the fail-closed client accepts."""


class PlaintextInResponseError(KmsResponseError):
    """The answer to a `Recipient` request carried `Plaintext`: refused, never used."""


class MissingCiphertextForRecipientError(KmsResponseError):
    """The answer to a `Recipient` request has no `CiphertextForRecipient`."""


class RecipientKeyMismatchError(KmsResponseError):
    """The CMS envelope is addressed to another key than this request's."""


class RecipientEnvelopeError(KmsResponseError):
    """The CMS envelope is malformed or does not decrypt."""


@dataclass(frozen=True)
class KmsCredentials:
    """Credentials the host passes to the enclave at run time (never baked into the image)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class KmsClientConfig:
    """Where and how to reach KMS.

    Attributes:
        region: the AWS region (also the SigV4 scope).
        endpoint_url: KMS endpoint; on Nitro the in-enclave end of the vsock proxy,
            locally the KMS front. `None`: boto3's default for the region.
        credentials: from the host, per run.
        timeout_s: connect and read timeout of each call.
        max_attempts: boto3 retry attempts (standard mode).
    """

    region: str
    credentials: KmsCredentials
    endpoint_url: str | None = None
    timeout_s: float = 30.0
    max_attempts: int = 3


class RecipientKeys:
    """Fresh RSA-2048 recipient key pairs, each made ahead of time and handed out once.

    Generating a key pair costs 40-110 ms here, the largest part of a key release. One pair
    is generated in a background thread before it is needed (at construction, and again
    each time one is taken), so a request finds it ready; `take()` removes it, so no pair
    ever serves two requests (specs/local-kms.md §8.1). Pairs live only in this process's
    memory. The thread runs at the lowest CPU priority (Linux: per-thread nice 19), so
    making the next pair never slows the decryption that follows a key release.
    """

    def __init__(self, *, ahead: bool = True) -> None:
        """Start generating the first pair now (in the background when `ahead`)."""
        self._ahead = ahead
        self._lock = threading.Lock()
        self._next: threading.Thread | None = None
        self._ready: list[rsa.RSAPrivateKey] = []
        if ahead:
            self._start()

    def _start(self) -> None:
        def make() -> None:
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            key = _new_key()
            with self._lock:
                self._ready.append(key)

        self._next = threading.Thread(target=make, name="recipient-key", daemon=True)
        self._next.start()

    def take(self) -> rsa.RSAPrivateKey:
        """A key pair no request has used; the next one starts generating meanwhile."""
        if not self._ahead:
            return _new_key()
        pending = self._next
        if pending is not None:
            pending.join()
        with self._lock:
            key = self._ready.pop() if self._ready else None
        self._start()
        return key if key is not None else _new_key()


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


class KmsRecipientClient:
    """Attested KMS calls from inside the enclave."""

    def __init__(self, config: KmsClientConfig, nsm: Nsm, *, keys_ahead: bool = True) -> None:
        """Build the boto3 client; with `keys_ahead`, recipient keys are made in advance.

        Raises:
            botocore.exceptions.BotoCoreError: The client cannot be configured.
        """
        import boto3  # noqa: PLC0415 - heavy; only enclaves that talk to KMS load it
        from botocore.config import Config  # noqa: PLC0415

        self._nsm = nsm
        self._keys = RecipientKeys(ahead=keys_ahead)
        self._client: Any = boto3.session.Session().client(
            "kms",
            region_name=config.region,
            endpoint_url=config.endpoint_url,
            aws_access_key_id=config.credentials.access_key_id,
            aws_secret_access_key=config.credentials.secret_access_key,
            aws_session_token=config.credentials.session_token,
            config=Config(
                connect_timeout=config.timeout_s,
                read_timeout=config.timeout_s,
                retries={"max_attempts": config.max_attempts, "mode": "standard"},
            ),
        )

    def decrypt(
        self,
        ciphertext_blob: bytes,
        encryption_context: Mapping[str, str],
        key_id: str | None = None,
    ) -> bytes:
        """Unwrap a data key: KMS Decrypt with `Recipient`, then open the CMS envelope.

        Raises:
            KmsAccessDeniedError: KMS denied the request.
            KmsRequestError: KMS unreachable or another KMS error.
            PlaintextInResponseError: the answer carried `Plaintext`.
            MissingCiphertextForRecipientError: the answer lacks the envelope.
            RecipientKeyMismatchError: the envelope is for another key.
            RecipientEnvelopeError: the envelope is malformed or does not decrypt.
        """
        params: dict[str, Any] = {
            "CiphertextBlob": ciphertext_blob,
            "EncryptionContext": dict(encryption_context),
        }
        if key_id is not None:
            params["KeyId"] = key_id
        return self._attested_call("Decrypt", params)

    def generate_random(self, number_of_bytes: int) -> bytes:
        """Random bytes from KMS, delivered through a CMS envelope for this enclave.

        Raises:
            InputError: `number_of_bytes` outside 1..1024.
            KmsAccessDeniedError: KMS denied the request.
            KmsRequestError: KMS unreachable or another KMS error.
            KmsResponseError: the answer is not an envelope for this request's key.
        """
        if not 1 <= number_of_bytes <= MAX_RANDOM_BYTES:
            raise InputError(f"generate_random: number of bytes must be 1..{MAX_RANDOM_BYTES}")
        random = self._attested_call("GenerateRandom", {"NumberOfBytes": number_of_bytes})
        if len(random) != number_of_bytes:
            raise RecipientEnvelopeError(
                f"kms GenerateRandom: got {len(random)} bytes, asked for {number_of_bytes}"
            )
        return random

    def _attested_call(self, operation: str, params: dict[str, Any]) -> bytes:
        # A fresh key pair per request: a document (or envelope) captured from one
        # request is useless for any other (specs/local-kms.md §8.1). It was generated
        # ahead of time, and is used for this request only.
        private_key = self._keys.take()
        spki = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        document = self._nsm.attestation(public_key=spki)
        params["Recipient"] = {
            "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM,
            "AttestationDocument": document,
        }
        answer = self._send(operation, params)
        return open_recipient_answer(operation, answer, private_key)

    def _send(self, operation: str, params: dict[str, Any]) -> Mapping[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        method = {"Decrypt": self._client.decrypt, "GenerateRandom": self._client.generate_random}
        try:
            answer: Mapping[str, Any] = method[operation](**params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
            if code == "AccessDeniedException":
                raise KmsAccessDeniedError(f"kms {operation}: access denied: {message}") from exc
            raise KmsRequestError(f"kms {operation}: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise KmsRequestError(f"kms {operation}: {exc}") from exc
        return answer


def open_recipient_answer(
    operation: str, answer: Mapping[str, Any], private_key: rsa.RSAPrivateKey
) -> bytes:
    """Check a KMS answer to a `Recipient` request and open its envelope (fail closed).

    Raises:
        PlaintextInResponseError: the answer carried `Plaintext`.
        MissingCiphertextForRecipientError: the answer lacks the envelope.
        RecipientKeyMismatchError: the envelope is for another key.
        RecipientEnvelopeError: the envelope is malformed or does not decrypt.
    """
    # reference/attestation-kms.md §5: moto ignores Recipient and returns Plaintext.
    if answer.get("Plaintext") is not None:
        raise PlaintextInResponseError(
            f"kms {operation}: answer to an attested request carries Plaintext; refused"
        )
    envelope = answer.get("CiphertextForRecipient")
    if not envelope:
        raise MissingCiphertextForRecipientError(
            f"kms {operation}: answer has no CiphertextForRecipient"
        )
    if isinstance(envelope, str):  # raw HTTP users; boto3 already decodes blobs
        envelope = base64.b64decode(envelope)
    try:
        return open_envelope(bytes(envelope), private_key)
    except RecipientMismatchError as exc:
        raise RecipientKeyMismatchError(
            f"kms {operation}: CiphertextForRecipient is addressed to another key"
        ) from exc
    except CmsError as exc:
        raise RecipientEnvelopeError(f"kms {operation}: CiphertextForRecipient: {exc}") from exc
