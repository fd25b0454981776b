# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The local KMS front: AWS KMS JSON 1.1 on 127.0.0.1, attestation and key policy on top of moto.

specs/local-kms.md. Requests arrive exactly as boto3 sends them to AWS
(`X-Amz-Target: TrentService.<Op>`). Operations that release or use key
material are authorized here against the key policy stored in moto (moto stores
policies but does not enforce them); `Recipient` documents are verified against
the configured root and answers become CMS envelopes with no `Plaintext`.
Everything else passes through to moto unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from local_stack.attested import (
    AttestedRecipient,
    RecipientRejectedError,
    check_recipient,
    wrap_for_recipient,
)
from local_stack.errors import ExternalError, InputError
from local_stack.kms_moto import (
    JSON_TYPE,
    TARGET_PREFIX,
    KmsReply,
    MotoClient,
    error_reply,
    header,
    ok_reply,
)
from package_format.key_policy import (
    RequestContext,
    attestation_condition_keys,
    context_condition_keys,
    evaluate,
    principal_condition_keys,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["FrontConfig", "KmsFront", "KmsReply", "error_reply"]

# specs/local-kms.md §3: operations that may carry `Recipient` (the others KMS
# supports with Recipient, GenerateDataKeyPair and DeriveSharedSecret, are refused).
RECIPIENT_OPS = frozenset({"Decrypt", "GenerateDataKey", "GenerateRandom"})
RECIPIENT_REFUSED_OPS = frozenset({"GenerateDataKeyPair", "DeriveSharedSecret"})
# specs/local-kms.md §5.1: operations authorized against the key policy here.
POLICY_OPS = frozenset(
    {
        "Decrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "Encrypt",
        "ReEncrypt",
    }
)
_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/")
_UUID_RE = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class FrontConfig:
    """Configuration of the front (specs/local-kms.md §6; JSON file `kms-front.json`).

    Attributes:
        moto_url: base URL of moto's server.
        root_pem: the pinned root certificate attestation documents must chain to.
        principals: access key id -> principal ARN (the caller identity for policies).
        max_age: documents older than this (front's clock) are refused.
        max_skew: documents signed further than this in the future are refused.
        max_body_bytes: largest request body accepted.
    """

    moto_url: str
    root_pem: bytes
    principals: Mapping[str, str] = field(default_factory=dict)
    max_age: timedelta = timedelta(minutes=5)
    max_skew: timedelta = timedelta(seconds=30)
    max_body_bytes: int = 1 << 20

    def to_json(self) -> dict[str, Any]:
        """Serialize for the config file."""
        return {
            "moto_url": self.moto_url,
            "root_pem": self.root_pem.decode("ascii"),
            "principals": dict(self.principals),
            "max_age_seconds": self.max_age.total_seconds(),
            "max_skew_seconds": self.max_skew.total_seconds(),
            "max_body_bytes": self.max_body_bytes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FrontConfig:
        """Read the config file's object.

        Raises:
            InputError: a field is missing or has the wrong type.
        """
        try:
            principals = data.get("principals", {})
            if not isinstance(principals, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in principals.items()
            ):
                raise InputError("kms front config: principals must map strings to strings")
            return cls(
                moto_url=str(data["moto_url"]),
                root_pem=str(data["root_pem"]).encode("ascii"),
                principals=principals,
                max_age=timedelta(seconds=float(data.get("max_age_seconds", 300))),
                max_skew=timedelta(seconds=float(data.get("max_skew_seconds", 30))),
                max_body_bytes=int(data.get("max_body_bytes", 1 << 20)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"kms front config: bad or missing field: {exc}") from exc


class _DeniedError(Exception):
    """Internal: answer with a KMS error shape."""

    def __init__(self, kind: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class KmsFront:
    """The request handler, independent of the HTTP server that feeds it."""

    def __init__(self, config: FrontConfig, clock: Callable[[], datetime] | None = None) -> None:
        self._config = config
        self._clock = clock or (lambda: datetime.now(UTC))
        self._moto = MotoClient(config.moto_url)
        self._seen: dict[bytes, datetime] = {}
        self._seen_lock = threading.Lock()

    # -- entry point -------------------------------------------------------

    def handle(  # noqa: PLR0911 - one early answer per kind of request
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> KmsReply:
        """Answer one HTTP request (never raises for bad input)."""
        target = header(headers, "X-Amz-Target")
        if method != "POST" or not target.startswith(TARGET_PREFIX):
            return self._moto.forward(method, path, headers, body)
        operation = target[len(TARGET_PREFIX) :]
        try:
            request = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return error_reply("SerializationException", "request body is not valid JSON")
        if not isinstance(request, dict):
            return error_reply("SerializationException", "request body must be a JSON object")
        if "Recipient" in request and operation not in RECIPIENT_OPS:
            return error_reply(
                "UnsupportedOperationException",
                f"local kms front: Recipient is not supported for {operation}",
            )
        if operation not in RECIPIENT_OPS and operation not in POLICY_OPS:
            return self._moto.forward(method, path, headers, body)
        try:
            return self._guarded(operation, request, headers)
        except _DeniedError as exc:
            return error_reply(exc.kind, str(exc), exc.status)
        except ExternalError as exc:
            return error_reply("KMSInternalException", str(exc), 500)

    # -- guarded operations ---------------------------------------------------

    def _guarded(
        self, operation: str, request: dict[str, Any], headers: Mapping[str, str]
    ) -> KmsReply:
        recipient = self._recipient(request) if "Recipient" in request else None
        principal = self.principal_of(headers)
        if operation == "GenerateRandom":
            # No key, hence no key policy: AWS governs GenerateRandom by IAM
            # policy, which the local stack does not model (specs/local-kms.md §5.1).
            return self._answer(operation, request, headers, recipient)
        if operation == "ReEncrypt":
            source = self._key_arn(
                request.get("SourceKeyId"), request.get("CiphertextBlob"), headers
            )
            dest = self._key_arn(request.get("DestinationKeyId"), None, headers)
            self._authorize(
                "kms:ReEncryptFrom", principal, source, request.get("SourceEncryptionContext"), None
            )
            self._authorize(
                "kms:ReEncryptTo",
                principal,
                dest,
                request.get("DestinationEncryptionContext"),
                None,
            )
        else:
            blob = request.get("CiphertextBlob") if operation == "Decrypt" else None
            key_arn = self._key_arn(request.get("KeyId"), blob, headers)
            self._authorize(
                f"kms:{operation}", principal, key_arn, request.get("EncryptionContext"), recipient
            )
        return self._answer(operation, request, headers, recipient)

    def _recipient(self, request: Mapping[str, Any]) -> AttestedRecipient:
        recipient = request["Recipient"]
        if not isinstance(recipient, dict):
            raise _DeniedError("ValidationException", "Recipient must be an object")
        encoded = recipient.get("AttestationDocument")
        if not isinstance(encoded, str) or not encoded:
            raise _DeniedError("ValidationException", "Recipient.AttestationDocument is required")
        try:
            document = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _DeniedError(
                "ValidationException", "Recipient.AttestationDocument is not base64"
            ) from exc
        if not 1 <= len(document) <= 262144:
            raise _DeniedError("ValidationException", "Recipient.AttestationDocument: bad length")
        now = self._clock()
        try:
            attested = check_recipient(
                algorithm=recipient.get("KeyEncryptionAlgorithm"),
                document=document,
                root_pem=self._config.root_pem,
                now=now,
                max_age=self._config.max_age,
                max_skew=self._config.max_skew,
            )
        except RecipientRejectedError as exc:
            raise _DeniedError("AccessDeniedException", str(exc)) from exc
        self._remember(attested, now)
        return attested

    def _remember(self, attested: AttestedRecipient, now: datetime) -> None:
        # specs/local-kms.md §4.3: each document is accepted once within the window.
        with self._seen_lock:
            for digest, expiry in list(self._seen.items()):
                if expiry < now:
                    del self._seen[digest]
            if attested.digest in self._seen:
                raise _DeniedError(
                    "AccessDeniedException", "recipient: attestation document was already used"
                )
            self._seen[attested.digest] = attested.timestamp + self._config.max_age

    def principal_of(self, headers: Mapping[str, str]) -> str:
        """The caller's principal ARN: the SigV4 access key id mapped by the config."""
        match = _CREDENTIAL_RE.search(header(headers, "Authorization"))
        if match is None:
            return ""
        return self._config.principals.get(match.group(1), "")

    def _authorize(
        self,
        action: str,
        principal: str,
        key_arn: str,
        context: object,
        recipient: AttestedRecipient | None,
    ) -> None:
        keys: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        if context is not None:
            if not isinstance(context, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in context.items()
            ):
                raise _DeniedError(
                    "ValidationException", "EncryptionContext must map strings to strings"
                )
            single, multi = context_condition_keys(context)
            keys.update(single)
        if recipient is not None:
            keys.update(attestation_condition_keys(recipient.pcrs))
        keys.update(principal_condition_keys(principal))
        policy = self._key_policy(key_arn)
        decision = evaluate(policy, RequestContext(action, principal, key_arn, keys, multi))
        if not decision.allowed:
            who = principal or "an unknown caller"
            raise _DeniedError(
                "AccessDeniedException",
                f"{who} is not authorized to perform {action} on {key_arn}: {decision.reason}",
            )

    # -- asking moto ---------------------------------------------------------

    def _key_arn(self, key_id: object, blob: object, headers: Mapping[str, str]) -> str:
        if key_id is None and isinstance(blob, str):
            # reference/attestation-kms.md §5: moto's blob starts with the 36-byte key id.
            try:
                head = base64.b64decode(blob, validate=True)[:36]
            except (binascii.Error, ValueError) as exc:
                raise _DeniedError(
                    "InvalidCiphertextException", "CiphertextBlob is not base64"
                ) from exc
            if not _UUID_RE.match(head):
                raise _DeniedError("InvalidCiphertextException", "CiphertextBlob names no key")
            key_id = head.decode("ascii")
        if not isinstance(key_id, str) or not key_id:
            raise _DeniedError("ValidationException", "KeyId is required")
        status, answer = self._moto.call("DescribeKey", {"KeyId": key_id}, headers)
        if status != 200:
            raise _DeniedError(
                str(answer.get("__type", "NotFoundException")), str(answer.get("message", ""))
            )
        return str(answer["KeyMetadata"]["Arn"])

    def _key_policy(self, key_arn: str) -> dict[str, Any]:
        status, answer = self._moto.call(
            "GetKeyPolicy", {"KeyId": key_arn, "PolicyName": "default"}, {}
        )
        if status != 200:
            raise ExternalError(f"moto: GetKeyPolicy for {key_arn} failed with {status}")
        try:
            policy = json.loads(answer["Policy"])
        except (KeyError, TypeError, ValueError):
            return {}
        return policy if isinstance(policy, dict) else {}

    def _answer(
        self,
        operation: str,
        request: dict[str, Any],
        headers: Mapping[str, str],
        recipient: AttestedRecipient | None,
    ) -> KmsReply:
        forwarded = {k: v for k, v in request.items() if k != "Recipient"}
        status, answer = self._moto.call(operation, forwarded, headers)
        if status != 200:
            return KmsReply(status, (("Content-Type", JSON_TYPE),), json.dumps(answer).encode())
        if recipient is None:
            return ok_reply(answer)
        encoded = answer.pop("Plaintext", None)
        if not isinstance(encoded, str):
            raise ExternalError(f"moto: {operation} answered without Plaintext")
        plaintext = base64.b64decode(encoded)
        answer["CiphertextForRecipient"] = base64.b64encode(
            wrap_for_recipient(recipient, plaintext)
        ).decode("ascii")
        return ok_reply(answer)
