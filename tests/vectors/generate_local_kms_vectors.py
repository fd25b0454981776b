# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/local-kms/: one `Recipient` check per file (specs/local-kms.md §4).

Each file (layout: vectorlib.py): `expect:` (`success`, or `RecipientRejectedError`, which
the front answers as AccessDeniedException), `comment:`, `field:` (the part of the
`Recipient` at fault: algorithm, document, timestamp, public_key), `algorithm:` (the
request's KeyEncryptionAlgorithm), `root:` (pinned root, DER hex), `now:` (the front's
clock), `max age:` / `max skew:` (seconds), on success `image sha384:` (the condition key
the key policy sees, specs/local-kms.md §5.2), a blank line, then the attestation document.
The chain and keys are those of generate_attestation_vectors.py (fixed randomness).
Usage: generate_local_kms_vectors.py [OUT_DIR]
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from generate_attestation_vectors import AT, OTHER_KEY, OTHER_ROOT, PCRS, ROOT, _der, _doc, _payload
from vectorlib import Vector, main, rand, write_all

OUT = Path(__file__).resolve().parent / "local-kms"
MAX_AGE = timedelta(minutes=5)
MAX_SKEW = timedelta(seconds=30)
ALGORITHM = "RSAES_OAEP_SHA_256"


def _rsa_spki(bits: int) -> bytes:
    """A public key of `bits` bits (an odd modulus from test randomness: only its shape matters)."""
    n = int.from_bytes(rand(f"rsa modulus {bits}", bits // 8), "big") | (1 << (bits - 1)) | 1
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _document(public_key: bytes | None) -> bytes:
    return _doc(_payload(public_key=public_key))


RSA_2048 = _rsa_spki(2048)
GOOD = _document(RSA_2048)


def _vector(name: str, field: str | None, comment: str, data: bytes = GOOD, **extra: str) -> Vector:
    fields = {
        "expect": "success" if field is None else "RecipientRejectedError",
        "comment": comment,
        "algorithm": ALGORITHM,
        "root": _der(ROOT).hex(),
        "now": AT.isoformat(),
        "max age": str(int(MAX_AGE.total_seconds())),
        "max skew": str(int(MAX_SKEW.total_seconds())),
    }
    if field is None:
        fields["image sha384"] = PCRS[0].hex()
    else:
        fields["field"] = field
    fields.update({k.replace("_", " "): v for k, v in extra.items()})
    return f"recipient_{name}", fields, data


def vectors() -> list[Vector]:
    ec_spki = OTHER_KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return [
        _vector("ok", None, "a fresh document with an RSA-2048 key"),
        _vector("ok_at_max_age", None, "exactly max_age old still passes",
                now=(AT + MAX_AGE).isoformat()),
        _vector("ok_at_max_skew", None, "exactly max_skew ahead still passes",
                now=(AT - MAX_SKEW).isoformat()),
        _vector("algorithm_sha1", "algorithm", "only RSAES_OAEP_SHA_256 exists",
                algorithm="RSAES_OAEP_SHA_1"),
        _vector("other_root", "document", "the document does not verify under the pinned root",
                root=_der(OTHER_ROOT).hex()),
        _vector("too_old", "timestamp", "one second past max_age",
                now=(AT + MAX_AGE + timedelta(seconds=1)).isoformat()),
        _vector("from_future", "timestamp", "one second past max_skew ahead",
                now=(AT - MAX_SKEW - timedelta(seconds=1)).isoformat()),
        _vector("no_public_key", "public_key", "public_key null", _document(None)),
        _vector("public_key_not_spki", "public_key", "not DER SubjectPublicKeyInfo",
                _document(b"not a key")),
        _vector("public_key_rsa_1024", "public_key", "RSA, but 1024 bits",
                _document(_rsa_spki(1024))),
        _vector("public_key_ec", "public_key", "a P-384 key", _document(ec_spki)),
    ]  # fmt: skip


def generate(out: Path = OUT) -> list[Path]:
    return write_all(out, vectors())


if __name__ == "__main__":
    main(OUT, generate)
