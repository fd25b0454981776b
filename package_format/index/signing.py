# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Signing and verifying the distribution index (specs/distribution.md §3.3, §4).

The index is signed by the owner's Ed25519 key over a domain-separated canonical
encoding; clients check key, signature, name, expiry and rollback. Time and keys are
parameters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime, timedelta

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from package_format.index.codec import (
    _canonical,
    _decode_canonical,
    _exact_keys,
    _index_from_json,
)
from package_format.index.model import (
    _SHA256_RE,
    DEFAULT_LIMITS,
    Index,
    IndexExpiredError,
    IndexFormatError,
    IndexKeyMismatchError,
    IndexLimitError,
    IndexLimits,
    IndexNameMismatchError,
    IndexRollbackError,
    IndexSignatureError,
    format_time,
)

# specs/distribution.md §3.3: domain separation from every other owner-key signature.
SIGNATURE_CONTEXT = b"nitro-bundles/index/v1\x00"
_KEYID_RE = _SHA256_RE


def key_id(public_key: bytes) -> str:
    """Return the key id of a raw Ed25519 public key: lowercase hex SHA-256 of its 32 bytes.

    Raises:
        IndexFormatError: the key is not 32 bytes.
    """
    if len(public_key) != 32:
        raise IndexFormatError("owner public key must be 32 bytes of Ed25519")
    return hashlib.sha256(public_key).hexdigest()


def _fingerprint(keyid: str) -> str:
    """A key id as users see every owner key: `SHA256:` + unpadded base64 (bundle-format §10).

    The key id is the hex of the same SHA-256, so both name the key identically.
    """
    return "SHA256:" + base64.b64encode(bytes.fromhex(keyid)).decode().rstrip("=")


def sign_index(index: Index, private_key: bytes) -> bytes:
    """Return the canonical signed envelope of `index` (the bytes of index.json).

    Args:
        index: the index to sign.
        private_key: the 32-byte Ed25519 seed of the owner key.

    Raises:
        IndexFormatError: the key is not a 32-byte seed.
    """
    if len(private_key) != 32:
        raise IndexFormatError("owner private key must be a 32-byte Ed25519 seed")
    signer = SigningKey(private_key)
    signed = _canonical(index.to_json())
    sig = signer.sign(SIGNATURE_CONTEXT + signed).signature
    envelope = {
        "signature": {
            "keyid": key_id(bytes(signer.verify_key)),
            "sig": base64.b64encode(sig).decode("ascii"),
        },
        "signed": index.to_json(),
    }
    return _canonical(envelope)


def index_digest(data: bytes) -> str:
    """Return the SHA-256 (lowercase hex) of a signed index as stored."""
    return hashlib.sha256(data).hexdigest()


def parse_signed_index(
    data: bytes, public_key: bytes, *, limits: IndexLimits = DEFAULT_LIMITS
) -> Index:
    """Decode `data`, check it is canonical and verify its signature; ignore the clock.

    Raises:
        IndexLimitError: `data` or a list in it is over a limit.
        IndexFormatError: `data` is not a canonical, well-formed index.
        IndexVersionError: the index uses another spec version.
        IndexKeyMismatchError: the signature names a key other than `public_key`.
        IndexSignatureError: the signature does not verify.
    """
    if len(data) > limits.max_bytes:
        raise IndexLimitError(f"index: {len(data)} bytes is over the limit of {limits.max_bytes}")
    # specs/distribution.md §3.5: the signature is checked before the JSON is decoded.
    keyid, sig_b64, signed_bytes = _split_envelope(data)
    if not _KEYID_RE.fullmatch(keyid):
        raise IndexFormatError("index: signature keyid is not 64 lowercase hex digits")
    sig = _decode_sig(sig_b64)
    if keyid != key_id(public_key):
        raise IndexKeyMismatchError(
            f"index is signed by key {_fingerprint(keyid)}, "
            f"not by the owner key {_fingerprint(key_id(public_key))}"
        )
    try:
        VerifyKey(public_key).verify(SIGNATURE_CONTEXT + signed_bytes, sig)
    except BadSignatureError:
        raise IndexSignatureError("index signature does not verify under the owner key") from None
    envelope = _decode_canonical(data)
    _exact_keys("index", envelope, {"signature", "signed"})
    return _index_from_json(envelope["signed"], limits)


