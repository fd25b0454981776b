# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Mutation fuzzing of the CMS envelope parser and opener (must-show 5).

Seeds: the two real KMS samples (parse only: no private key exists) and an
envelope built for a test key (parse and open). Only `CmsError`s may come out.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from package_format.cms.build import build_enveloped_data
from package_format.cms.envelope import open_envelope, parse_envelope
from package_format.cms.errors import CmsError

SEED = 5652
MUTATIONS_PER_SEED = 1400
VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "aws" / "kms-cms"


_INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0x9F, 0xBF, 0xFF, 0x18, 0x19, 0x1A, 0x1B, 0x5F, 0x7B]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Return `data` with one to four random byte-level mutations."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8)
        pos = rng.randrange(len(out)) if out else 0
        if kind == 0 and out:
            out[pos] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:
            out[pos] = rng.choice(_INTERESTING)
        elif kind == 2:
            del out[pos : pos + rng.randint(1, 64)]
        elif kind == 3:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 4:
            out = out[: rng.randrange(len(out) + 1)]
        elif kind == 5 and out:
            start = rng.randrange(len(out))
            chunk = out[start : start + rng.randint(1, 128)]
            out[pos:pos] = chunk
        elif kind == 6 and out:
            out[pos] = (out[pos] + rng.choice([-1, 1])) % 256
        elif out:
            # Length-field style mutation: big values in a 4-byte window.
            out[pos : pos + 4] = rng.choice(
                [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"]
            )
    return bytes(out)


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def seeds(key):
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    built = build_enveloped_data(
        bytes(range(32)), recipient_public_key_der=spki, content_key=b"k" * 32, iv=b"v" * 16
    )
    real = [(VECTORS / n).read_bytes() for n in sorted(p.name for p in VECTORS.glob("*.der"))]
    assert len(real) == 2
    return [*real, built]


@pytest.mark.timeout(300)
def test_cms_mutations_raise_only_typed_errors(seeds, key):
    rng = random.Random(SEED)
    outcomes: Counter = Counter()
    total = 0
    for index, seed in enumerate(seeds):
        can_open = index == len(seeds) - 1
        for _ in range(MUTATIONS_PER_SEED):
            data = mutate(rng, seed)
            total += 1
            try:
                if can_open:
                    open_envelope(data, key)
                else:
                    parse_envelope(data)
            except CmsError as exc:
                outcomes[type(exc).__name__] += 1
            else:
                outcomes["accepted"] += 1
    assert total == 3 * MUTATIONS_PER_SEED >= 4000
    for kind in ("CmsFormatError", "CmsUnsupportedError", "CmsDecryptError"):
        assert outcomes[kind] > 0, outcomes
