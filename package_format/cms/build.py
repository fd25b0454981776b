# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Build a KMS-shaped `CiphertextForRecipient` (for the local KMS front).

specs/attestation.md §9.6: the output has the byte layout of real KMS answers:
indefinite-length ContentInfo, [0], EnvelopedData and EncryptedContentInfo,
a definite-length RecipientInfos SET holding one KTRI v2 (32-byte SKI,
RSAES-OAEP SHA-256/MGF1-SHA-256), AES-256-CBC with a 16-byte IV, and the
ciphertext as one OCTET STRING inside a constructed indefinite [0]. The content
key and IV are parameters; the OAEP seed comes from cryptography's RNG.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pyasn1.codec.der import encoder
from pyasn1.type import univ
from pyasn1_modules import rfc4055, rfc5280, rfc5652

from package_format.cms.envelope import (
    AES_256_KEY,
    AES_BLOCK,
    OID_AES_256_CBC,
    OID_DATA,
    OID_ENVELOPED_DATA,
    OID_RSAES_OAEP,
    subject_key_identifier,
)

_EOC = b"\x00\x00"
MAX_PLAINTEXT_BYTES = 4096


def _oid(dotted: str) -> bytes:
    return bytes(encoder.encode(univ.ObjectIdentifier(dotted)))


def _recipient_infos(public_key: rsa.RSAPublicKey, encrypted_key: bytes) -> bytes:
    ktri = rfc5652.KeyTransRecipientInfo()
    ktri["version"] = 2
    ktri["rid"]["subjectKeyIdentifier"] = subject_key_identifier(public_key)
    key_alg = ktri["keyEncryptionAlgorithm"]
    key_alg["algorithm"] = univ.ObjectIdentifier(OID_RSAES_OAEP)
    key_alg["parameters"] = encoder.encode(rfc4055.rSAES_OAEP_SHA256_Params)
    ktri["encryptedKey"] = encrypted_key
    infos = rfc5652.RecipientInfos()
    info = rfc5652.RecipientInfo()
    info["ktri"] = ktri
    infos.append(info)
    return bytes(encoder.encode(infos))


def _aes_cbc_algorithm(iv: bytes) -> bytes:
    algorithm = rfc5280.AlgorithmIdentifier()
    algorithm["algorithm"] = univ.ObjectIdentifier(OID_AES_256_CBC)
    algorithm["parameters"] = encoder.encode(univ.OctetString(iv))
    return bytes(encoder.encode(algorithm))


def build_enveloped_data(
    plaintext: bytes, *, recipient_public_key_der: bytes, content_key: bytes, iv: bytes
) -> bytes:
    """Encrypt `plaintext` for an RSA key in the KMS `CiphertextForRecipient` layout.

    Args:
        plaintext: the secret (a data key or random bytes), 1..4096 bytes.
        recipient_public_key_der: the recipient's RSA public key, DER SubjectPublicKeyInfo
            (the attestation document's `public_key`).
        content_key: a fresh random 32-byte AES-256 key.
        iv: a fresh random 16-byte CBC IV.

    Returns:
        The BER envelope bytes.

    Raises:
        ValueError: bad sizes, or the public key is not DER.
        TypeError: the public key is not RSA.
    """
    if not 0 < len(plaintext) <= MAX_PLAINTEXT_BYTES:
        raise ValueError(f"plaintext is {len(plaintext)} bytes, need 1..{MAX_PLAINTEXT_BYTES}")
    if len(content_key) != AES_256_KEY or len(iv) != AES_BLOCK:
        raise ValueError("content key must be 32 bytes and iv 16 bytes")
    public_key = serialization.load_der_public_key(recipient_public_key_der)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise TypeError("recipient public key is not rsa")
    encrypted_key = public_key.encrypt(
        content_key,
        asym_padding.OAEP(
            mgf=asym_padding.MGF1(algorithm=hashes.SHA256()),
            algorithm=hashes.SHA256(),
            label=None,
        ),
    )
    padder = padding.PKCS7(AES_BLOCK * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    encrypted_content_info = (
        b"\x30\x80"
        + _oid(OID_DATA)
        + _aes_cbc_algorithm(iv)
        + b"\xa0\x80"
        + bytes(encoder.encode(univ.OctetString(ciphertext)))
        + _EOC
        + _EOC
    )
    enveloped_data = (
        b"\x30\x80"
        + bytes(encoder.encode(univ.Integer(2)))
        + _recipient_infos(public_key, encrypted_key)
        + encrypted_content_info
        + _EOC
    )
    return b"\x30\x80" + _oid(OID_ENVELOPED_DATA) + b"\xa0\x80" + enveloped_data + _EOC + _EOC