def check_fresh(index: Index, now: datetime) -> None:
    """Refuse an index at or past its expiry (specs/distribution.md §4 step 4).

    Raises:
        IndexExpiredError: `now` is at or after `index.expires`.
    """
    if now >= index.expires:
        raise IndexExpiredError(
            f"index of {index.name} (version {index.version}) expired at "
            f"{format_time(index.expires)}"
        )


def check_not_rolled_back(
    index: Index, digest: str, trusted_version: int | None, trusted_digest: str | None
) -> None:
    """Refuse an index older than, or different at the same version from, the trusted one.

    Raises:
        IndexRollbackError: `index.version` is lower than the trusted version, or equal
            with a different digest.
    """
    if trusted_version is None:
        return
    if index.version < trusted_version:
        raise IndexRollbackError(
            f"index of {index.name} is version {index.version}, older than version "
            f"{trusted_version} already seen (rollback refused)"
        )
    if index.version == trusted_version and digest != trusted_digest:
        raise IndexRollbackError(
            f"index of {index.name} version {index.version} differs from the one already seen"
        )


def verify_index(
    data: bytes,
    public_key: bytes,
    *,
    name: str,
    now: datetime,
    limits: IndexLimits = DEFAULT_LIMITS,
) -> Index:
    """Verify a fetched index for `name`: format, key, signature, name, expiry.

    Raises:
        IndexLimitError: over a limit.
        IndexFormatError: not a canonical, well-formed index.
        IndexVersionError: another spec version.
        IndexKeyMismatchError: signed by another key.
        IndexSignatureError: bad signature.
        IndexNameMismatchError: the index describes another bundle name.
        IndexExpiredError: past its expiry.
    """
    index = parse_signed_index(data, public_key, limits=limits)
    if index.name != name:
        raise IndexNameMismatchError(f"index fetched for {name} describes {index.name}")
    check_fresh(index, now)
    return index


def expiry_after(now: datetime, lifetime: timedelta) -> datetime:
    """Return `now + lifetime`, truncated to whole seconds as the index stores it."""
    return (now + lifetime).astimezone(UTC).replace(microsecond=0)


# The canonical envelope: keys sorted, so "signature" (keyid, sig) precedes "signed".
_ENVELOPE_HEAD = b'{"signature":{"keyid":"'
_KEYID_LEN, _SIG_B64_LEN = 64, 88
_AFTER_KEYID = b'","sig":"'
_AFTER_SIG = b'"},"signed":'
_SIGNED_AT = len(_ENVELOPE_HEAD) + _KEYID_LEN + len(_AFTER_KEYID) + _SIG_B64_LEN + len(_AFTER_SIG)


def _split_envelope(data: bytes) -> tuple[str, str, bytes]:
    """Cut a canonical envelope into (keyid, sig, signed bytes) without decoding it.

    Raises:
        IndexFormatError: `data` does not have the layout every canonical envelope has.
    """
    sig_at = len(_ENVELOPE_HEAD) + _KEYID_LEN + len(_AFTER_KEYID)
    if (
        not data.startswith(_ENVELOPE_HEAD)
        or data[sig_at - len(_AFTER_KEYID) : sig_at] != _AFTER_KEYID
        or data[_SIGNED_AT - len(_AFTER_SIG) : _SIGNED_AT] != _AFTER_SIG
        or not data.endswith(b"}")
        or len(data) < _SIGNED_AT + 3
    ):
        raise IndexFormatError("index: not in canonical JSON form")
    try:
        keyid = data[len(_ENVELOPE_HEAD) : len(_ENVELOPE_HEAD) + _KEYID_LEN].decode("ascii")
        sig = data[sig_at : sig_at + _SIG_B64_LEN].decode("ascii")
    except UnicodeDecodeError:
        raise IndexFormatError("index: signature fields are not ascii") from None
    return keyid, sig, data[_SIGNED_AT:-1]


def _decode_sig(value: object) -> bytes:
    if not isinstance(value, str):
        raise IndexFormatError("index: signature sig is not a string")
    try:
        sig = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise IndexFormatError("index: signature sig is not base64") from None
    if len(sig) != 64 or base64.b64encode(sig).decode("ascii") != value:
        raise IndexFormatError("index: signature sig is not 64 bytes in canonical base64")
    return sig
