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
from fuzz_mutations import mutate

from package_format.cms.build import build_enveloped_data
from package_format.cms.envelope import open_envelope, parse_envelope
from package_format.cms.errors import CmsError

SEED = 5652
MUTATIONS_PER_SEED = 1400
VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "aws" / "kms-cms"


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
