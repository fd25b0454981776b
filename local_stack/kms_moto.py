# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The local KMS front's wire side: KMS JSON 1.1 replies, and the calls to moto.

specs/local-kms.md §2 (the wire protocol and its error shape). Requests the front does not
guard reach moto unchanged (hop-by-hop headers dropped); guarded ones are re-sent as
`TrentService.<Op>` calls with the caller's SigV4 headers; moto's own errors are relayed.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local_stack.errors import ExternalError, InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

JSON_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "TrentService."
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding"})
_DEFAULT_AUTH = (
    "AWS4-HMAC-SHA256 Credential=local-kms-front/20260101/us-east-1/kms/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


def header(headers: Mapping[str, str], name: str) -> str:
    """The value of header `name` (any case), or the empty string."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


@dataclass(frozen=True)
class KmsReply:
    """One HTTP answer: status, headers and body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def error_reply(kind: str, message: str, status: int = 400) -> KmsReply:
    """A KMS JSON 1.1 error as boto3 parses it (`__type` and `message`)."""
    body = json.dumps({"__type": kind, "message": message}).encode()
    return KmsReply(status, (("Content-Type", JSON_TYPE), ("x-amzn-ErrorType", kind)), body)


def ok_reply(payload: Mapping[str, Any]) -> KmsReply:
    """A KMS JSON 1.1 success answer."""
    return KmsReply(200, (("Content-Type", JSON_TYPE),), json.dumps(payload).encode())


class MotoClient:
    """HTTP to moto's server at `url` (http://host:port)."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise InputError(f"kms front config: moto_url must be http://host:port, got {parsed}")
        self._url = url
        self._host = parsed.hostname
        self._port = parsed.port or 80

    def call(
        self, operation: str, payload: Mapping[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """Call `operation` with the caller's SigV4 headers; return (status, JSON object).

        Raises:
            ExternalError: moto is unreachable or answers with something other than JSON.
        """
        out = {
            k: v
            for k, v in headers.items()
            if k.lower() in ("authorization", "x-amz-date", "x-amz-security-token")
        }
        if "authorization" not in {k.lower() for k in out}:
            # moto reads the region from the credential scope; give it one.
            out["Authorization"] = _DEFAULT_AUTH
        out["X-Amz-Target"] = TARGET_PREFIX + operation
        out["Content-Type"] = JSON_TYPE
        status, _, body = self.http("POST", "/", out, json.dumps(payload).encode())
        try:
            answer = json.loads(body or b"{}")
        except ValueError as exc:
            raise ExternalError(f"moto: {operation} answered with non-JSON ({status})") from exc
        return status, answer if isinstance(answer, dict) else {}

    def forward(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> KmsReply:
        """Pass a request through unchanged (hop-by-hop headers dropped); never raises."""
        out = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            status, reply_headers, reply = self.http(method, path, out, body)
        except ExternalError as exc:
            return error_reply("KMSInternalException", str(exc), 500)
        kept = tuple((k, v) for k, v in reply_headers if k.lower() not in _HOP_HEADERS)
        return KmsReply(status, kept, reply)

    def http(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One HTTP exchange with moto: status, headers, body.

        Raises:
            ExternalError: moto is unreachable.
        """
        conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=dict(headers))
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        except OSError as exc:
            raise ExternalError(f"moto at {self._url} unreachable: {exc}") from exc
        finally:
            conn.close()
