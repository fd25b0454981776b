# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Parse and open a KMS `CiphertextForRecipient` (specs/attestation.md §9).

KMS answers a `Recipient` request with a BER (indefinite-length) ContentInfo
holding EnvelopedData v2 with exactly one KeyTransRecipientInfo v2, identified
by a 32-byte subjectKeyIdentifier, key transport RSAES-OAEP (SHA-256,
MGF1-SHA-256, empty label) and content encryption AES-256-CBC. pyasn1's BER
decoder reads the structure; cryptography provides the primitives.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pyasn1.codec.ber import decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import namedtype, tag, univ
from pyasn1_modules import rfc4055, rfc5280, rfc5652

from package_format.cms.errors import (
    CmsDecryptError,
    CmsFormatError,
    CmsLimitError,
    CmsUnsupportedError,
    RecipientMismatchError,
)
from package_format.limits import short_repr

OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_DATA = "1.2.840.113549.1.7.1"
OID_RSAES_OAEP = "1.2.840.113549.1.1.7"
OID_MGF1 = "1.2.840.113549.1.1.8"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_P_SPECIFIED = "1.2.840.113549.1.1.9"
OID_AES_256_CBC = "2.16.840.1.101.3.4.1.42"
AES_BLOCK = 16
AES_256_KEY = 32
SKI_LEN = 32
_NULL_DER = b"\x05\x00"
# pyasn1's `ContentInfo.content` is an open ANY; decoding an indefinite-length ANY
# drops the inner end-of-contents octets, so the schema names EnvelopedData directly.


class _EnvelopedContentInfo(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(  # noqa: N815 - pyasn1 schema attribute
        namedtype.NamedType("contentType", rfc5652.ContentType()),
        namedtype.NamedType(
            "content",
            rfc5652.EnvelopedData().subtype(
                explicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0)
            ),
        ),
    )


@dataclass(frozen=True)
class CmsLimits:
    """Limits on an untrusted envelope (specs/attestation.md §9.4).

    Attributes:
        max_envelope_bytes: the whole envelope (KMS: at most 6144).
        max_encrypted_key_bytes: the RSA-wrapped content key (512 = RSA-4096).
        max_content_bytes: the encrypted content (KMS wraps at most 1024 bytes).
    """

    max_envelope_bytes: int = 6144
    max_encrypted_key_bytes: int = 512
    max_content_bytes: int = 4096


DEFAULT_CMS_LIMITS = CmsLimits()


@dataclass(frozen=True)
class RecipientEnvelope:
    """The parts of a KMS-shaped EnvelopedData; nothing is decrypted yet.

    Attributes:
        recipient_key_id: the recipient's subjectKeyIdentifier (32 bytes for KMS).
        key_encryption_algorithm: OID of the key transport (always RSAES-OAEP).
        oaep_hash: OID of the OAEP hash (always SHA-256).
        mgf1_hash: OID of the MGF1 hash (always SHA-256).
        encrypted_key: the RSA-OAEP-wrapped AES-256 content key.
        content_encryption_algorithm: OID of the content cipher (always AES-256-CBC).
        iv: the 16-byte CBC IV.
        encrypted_content: the AES-256-CBC ciphertext (PKCS#7 padded plaintext).
    """

    recipient_key_id: bytes
    key_encryption_algorithm: str
    oaep_hash: str
    mgf1_hash: str
    encrypted_key: bytes
    content_encryption_algorithm: str
    iv: bytes
    encrypted_content: bytes


def subject_key_identifier(public_key: rsa.RSAPublicKey) -> bytes:
    """Return the 32-byte recipient identifier of an RSA key (specs/attestation.md §9.2).

    It is SHA-256 over the DER SubjectPublicKeyInfo, the exact bytes the enclave
    puts into the attestation document's `public_key`.

    Args:
        public_key: the recipient's RSA public key.

    Returns:
        32 bytes.

    Raises:
        TypeError: `public_key` is not an RSA key.
    """
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise TypeError("recipient key must be rsa")
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def _decode(data: bytes, spec: Any, what: str) -> Any:
    try:
        value, rest = decoder.decode(data, asn1Spec=spec)
    except RecursionError as exc:
        raise CmsFormatError(f"cms: {what} nested too deeply") from exc
    except (PyAsn1Error, ValueError, TypeError, LookupError, OverflowError) as exc:
        raise CmsFormatError(f"cms: {what} is not valid ber") from exc
    except Exception as exc:
        # pyasn1's decoder can fail on hostile input with internal errors (AttributeError seen
        # by the fuzzer); whatever it raises, the input is not valid BER for us.
        raise CmsFormatError(f"cms: {what} is not valid ber") from exc
    if rest:
        raise CmsFormatError(f"cms: {len(rest)} trailing bytes after {what}")
    return value


