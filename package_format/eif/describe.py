# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The `nitro-cli describe-eif` JSON (specs/enclave-image.md §8).

Key order: EifVersion, Measurements, IsSigned, SigningCertificate (signed only),
CheckCRC, SignatureCheck (signed only), ImageName, ImageVersion, Metadata (with
CustomMetadata's keys flattened into it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from package_format.eif.errors import EifSignatureFormatError
from package_format.eif.pcr import DEFAULT_HASH_ALGORITHM
from package_format.eif.reader import EifImage


def _asn1_time(when: datetime) -> str:
    # OpenSSL's ASN1_TIME_print: "Nov  2 14:44:27 2126 GMT" (day padded with a space)
    return f"{when:%b} {when.day:2d} {when:%H:%M:%S} {when.year} GMT"


def certificate_json(cert: x509.Certificate) -> dict[str, Any]:
    """The `SigningCertificate` object: issuer names, algorithm, validity, signature.

    Raises:
        EifSignatureFormatError: a field of the certificate cannot be decoded (cryptography
            parses names and times lazily, so a hostile certificate fails only here).
    """
    try:
        issuer = {
            attr.oid._name: _text(attr.value)  # noqa: SLF001 - OpenSSL long names, as nitro-cli
            for attr in cert.issuer
        }
        return {
            "IssuerName": dict(sorted(issuer.items())),
            "Algorithm": cert.signature_algorithm_oid._name,  # noqa: SLF001
            "NotBefore": _asn1_time(cert.not_valid_before_utc),
            "NotAfter": _asn1_time(cert.not_valid_after_utc),
            "Signature": ":".join(f"{b:02X}" for b in cert.signature),
        }
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise EifSignatureFormatError(
            "eif signature: certificate fields cannot be decoded"
        ) from exc


def _text(value: str | bytes) -> str:
    # X.500 values are text except a few binary types (e.g. x500UniqueIdentifier).
    return value if isinstance(value, str) else value.hex()


def describe(image: EifImage, hash_algorithm: str = DEFAULT_HASH_ALGORITHM) -> dict[str, Any]:
    """Build the describe-eif object for a read image (key order as nitro-cli)."""
    out: dict[str, Any] = {
        "EifVersion": image.header.version,
        "Measurements": image.measurements.to_json(hash_algorithm),
        "IsSigned": image.is_signed,
    }
    if image.is_signed:
        out["SigningCertificate"] = certificate_json(image.signatures[0].certificate)
    out["CheckCRC"] = image.crc_ok
    if image.is_signed:
        out["SignatureCheck"] = image.signature_ok()
    meta = image.metadata
    if meta is not None:
        out["ImageName"] = meta.image_name
        out["ImageVersion"] = meta.image_version
        b = meta.build
        m: dict[str, Any] = {
            "BuildTime": b.build_time,
            "BuildTool": b.build_tool,
            "BuildToolVersion": b.build_tool_version,
            "OperatingSystem": b.operating_system,
            "KernelVersion": b.kernel_version,
            "DockerInfo": meta.docker_info,
        }
        if isinstance(meta.custom_metadata, dict):
            m.update({k: v for k, v in sorted(meta.custom_metadata.items()) if v is not None})
        out["Metadata"] = m
    return out
