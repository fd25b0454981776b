# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Ed25519 owner signatures and key files (specs/bundle-format.md §6, §10).

The signature covers SIGNATURE_LABEL || preamble || header, the header bytes
exactly as stored. Key files are two lines of text: a type line and 64 hex digits.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from package_format.bundle.errors import (
    BundleSignatureError,
    KeyFileError,
    UntrustedSignerError,
)
from package_format.bundle.header import ParsedHeader, RawHeader
from package_format.bundle.limits import PUBLIC_KEY_SIZE, SIGNATURE_LABEL

PRIVATE_KEY_LINE = "nitro-bundles ed25519 private key v1"
PUBLIC_KEY_LINE = "nitro-bundles ed25519 public key v1"
MAX_KEY_FILE_SIZE = 1024


def public_key_of(seed: bytes) -> bytes:
    """Return the 32-byte Ed25519 public key of a 32-byte private seed.

    Raises:
        KeyFileError: The seed is not 32 bytes.
    """
    if len(seed) != 32:
        raise KeyFileError("signing key must be a 32-byte ed25519 seed")
    return bytes(SigningKey(seed).verify_key)


def sign(signed_bytes: bytes, seed: bytes) -> bytes:
    """Return the 64-byte signature over SIGNATURE_LABEL || signed_bytes (§6).

    Raises:
        KeyFileError: The seed is not 32 bytes.
    """
    if len(seed) != 32:
        raise KeyFileError("signing key must be a 32-byte ed25519 seed")
    return SigningKey(seed).sign(SIGNATURE_LABEL + signed_bytes).signature


def verify_header(parsed: ParsedHeader, trusted_keys: Iterable[bytes]) -> bytes:
    """Check that a trusted key signed the header; return that key (§6).

    Raises:
        UntrustedSignerError: The header's signer is not among `trusted_keys`.
        BundleSignatureError: The signature does not verify under the signer key.
    """
    signer = parsed.header.signer
    trusted = {bytes(k) for k in trusted_keys}
    if signer not in trusted:
        raise UntrustedSignerError(
            f"bundle: signed by {fingerprint(signer)}, which is not a trusted owner key"
        )
    try:
        VerifyKey(signer).verify(SIGNATURE_LABEL + parsed.signed_bytes, parsed.signature)
    except (BadSignatureError, CryptoError, ValueError) as exc:
        raise BundleSignatureError("bundle: header signature is not valid") from exc
    return signer


def verify_raw_header(raw: RawHeader, trusted_keys: Iterable[bytes]) -> bytes:
    """Check the signature before the header is decoded; return the signer key (§6, §8).

    Only the signer field is read (at its fixed place); the costly decoding of the
    header then happens only for a header a trusted key signed.

    Raises:
        HeaderEncodingError: The header does not start as a valid header must.
        UntrustedSignerError: The header's signer is not among `trusted_keys`.
        BundleSignatureError: The signature does not verify under the signer key.
    """
    signer = raw.signer()
    if signer not in {bytes(k) for k in trusted_keys}:
        raise UntrustedSignerError(
            f"bundle: signed by {fingerprint(signer)}, which is not a trusted owner key"
        )
    try:
        VerifyKey(signer).verify(SIGNATURE_LABEL + raw.signed_bytes, raw.signature)
    except (BadSignatureError, CryptoError, ValueError) as exc:
        raise BundleSignatureError("bundle: header signature is not valid") from exc
    return signer


def fingerprint(public_key: bytes) -> str:
    """Return `SHA256:` + unpadded base64 of SHA-256(public key), like OpenSSH (§10)."""
    digest = hashlib.sha256(public_key).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _dump(first_line: str, key: bytes) -> str:
    return f"{first_line}\n{key.hex()}\n"


def dump_private_key(seed: bytes) -> str:
    """Return the text of a private key file (§10)."""
    return _dump(PRIVATE_KEY_LINE, seed)


def dump_public_key(public_key: bytes) -> str:
    """Return the text of a public key file (§10)."""
    return _dump(PUBLIC_KEY_LINE, public_key)


def _load(text: str, first_line: str, what: str) -> bytes:
    if len(text) > MAX_KEY_FILE_SIZE:
        raise KeyFileError(f"{what}: file too large")
    lines = text.splitlines()
    if len(lines) != 2 or lines[0] != first_line:
        raise KeyFileError(f"{what}: expected the line {first_line!r} and one line of hex")
    value = lines[1].strip()
    if len(value) != 2 * PUBLIC_KEY_SIZE or value != value.lower():
        raise KeyFileError(f"{what}: expected 64 lowercase hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise KeyFileError(f"{what}: expected 64 lowercase hex digits") from exc


def load_private_key(text: str, what: str = "private key") -> bytes:
    """Parse a private key file and return its 32-byte seed.

    Raises:
        KeyFileError: The text is not a private key file.
    """
    return _load(text, PRIVATE_KEY_LINE, what)


def load_public_key(text: str, what: str = "public key") -> bytes:
    """Parse a public key file and return the 32-byte key.

    Raises:
        KeyFileError: The text is not a public key file.
    """
    key = _load(text, PUBLIC_KEY_LINE, what)
    try:
        VerifyKey(key)
    except (CryptoError, ValueError) as exc:
        raise KeyFileError(f"{what}: not a valid ed25519 public key") from exc
    return key