def parse_envelope(data: bytes, *, limits: CmsLimits = DEFAULT_CMS_LIMITS) -> RecipientEnvelope:
    """Parse a KMS `CiphertextForRecipient` and check it has exactly the KMS shape.

    Args:
        data: the envelope bytes (BER; definite or indefinite lengths).
        limits: limits on untrusted input.

    Returns:
        The recipient identifier, algorithms, wrapped key, IV and ciphertext.

    Raises:
        CmsLimitError: the envelope or a part is larger than `limits`.
        CmsFormatError: not BER, not ContentInfo(EnvelopedData), or a malformed field.
        CmsUnsupportedError: a version, recipient kind or algorithm other than KMS's.
    """
    # specs/attestation.md §9.1
    if len(data) > limits.max_envelope_bytes:
        raise CmsLimitError(
            f"cms: envelope is {len(data)} bytes, limit is {limits.max_envelope_bytes}"
        )
    if not data:
        raise CmsFormatError("cms: empty envelope")
    info = _decode(data, _EnvelopedContentInfo(), "contentinfo")
    try:
        return _envelope_fields(info, limits)
    except (PyAsn1Error, ValueError, TypeError, LookupError, OverflowError) as exc:
        # pyasn1 decodes lazily in places (indefinite-length open types, absent components):
        # reading a field of hostile input can fail, which means the input is not valid.
        raise CmsFormatError(f"cms: a field cannot be read ({type(exc).__name__})") from exc


def _envelope_fields(info: Any, limits: CmsLimits) -> RecipientEnvelope:
    if str(info["contentType"]) != OID_ENVELOPED_DATA:
        raise CmsUnsupportedError("cms: content type is not envelopeddata")
    enveloped = info["content"]
    if int(enveloped["version"]) != 2:
        version = short_repr(int(enveloped["version"]), 20)
        raise CmsUnsupportedError(f"cms: envelopeddata version {version}, need 2")
    if (
        _opt(enveloped, "originatorInfo") is not None
        or _opt(enveloped, "unprotectedAttrs") is not None
    ):
        raise CmsUnsupportedError("cms: originatorinfo or unprotectedattrs present")
    key_id, key_alg, encrypted_key = _recipient(enveloped["recipientInfos"], limits)
    oaep_hash, mgf1_hash = _check_oaep(key_alg)
    iv, content = _content(enveloped["encryptedContentInfo"], limits)
    return RecipientEnvelope(
        recipient_key_id=key_id,
        key_encryption_algorithm=str(key_alg["algorithm"]),
        oaep_hash=oaep_hash,
        mgf1_hash=mgf1_hash,
        encrypted_key=encrypted_key,
        content_encryption_algorithm=OID_AES_256_CBC,
        iv=iv,
        encrypted_content=content,
    )


def _recipient(recipients: Any, limits: CmsLimits) -> tuple[bytes, Any, bytes]:
    # specs/attestation.md §9.1: exactly one KTRI v2 identified by a 32-byte SKI.
    if len(recipients) != 1:
        raise CmsUnsupportedError(f"cms: {len(recipients)} recipients, need exactly 1")
    recipient = recipients[0]
    if recipient.getName() != "ktri":
        raise CmsUnsupportedError(f"cms: recipient is {recipient.getName()}, need ktri")
    ktri = recipient["ktri"]
    if int(ktri["version"]) != 2 or ktri["rid"].getName() != "subjectKeyIdentifier":
        raise CmsUnsupportedError("cms: recipient is not ktri v2 with a subjectkeyidentifier")
    key_id = bytes(ktri["rid"]["subjectKeyIdentifier"])
    if len(key_id) != SKI_LEN:
        raise CmsFormatError(f"cms: subjectkeyidentifier is {len(key_id)} bytes, need {SKI_LEN}")
    encrypted_key = bytes(ktri["encryptedKey"])
    if not encrypted_key or len(encrypted_key) > limits.max_encrypted_key_bytes:
        raise CmsLimitError(f"cms: encrypted key is {len(encrypted_key)} bytes")
    return key_id, ktri["keyEncryptionAlgorithm"], encrypted_key


def _content(content_info: Any, limits: CmsLimits) -> tuple[bytes, bytes]:
    if str(content_info["contentType"]) != OID_DATA:
        raise CmsUnsupportedError("cms: encrypted content type is not data")
    iv = _check_aes_cbc(content_info["contentEncryptionAlgorithm"])
    encrypted = _opt(content_info, "encryptedContent")
    if encrypted is None:
        raise CmsFormatError("cms: encrypted content is absent")
    content = bytes(encrypted)
    if len(content) > limits.max_content_bytes:
        raise CmsLimitError(f"cms: encrypted content is {len(content)} bytes")
    if not content or len(content) % AES_BLOCK:
        raise CmsFormatError(f"cms: encrypted content is {len(content)} bytes, not whole blocks")
    return iv, content


