# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The EIF signature section: COSE_Sign1 over PCR0 (specs/enclave-image.md §6).

Payload: CBOR map {"register_index": 0, "register_value": [48 uints]} (serde's
encoding of `Vec<u8>` is an array of integers, not a byte string). COSE_Sign1
is untagged, protected header {1: alg}, empty unprotected map. The section is
the CBOR array [{"signing_certificate": [PEM bytes], "signature": [COSE bytes]}].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from package_format.eif.errors import EifSignatureError, EifSignatureFormatError
from package_format.limits import CborScanError, decode_cbor

#: COSE algorithm ids by curve: (alg, hash, coordinate size).
_ALGS: dict[str, tuple[int, type[hashes.HashAlgorithm], int]] = {
    "secp256r1": (-7, hashes.SHA256, 32),
    "secp384r1": (-35, hashes.SHA384, 48),
    "secp521r1": (-36, hashes.SHA512, 66),
}
MAX_SIGNATURE_SECTION = 64 << 10
# Every byte of the section can be a CBOR item (byte vectors are integer arrays).
SIGNATURE_CBOR_ITEMS = MAX_SIGNATURE_SECTION
SIGNATURE_CBOR_DEPTH = 4


def pcr_info_payload(pcr0: bytes, index: int = 0) -> bytes:
    """CBOR of `PcrInfo{register_index, register_value}` as serde_cbor writes it."""
    return cbor2.dumps({"register_index": index, "register_value": list(pcr0)})


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


def cose_sign1(payload: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Sign `payload` as an untagged COSE_Sign1 (ES256/ES384/ES512 by the key's curve).

    Raises:
        EifSignatureFormatError: the key is on an unsupported curve.
    """
    alg = _ALGS.get(key.curve.name)
    if alg is None:
        raise EifSignatureFormatError(f"signing key: unsupported curve {key.curve.name}")
    alg_id, hash_cls, size = alg
    protected = cbor2.dumps({1: alg_id})
    der = key.sign(_sig_structure(protected, payload), ec.ECDSA(hash_cls()))
    r, s = decode_dss_signature(der)
    sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return cbor2.dumps([protected, {}, payload, sig])


def cose_verify(cose: bytes, public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Verify an untagged (or tag-18) COSE_Sign1; return its payload.

    Raises:
        EifSignatureFormatError: not a COSE_Sign1, or an algorithm that does not match the key.
        EifSignatureError: the signature does not verify.
    """
    try:
        obj = decode_cbor(cose, max_items=SIGNATURE_CBOR_ITEMS, max_depth=SIGNATURE_CBOR_DEPTH)
        if isinstance(obj, cbor2.CBORTag) and obj.tag == 18:
            obj = obj.value
        protected, _unprotected, payload, sig = obj
        header = decode_cbor(protected, max_items=16, max_depth=2)
        alg_id = header[1]
    except (CborScanError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise EifSignatureFormatError("eif signature: not a COSE_Sign1 structure") from exc
    alg = _ALGS.get(public_key.curve.name)
    if alg is None or alg[0] != alg_id or not isinstance(payload, bytes):
        raise EifSignatureFormatError("eif signature: algorithm does not match the certificate")
    _, hash_cls, size = alg
    if not isinstance(sig, bytes) or len(sig) != 2 * size:
        raise EifSignatureFormatError("eif signature: wrong signature length")
    der = encode_dss_signature(int.from_bytes(sig[:size]), int.from_bytes(sig[size:]))
    try:
        public_key.verify(der, _sig_structure(protected, payload), ec.ECDSA(hash_cls()))
    except InvalidSignature as exc:
        raise EifSignatureError("eif signature: cose_sign1 signature does not verify") from exc
    return payload


@dataclass(frozen=True)
class PcrSignature:
    """One element of the signature section."""

    certificate_pem: bytes
    cose_sign1: bytes

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate.

        Raises:
            EifSignatureFormatError: the PEM is not a certificate.
        """
        try:
            return x509.load_pem_x509_certificate(self.certificate_pem)
        except ValueError as exc:
            raise EifSignatureFormatError("eif signature: bad signing certificate") from exc

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The certificate's EC public key.

        Raises:
            EifSignatureFormatError: the certificate or its key cannot be loaded, or the
                key is not an EC key.
        """
        try:
            key = self.certificate.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise EifSignatureFormatError(
                "eif signature: certificate key cannot be loaded"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise EifSignatureFormatError("eif signature: certificate key is not an ec key")
        return key

    @property
    def certificate_der(self) -> bytes:
        """DER of the certificate (what PCR8 measures)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)


def encode_signature_section(signatures: list[PcrSignature]) -> bytes:
    """CBOR of `Vec<PcrSignature>` with byte vectors as integer arrays."""
    return cbor2.dumps(
        [
            {"signing_certificate": list(s.certificate_pem), "signature": list(s.cose_sign1)}
            for s in signatures
        ]
    )


def _byte_vec(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        try:
            return bytes(value)  # C checks each item is an integer in 0..255
        except (TypeError, ValueError):
            pass
    raise EifSignatureFormatError("eif signature section: a byte vector is malformed")


def decode_signature_section(data: bytes) -> list[PcrSignature]:
    """Parse a signature section (at least one element).

    Raises:
        EifSignatureFormatError: not the expected CBOR shape, or too large.
    """
    if len(data) > MAX_SIGNATURE_SECTION:
        raise EifSignatureFormatError("eif signature section: over the size limit")
    try:
        obj = decode_cbor(data, max_items=SIGNATURE_CBOR_ITEMS, max_depth=SIGNATURE_CBOR_DEPTH)
    except CborScanError as exc:
        raise EifSignatureFormatError(f"eif signature section: {exc}") from exc
    if not isinstance(obj, list) or not obj:
        raise EifSignatureFormatError("eif signature section: not a non-empty array")
    out = []
    for item in obj:
        if not isinstance(item, dict) or set(item) != {"signing_certificate", "signature"}:
            raise EifSignatureFormatError("eif signature section: element has the wrong keys")
        out.append(
            PcrSignature(_byte_vec(item["signing_certificate"]), _byte_vec(item["signature"]))
        )
    return out


def make_signature(
    pcr0: bytes, certificate_pem: bytes, key: ec.EllipticCurvePrivateKey
) -> PcrSignature:
    """Sign PCR0 with `key`; `certificate_pem` is stored verbatim.

    Raises:
        EifSignatureFormatError: the certificate does not hold the key's public half,
            or the curve is unsupported.
    """
    sig = PcrSignature(certificate_pem, b"")
    cert_key = sig.certificate.public_key()
    if not isinstance(cert_key, ec.EllipticCurvePublicKey) or cert_key.public_numbers() != (
        key.public_key().public_numbers()
    ):
        raise EifSignatureFormatError("signing key does not match the signing certificate")
    return PcrSignature(certificate_pem, cose_sign1(pcr_info_payload(pcr0), key))


def verify_signature(sig: PcrSignature, pcr0: bytes) -> None:
    """Check that `sig` is a valid signature by its certificate over this PCR0.

    Raises:
        EifSignatureFormatError: certificate or COSE cannot be decoded, or not an EC key.
        EifSignatureError: the signature fails or signs another PCR0.
    """
    key = sig.public_key()
    payload = cose_verify(sig.cose_sign1, key)
    if payload != pcr_info_payload(pcr0):
        raise EifSignatureError("eif signature: signed pcr0 differs from the image's pcr0")
