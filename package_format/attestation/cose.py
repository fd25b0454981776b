# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""COSE_Sign1 with ES384 only, as the Nitro Secure Module emits it (RFC 9052 §4.2).

specs/attestation.md §3: the structure is a CBOR array
`[protected: bstr, unprotected: map, payload: bstr, signature: bstr]`, optionally
wrapped in CBOR tag 18. The protected header is the map `{1: -35}` (ES384); the
signature is the raw `r || s` pair, 48 bytes each. The signed bytes are
`Sig_structure = ["Signature1", protected, b"", payload]` over the payload bytes
exactly as received; nothing is ever re-encoded before verification.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from package_format.attestation._cbor import strict_loads
from package_format.attestation.errors import (
    CoseStructureError,
    FieldLimitError,
    SignatureInvalidError,
    UnsupportedAlgorithmError,
)
from package_format.limits import short_repr

COSE_SIGN1_TAG = 18
ALG_ES384 = -35
HEADER_ALG = 1
HEADER_CRIT = 2
ES384_COORDINATE_LEN = 48
ES384_SIGNATURE_LEN = 2 * ES384_COORDINATE_LEN
# The protected header as the NSM encodes it: {1: -35}.
ES384_PROTECTED = cbor2.dumps({HEADER_ALG: ALG_ES384})
MAX_COSE_BYTES = 32 * 1024  # specs/attestation.md §6: KMS accepts at most 262144, NSM emits ~5 KiB
MAX_PROTECTED_BYTES = 64


@dataclass(frozen=True)
class CoseSign1:
    """A parsed COSE_Sign1 whose header names ES384; the signature is not yet checked.

    Attributes:
        protected: the protected header bytes exactly as received.
        payload: the payload bytes exactly as received.
        signature: the raw 96-byte `r || s` signature.
        tagged: whether the input carried CBOR tag 18.
    """

    protected: bytes
    payload: bytes
    signature: bytes
    tagged: bool


def parse_cose_sign1(data: bytes, *, max_bytes: int = MAX_COSE_BYTES) -> CoseSign1:
    """Parse a COSE_Sign1 (tagged 18 or untagged) and check its header is ES384.

    Args:
        data: the encoded COSE_Sign1.
        max_bytes: refuse inputs longer than this.

    Returns:
        The four parts, with the payload still encoded.

    Raises:
        FieldLimitError: `data` is longer than `max_bytes`.
        CoseStructureError: not CBOR, trailing bytes, wrong array shape or types.
        UnsupportedAlgorithmError: the protected header is not `{1: -35}`.
    """
    # specs/attestation.md §3.1
    if len(data) > max_bytes:
        raise FieldLimitError(f"cose_sign1: {len(data)} bytes, limit is {max_bytes}")
    if not data:
        raise CoseStructureError("cose_sign1: empty input")
    tagged = data[0] == 0xD2  # tag 18, one-byte head
    decoded = strict_loads(data, "cose_sign1")
    if isinstance(decoded, cbor2.CBORTag):
        if decoded.tag != COSE_SIGN1_TAG:
            raise CoseStructureError(f"cose_sign1: unexpected cbor tag {decoded.tag}")
        decoded = decoded.value
    protected, payload, signature = _split(decoded)
    _check_protected(protected)
    return CoseSign1(protected=protected, payload=payload, signature=signature, tagged=tagged)


def _split(decoded: object) -> tuple[bytes, bytes, bytes]:
    # Inside a tag cbor2 decodes immutably (tuple, frozendict).
    if not isinstance(decoded, list | tuple) or len(decoded) != 4:
        raise CoseStructureError("cose_sign1: not an array of 4 elements")
    protected, unprotected, payload, signature = decoded
    if not isinstance(protected, bytes):
        raise CoseStructureError("cose_sign1: protected header is not a byte string")
    if not isinstance(unprotected, Mapping):
        raise CoseStructureError("cose_sign1: unprotected header is not a map")
    if HEADER_ALG in unprotected:
        raise CoseStructureError("cose_sign1: algorithm in the unprotected header")
    if not isinstance(payload, bytes):
        raise CoseStructureError("cose_sign1: payload is not a byte string")
    if not isinstance(signature, bytes):
        raise CoseStructureError("cose_sign1: signature is not a byte string")
    if len(signature) != ES384_SIGNATURE_LEN:
        raise CoseStructureError(
            f"cose_sign1: signature is {len(signature)} bytes, es384 needs {ES384_SIGNATURE_LEN}"
        )
    return protected, payload, signature