def _check_oaep(algorithm: Any) -> tuple[str, str]:
    # specs/attestation.md §9.3: RSAES-OAEP, hashFunc SHA-256, MGF1(SHA-256), empty label.
    if str(algorithm["algorithm"]) != OID_RSAES_OAEP:
        raise CmsUnsupportedError(f"cms: key encryption {algorithm['algorithm']} is not rsaes-oaep")
    raw_params = _opt(algorithm, "parameters")
    if raw_params is None:
        raise CmsUnsupportedError("cms: rsaes-oaep without parameters means sha-1")
    params = _decode(bytes(raw_params), rfc4055.RSAES_OAEP_params(), "oaep parameters")
    hash_alg = _opt(params, "hashFunc")
    if hash_alg is None or not _is_sha256(hash_alg):
        raise CmsUnsupportedError("cms: oaep hash is not sha-256")
    mgf = _opt(params, "maskGenFunc")
    mgf_params = None if mgf is None else _opt(mgf, "parameters")
    if mgf is None or mgf_params is None or str(mgf["algorithm"]) != OID_MGF1:
        raise CmsUnsupportedError("cms: oaep mask generation is not mgf1")
    mgf_hash = _decode(bytes(mgf_params), rfc5280.AlgorithmIdentifier(), "mgf1 hash")
    if not _is_sha256(mgf_hash):
        raise CmsUnsupportedError("cms: mgf1 hash is not sha-256")
    source = _opt(params, "pSourceFunc")
    if source is not None:
        label_der = _opt(source, "parameters")
        label = b""
        if label_der is not None:
            label = bytes(_decode(bytes(label_der), univ.OctetString(), "oaep label"))
        if str(source["algorithm"]) != OID_P_SPECIFIED or label:
            raise CmsUnsupportedError("cms: oaep label is not empty")
    return OID_SHA256, OID_SHA256


def _opt(sequence: Any, name: str) -> Any:
    """Return an optional component, or None when it is absent (without creating it)."""
    value = sequence.getComponentByName(name, instantiate=False)
    if value is univ.noValue or not value.isValue:
        return None
    return value


def _is_sha256(algorithm: Any) -> bool:
    if str(algorithm["algorithm"]) != OID_SHA256:
        return False
    params = _opt(algorithm, "parameters")
    return params is None or bytes(params) == _NULL_DER


def _check_aes_cbc(algorithm: Any) -> bytes:
    if str(algorithm["algorithm"]) != OID_AES_256_CBC:
        raise CmsUnsupportedError(
            f"cms: content encryption {algorithm['algorithm']} is not aes-256-cbc"
        )
    params = _opt(algorithm, "parameters")
    if params is None:
        raise CmsFormatError("cms: aes-256-cbc without an iv")
    iv = bytes(_decode(bytes(params), univ.OctetString(), "aes-cbc iv"))
    if len(iv) != AES_BLOCK:
        raise CmsFormatError(f"cms: iv is {len(iv)} bytes, need {AES_BLOCK}")
    return iv


def open_envelope(
    data: bytes, private_key: rsa.RSAPrivateKey, *, limits: CmsLimits = DEFAULT_CMS_LIMITS
) -> bytes:
    """Decrypt a KMS `CiphertextForRecipient` with the recipient's private key.

    Args:
        data: the envelope bytes.
        private_key: the RSA key whose public half went into the attestation document.
        limits: limits on untrusted input.

    Returns:
        The plaintext (the data key, or random bytes for GenerateRandom).

    Raises:
        CmsLimitError: the envelope or a part is larger than `limits`.
        CmsFormatError: the envelope is malformed.
        CmsUnsupportedError: a version, recipient kind or algorithm other than KMS's.
        RecipientMismatchError: the envelope is for another key.
        CmsDecryptError: OAEP, AES-CBC or the padding fails.
    """
    envelope = parse_envelope(data, limits=limits)
    # specs/attestation.md §9.2: the rid must name the key we hold.
    if envelope.recipient_key_id != subject_key_identifier(private_key.public_key()):
        raise RecipientMismatchError("cms: envelope is addressed to another key")
    oaep = asym_padding.OAEP(
        mgf=asym_padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )
    try:
        content_key = private_key.decrypt(envelope.encrypted_key, oaep)
    except ValueError as exc:
        raise CmsDecryptError("cms: rsa-oaep unwrapping failed") from exc
    if len(content_key) != AES_256_KEY:
        raise CmsDecryptError(f"cms: content key is {len(content_key)} bytes, need {AES_256_KEY}")
    decryptor = Cipher(algorithms.AES(content_key), modes.CBC(envelope.iv)).decryptor()
    padded = decryptor.update(envelope.encrypted_content) + decryptor.finalize()
    unpadder = padding.PKCS7(AES_BLOCK * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise CmsDecryptError("cms: bad pkcs#7 padding after aes-256-cbc") from exc
