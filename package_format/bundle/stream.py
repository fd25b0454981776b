# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""STREAM sealing of the payload with AES-256-GCM (specs/bundle-format.md §7).

Segment i (0-based) of n carries min(segment_size, rest) plaintext bytes plus a
16-byte tag; nonce = uint88be(i) || (0x01 if i == n-1 else 0x00); AAD = SHA-256
of the signed header bytes. Keys come from HKDF-SHA256(data key, salt) with
distinct labels, one for the payload key and one for the key commitment.
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from package_format.bundle.errors import (
    KeyCommitmentError,
    SegmentAuthenticationError,
    SegmentOrderError,
)
from package_format.bundle.limits import (
    COMMITMENT_INFO,
    DATA_KEY_SIZE,
    PAYLOAD_KEY_INFO,
    SALT_SIZE,
    TAG_SIZE,
)

MAX_COUNTER = (1 << 88) - 1
# On a failed tag, how far from its place we look for a moved segment (§7.3, §8): at most
# 2 * radius + 2 extra decryptions per failed segment (neighbours, own place with the other
# last-segment flag, the final place), so one flipped bit costs a handful, not thousands.
ORDER_PROBE_RADIUS = 4
MAX_ORDER_PROBES = 2 * ORDER_PROBE_RADIUS + 2


def _hkdf(data_key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(data_key)


def derive_payload_key(data_key: bytes, salt: bytes) -> bytes:
    """Return the AES-256-GCM payload key: HKDF-SHA256(data key, salt, label) (§7.1).

    Raises:
        ValueError: The data key or salt has the wrong size.
    """
    if len(data_key) != DATA_KEY_SIZE or len(salt) != SALT_SIZE:
        raise ValueError("data key and salt must be 32 bytes each")
    return _hkdf(data_key, salt, PAYLOAD_KEY_INFO)


def key_commitment(data_key: bytes, salt: bytes) -> bytes:
    """Return the 32-byte key commitment stored in the header (§7.2).

    Raises:
        ValueError: The data key or salt has the wrong size.
    """
    if len(data_key) != DATA_KEY_SIZE or len(salt) != SALT_SIZE:
        raise ValueError("data key and salt must be 32 bytes each")
    return _hkdf(data_key, salt, COMMITMENT_INFO)


def check_commitment(data_key: bytes, salt: bytes, commitment: bytes) -> None:
    """Compare the data key's commitment with the header's, in constant time (§7.2).

    Raises:
        KeyCommitmentError: The key does not match (wrong key, or a spliced wrapped key).
    """
    if len(data_key) != DATA_KEY_SIZE:
        raise KeyCommitmentError("bundle: data key must be 32 bytes")
    if not hmac.compare_digest(key_commitment(data_key, salt), commitment):
        raise KeyCommitmentError("bundle: data key does not match the header's key commitment")


def segment_count(payload_size: int, segment_size: int) -> int:
    """Return the number of segments: ceil(size / segment size), at least 1 (§7.3)."""
    return max(1, -(-payload_size // segment_size))


def nonce(counter: int, last: bool) -> bytes:
    """Return the 12-byte nonce of segment `counter` (§7.3)."""
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class SegmentSealer:
    """Encrypts segments in order into a ring of `buffers` reusable output buffers."""

    def __init__(
        self,
        payload_key: bytes,
        aad: bytes,
        payload_size: int,
        segment_size: int,
        buffers: int = 1,
    ) -> None:
        self._aead = AESGCM(payload_key)
        self._aad = aad
        self._count = segment_count(payload_size, segment_size)
        self._next = 0
        self._outs = [bytearray(segment_size + TAG_SIZE) for _ in range(max(1, buffers))]

    def seal(self, plaintext: memoryview) -> memoryview:
        """Encrypt the next segment; the result is valid until `buffers` more calls.

        Raises:
            ValueError: More segments than the header declares.
        """
        counter = self._next
        if counter >= self._count:
            raise ValueError("more segments than the header declares")
        self._next += 1
        size = len(plaintext) + TAG_SIZE
        out = memoryview(self._outs[counter % len(self._outs)])[:size]
        self._aead.encrypt_into(
            nonce(counter, counter == self._count - 1), plaintext, self._aad, out
        )
        return out


class SegmentOpener:
    """Decrypts segments into one reusable buffer, or into a caller's buffer.

    `open_into` may be called from several threads at once (any segment, any order).
    """

    def __init__(
        self, payload_key: bytes, aad: bytes, payload_size: int, segment_size: int
    ) -> None:
        self._aead = AESGCM(payload_key)
        self._aad = aad
        self.count = segment_count(payload_size, segment_size)
        self._out = bytearray(segment_size)

    def open(self, counter: int, sealed: memoryview) -> memoryview:
        """Decrypt segment `counter`; the result is valid until the next call.

        Raises:
            SegmentOrderError: The segment is authentic for another position.
            SegmentAuthenticationError: The segment fails authentication.
        """
        out = memoryview(self._out)[: len(sealed) - TAG_SIZE]
        self.open_into(counter, sealed, out)
        return out

    def open_into(self, counter: int, sealed: memoryview, out: memoryview) -> None:
        """Decrypt segment `counter` into `out` (exactly `len(sealed) - 16` bytes).

        On failure `out` holds unauthenticated bytes: the caller MUST NOT use them.

        Raises:
            SegmentOrderError: The segment is authentic for another position.
            SegmentAuthenticationError: The segment fails authentication.
        """
        last = counter == self.count - 1
        try:
            self._aead.decrypt_into(nonce(counter, last), sealed, self._aad, out)
        except InvalidTag:
            self._diagnose(counter, sealed, out)
            raise SegmentAuthenticationError(
                f"payload: segment {counter} failed authentication"
            ) from None

    def _diagnose(self, counter: int, sealed: memoryview, out: memoryview) -> None:
        """Raise SegmentOrderError when the segment opens at another (position, flag).

        Bounded: at most MAX_ORDER_PROBES decryptions (§8); a segment moved further away
        is reported as failing authentication, which it also does.
        """
        final = self.count - 1
        lo, hi = max(0, counter - ORDER_PROBE_RADIUS), min(final, counter + ORDER_PROBE_RADIUS)
        probes = [(other, other == final) for other in range(lo, hi + 1) if other != counter]
        probes.append((counter, counter != final))
        if hi < final:
            probes.append((final, True))
        for other, last in probes:
            try:
                self._aead.decrypt_into(nonce(other, last), sealed, self._aad, out)
            except InvalidTag:
                continue
            where = "the final segment" if last else f"segment {other}"
            raise SegmentOrderError(
                f"payload: segment {counter} is authentic but belongs at {where}"
                if other != counter
                else f"payload: segment {counter} has the wrong last-segment flag"
            )
