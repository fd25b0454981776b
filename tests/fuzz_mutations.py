# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The byte-level mutator shared by the parser fuzz tests (attestation, CMS, tests/fuzz/)."""

from __future__ import annotations

import random

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
