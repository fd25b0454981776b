# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Mutation fuzzing of the attestation parser/verifier from the real vectors (must-show 5).

A fixed seed makes the run reproducible. Every mutated input must either verify
(a mutation can be a no-op) or raise an `AttestationError`; any other
exception fails the test, and pytest-timeout catches a hang.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import cbor2
import pytest
from fuzz_mutations import mutate

from package_format.attestation.document import parse_document
from package_format.attestation.errors import AttestationError
from package_format.attestation.verify import verify_attestation

SEED = 20261126
BYTE_MUTATIONS_PER_VECTOR = 1600
STRUCTURED_MUTATIONS_PER_VECTOR = 400


VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "aws" / "attestation"


@pytest.fixture(scope="module")
def corpus():
    names = [
        "nitrite_pr2_d2d8010.cose",
        "tkhq_qos_mock_attestation_doc.cose",
        "evervault_beta_valid-attestation-doc-bytes.cose",
        "evervault_beta_debug-mode-attestation-doc-bytes.cose",
        "evervault_valid-attestation-doc.cose",
    ]
    docs = [(VECTORS / n).read_bytes() for n in names]
    assert len(docs) == 5
    return docs


@pytest.fixture(scope="module")
def root():
    return (VECTORS / "aws_nitro_root_g1.pem").read_bytes()


def _run(data: bytes, root: bytes, at, outcomes: Counter) -> None:
    try:
        verify_attestation(data, root=root, at=at)
    except AttestationError as exc:
        outcomes[type(exc).__name__] += 1
    else:
        outcomes["verified"] += 1


def _structured(rng: random.Random, doc: bytes) -> bytes:
    """Mutate one payload field or header item, keep the CBOR well-formed."""
    parts = cbor2.loads(doc)
    fields = cbor2.loads(parts[2])
    choice = rng.randrange(8)
    junk = [
        None,
        0,
        -1,
        2**64,
        "x",
        b"",
        b"\x00" * rng.choice([1, 47, 48, 49, 1025]),
        [],
        {},
        1.5,
        True,
    ]
    if choice == 0:
        fields[rng.choice(list(fields))] = rng.choice(junk)
    elif choice == 1:
        del fields[rng.choice(list(fields))]
    elif choice == 2:
        fields["pcrs"] = {rng.choice([-1, 0, 15, 31, 32, 2**40]): rng.choice(junk)}
    elif choice == 3:
        bundle = list(fields["cabundle"])
        rng.shuffle(bundle)
        fields["cabundle"] = bundle
    elif choice == 4:
        fields["cabundle"] = [*fields["cabundle"], fields["certificate"]]
    elif choice == 5:
        parts[0] = cbor2.dumps(rng.choice([{1: -7}, {1: -35, 4: b"kid"}, {}, [], {1: "-35"}]))
    elif choice == 6:
        parts[1] = rng.choice([{1: -35}, [], None, {"x": 1}])
    else:
        fields["timestamp"] = rng.choice([0, 1, 2**63, 2**64 - 1, -5, "1"])
    parts[2] = cbor2.dumps(fields)
    return cbor2.dumps(rng.choice([parts, cbor2.CBORTag(18, parts), cbor2.CBORTag(17, parts)]))


@pytest.mark.timeout(300)
def test_attestation_mutations_raise_only_typed_errors(corpus, root):
    rng = random.Random(SEED)
    outcomes: Counter = Counter()
    total = 0
    for doc in corpus:
        at = parse_document(doc)[1].timestamp
        for _ in range(BYTE_MUTATIONS_PER_VECTOR):
            _run(mutate(rng, doc), root, at, outcomes)
            total += 1
        for _ in range(STRUCTURED_MUTATIONS_PER_VECTOR):
            _run(_structured(rng, doc), root, at, outcomes)
            total += 1
    assert total == len(corpus) * (BYTE_MUTATIONS_PER_VECTOR + STRUCTURED_MUTATIONS_PER_VECTOR)
    assert total >= 10_000

    # The mutations reach every stage, not just the CBOR decoder.
    for stage in ("CoseStructureError", "FieldError", "SignatureInvalidError", "ChainBrokenError"):
        assert outcomes[stage] > 0, outcomes
