# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`KeyService` over AWS KMS with boto3 (standard credential chain, any endpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import boto3
import botocore.config
import botocore.exceptions

from owner_tools.kms.interface import (
    KmsAccessDeniedError,
    KmsConfigError,
    KmsCredentialsError,
    KmsError,
    KmsInvalidCiphertextError,
    KmsKeyNotFoundError,
    KmsUnreachableError,
)

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

DATA_KEY_SIZE = 32
_NOT_FOUND = {"NotFoundException"}
_DENIED = {
    "AccessDeniedException",
    "DisabledException",
    "KMSInvalidStateException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
}
_BAD_CIPHERTEXT = {"InvalidCiphertextException", "IncorrectKeyException"}


class AwsKms:
    """AWS KMS (or a compatible local endpoint such as moto's server)."""

    def __init__(self, endpoint_url: str | None = None, region: str | None = None) -> None:
        self.endpoint_url = endpoint_url or None
        try:
            self._client: KMSClient = boto3.session.Session().client(
                "kms",
                endpoint_url=self.endpoint_url,
                region_name=region or None,
                config=botocore.config.Config(
                    connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}
                ),
            )
        except botocore.exceptions.NoRegionError as exc:
            raise KmsConfigError(
                "kms: no region configured", field="region", hint="kms-region"
            ) from exc
        except ValueError as exc:
            raise KmsConfigError(f"kms: invalid endpoint url {endpoint_url!r}") from exc

    def generate_data_key(self, key_id: str, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        """Call GenerateDataKey(AES_256) with `context`; return (plaintext, ciphertext blob).

        Raises:
            KmsError: One of its subclasses, with a one-line message.
        """
        try:
            reply = self._client.generate_data_key(
                KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(context)
            )
        except Exception as exc:
            raise self._translate(exc, key_id) from exc
        plaintext, blob = reply["Plaintext"], reply["CiphertextBlob"]
        if len(plaintext) != DATA_KEY_SIZE or not blob:
            raise KmsError(f"kms: generate-data-key for {key_id} returned a malformed key")
        return plaintext, blob

    def decrypt(self, ciphertext_blob: bytes, key_id: str, context: Mapping[str, str]) -> bytes:
        """Call Decrypt pinned to `key_id` with `context`; return the 32-byte data key.

        Raises:
            KmsError: One of its subclasses, with a one-line message.
        """
        try:
            reply = self._client.decrypt(
                CiphertextBlob=ciphertext_blob, KeyId=key_id, EncryptionContext=dict(context)
            )
        except Exception as exc:
            raise self._translate(exc, key_id) from exc
        plaintext = reply.get("Plaintext", b"")
        if len(plaintext) != DATA_KEY_SIZE:
            raise KmsError(f"kms: decrypt under {key_id} did not return a 32-byte key")
        return plaintext

    def _translate(self, exc: Exception, key_id: str) -> KmsError:  # noqa: PLR0911 (one table)
        where = self.endpoint_url or "aws kms"
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return KmsCredentialsError("kms: no aws credentials found (standard credential chain)")
        if isinstance(
            exc,
            botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectionError,
        ):
            return KmsUnreachableError(f"kms: cannot reach {where}")
        if isinstance(exc, botocore.exceptions.ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
            if code in _NOT_FOUND:
                return KmsKeyNotFoundError(f"kms: key {key_id} not found at {where}")
            if code in _DENIED:
                return KmsAccessDeniedError(f"kms: access to key {key_id} denied ({code})")
            if code in _BAD_CIPHERTEXT:
                return KmsInvalidCiphertextError(
                    f"kms: wrapped key or encryption context does not match key {key_id}"
                )
            return KmsError(f"kms: {code or 'error'} for key {key_id}: {message}")
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            return KmsError(f"kms: {' '.join(str(exc).split())}")
        if isinstance(exc, ValueError):
            return KmsConfigError(f"kms: {' '.join(str(exc).split())}")
        raise exc