def _check_protected(protected: bytes) -> None:
    # specs/attestation.md §3.2: alg -35 is the only accepted algorithm.
    if len(protected) > MAX_PROTECTED_BYTES:
        raise FieldLimitError(f"cose_sign1: protected header is {len(protected)} bytes")
    header = strict_loads(protected, "cose_sign1 protected header")
    if not isinstance(header, dict):
        raise CoseStructureError("cose_sign1: protected header is not a map")
    if HEADER_CRIT in header:
        raise CoseStructureError("cose_sign1: critical header parameters are not supported")
    alg = header.get(HEADER_ALG)
    if alg is None:
        raise UnsupportedAlgorithmError("cose_sign1: protected header names no algorithm")
    if type(alg) is not int or alg != ALG_ES384:
        raise UnsupportedAlgorithmError(
            f"cose_sign1: algorithm {short_repr(alg)} is not es384 (-35)"
        )


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """Return the bytes a COSE_Sign1 signature covers (RFC 9052 §4.4).

    Args:
        protected: the protected header bytes as sent.
        payload: the payload bytes as sent.

    Returns:
        The CBOR encoding of `["Signature1", protected, b"", payload]`.

    Raises:
        TypeError: never for byte arguments (documented for completeness).
    """
    return cbor2.dumps(["Signature1", protected, b"", payload])


def verify_es384(cose: CoseSign1, public_key: ec.EllipticCurvePublicKey) -> None:
    """Check the signature of `cose` with a P-384 public key.

    Args:
        cose: the parsed COSE_Sign1.
        public_key: the signer's key (the leaf certificate's key).

    Raises:
        SignatureInvalidError: the key is not P-384 or the signature does not verify.
    """
    # specs/attestation.md §5 step 7
    if not isinstance(public_key.curve, ec.SECP384R1):
        raise SignatureInvalidError(f"cose_sign1: signer key is {public_key.curve.name}, not p-384")
    r = int.from_bytes(cose.signature[:ES384_COORDINATE_LEN], "big")
    s = int.from_bytes(cose.signature[ES384_COORDINATE_LEN:], "big")
    der = encode_dss_signature(r, s)
    try:
        public_key.verify(
            der, sig_structure(cose.protected, cose.payload), ec.ECDSA(hashes.SHA384())
        )
    except InvalidSignature as exc:
        raise SignatureInvalidError("cose_sign1: signature invalid") from exc


def sign_es384(
    payload: bytes, private_key: ec.EllipticCurvePrivateKey, *, deterministic: bool = True
) -> bytes:
    """Build an untagged COSE_Sign1 over `payload`, shaped like the NSM's output.

    Args:
        payload: the payload bytes to sign (already encoded).
        private_key: a P-384 signing key.
        deterministic: RFC 6979 nonces (default): no per-signature randomness to get wrong,
            and reproducible test vectors. False: random nonces, as a real NSM signs.

    Returns:
        The encoded COSE_Sign1: `[{1:-35} as bstr, {}, payload, r||s]`.

    Raises:
        TypeError: the key is not on P-384.
    """
    if not isinstance(private_key.curve, ec.SECP384R1):
        raise TypeError("es384 needs a p-384 key")
    der = private_key.sign(
        sig_structure(ES384_PROTECTED, payload),
        ec.ECDSA(hashes.SHA384(), deterministic_signing=deterministic),
    )
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(ES384_COORDINATE_LEN, "big") + s.to_bytes(ES384_COORDINATE_LEN, "big")
    return cbor2.dumps([ES384_PROTECTED, {}, payload, raw])
