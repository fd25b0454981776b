# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""NSM request and response messages: serde-CBOR externally tagged enums (specs/attestation.md §10).

Pure encoding and decoding, no device: requests are a bare text for unit
variants (`"DescribeNSM"`, `"GetRandom"`) or a one-entry map `{variant: {fields}}`;
responses likewise, or `{"Error": "<code>"}`.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from enclave.nsm.errors import NsmResponseError
from enclave.nsm.interface import (
    NsmDescription,
    PcrDescription,
    check_attestation_fields,
    check_pcr_index,
)

NSM_ERROR_CODES = frozenset(
    {
        "InvalidArgument",
        "InvalidIndex",
        "InvalidResponse",
        "ReadOnlyIndex",
        "InvalidOperation",
        "BufferTooSmall",
        "InputTooLarge",
        "InternalError",
    }
)


def encode_describe_nsm() -> bytes:
    """Return the `DescribeNSM` request."""
    return cbor2.dumps("DescribeNSM")


def encode_get_random() -> bytes:
    """Return the `GetRandom` request."""
    return cbor2.dumps("GetRandom")


def encode_describe_pcr(index: int) -> bytes:
    """Return the `DescribePCR` request for PCR `index`.

    Raises:
        NsmArgumentError: `index` is out of range.
    """
    check_pcr_index(index)
    return cbor2.dumps({"DescribePCR": {"index": index}})


def encode_attestation(
    public_key: bytes | None, user_data: bytes | None, nonce: bytes | None
) -> bytes:
    """Return the `Attestation` request (absent fields are CBOR null).

    Raises:
        NsmArgumentError: a field is longer than 1024 bytes.
    """
    check_attestation_fields(public_key, user_data, nonce)
    return cbor2.dumps(
        {"Attestation": {"user_data": user_data, "nonce": nonce, "public_key": public_key}}
    )


def decode_response(data: bytes, variant: str) -> dict[str, Any]:
    """Decode a response and return the fields of the expected variant.

    Args:
        data: the response bytes the device wrote.
        variant: the expected variant (`"Attestation"`, `"GetRandom"`, ...).

    Returns:
        The variant's field map.

    Raises:
        NsmResponseError: an `Error` response, invalid CBOR, or another shape.
    """
    stream = io.BytesIO(data)
    try:
        message = cbor2.CBORDecoder(stream, max_depth=8).decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, LookupError, RecursionError) as exc:
        raise NsmResponseError(f"nsm: {variant} response is not valid cbor") from exc
    if stream.tell() != len(data):
        raise NsmResponseError(f"nsm: {variant} response has trailing bytes")
    if isinstance(message, dict) and set(message) == {"Error"}:
        code = message["Error"]
        shown = code if code in NSM_ERROR_CODES else "unknown error"
        raise NsmResponseError(f"nsm: {variant} failed: {shown}")
    if not isinstance(message, dict) or set(message) != {variant}:
        raise NsmResponseError(f"nsm: expected a {variant} response")
    fields = message[variant]
    if not isinstance(fields, dict):
        raise NsmResponseError(f"nsm: {variant} response fields are not a map")
    return fields


def _field(fields: dict[str, Any], name: str, kind: type, variant: str) -> Any:
    value = fields.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise NsmResponseError(f"nsm: {variant} response field {name} is missing or mistyped")
    return value


def decode_attestation(data: bytes) -> bytes:
    """Return the document of an `Attestation` response.

    Raises:
        NsmResponseError: error or wrong shape.
    """
    return _field(decode_response(data, "Attestation"), "document", bytes, "Attestation")  # type: ignore[no-any-return]


def decode_get_random(data: bytes) -> bytes:
    """Return the bytes of a `GetRandom` response.

    Raises:
        NsmResponseError: error or wrong shape.
    """
    return _field(decode_response(data, "GetRandom"), "random", bytes, "GetRandom")  # type: ignore[no-any-return]


def decode_describe_pcr(data: bytes) -> PcrDescription:
    """Return the PCR of a `DescribePCR` response.

    Raises:
        NsmResponseError: error or wrong shape.
    """
    fields = decode_response(data, "DescribePCR")
    return PcrDescription(
        locked=_field(fields, "lock", bool, "DescribePCR"),
        data=_field(fields, "data", bytes, "DescribePCR"),
    )


def decode_describe_nsm(data: bytes) -> NsmDescription:
    """Return the description of a `DescribeNSM` response.

    Raises:
        NsmResponseError: error or wrong shape.
    """
    v = "DescribeNSM"
    fields = decode_response(data, v)
    locked = fields.get("locked_pcrs")
    if not isinstance(locked, list | tuple | set | frozenset) or not all(
        type(i) is int for i in locked
    ):
        raise NsmResponseError("nsm: DescribeNSM response field locked_pcrs is mistyped")
    digest = fields.get("digest")
    if not isinstance(digest, str):
        raise NsmResponseError("nsm: DescribeNSM response field digest is mistyped")
    return NsmDescription(
        version=(
            _field(fields, "version_major", int, v),
            _field(fields, "version_minor", int, v),
            _field(fields, "version_patch", int, v),
        ),
        module_id=_field(fields, "module_id", str, v),
        max_pcrs=_field(fields, "max_pcrs", int, v),
        locked_pcrs=tuple(sorted(locked)),
        digest=digest,
    )
