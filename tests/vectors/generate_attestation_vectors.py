# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/attestation/: one document check per file (specs/attestation.md §13).

Each file (layout: vectorlib.py): `expect:` (`success` or the
`package_format.attestation` error class of the first failing step of §5), `comment:`,
`root:` (the pinned root, DER hex), `at:` (the verification time, ISO 8601), on success
`pcr0:` (hex), a blank line, then the document bytes. The chain mirrors AWS's (§8): a P-384
root, one intermediate, a leaf valid 3 hours. Keys come from fixed test randomness and the
signatures are deterministic (RFC 6979), so the files are stable.
Usage: generate_attestation_vectors.py [OUT_DIR]
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from vectorlib import Vector, main, rand, write_all

from package_format.attestation.build import (
    build_ca_certificate,
    build_leaf_certificate,
    encode_payload,
    serial_from,
)
from package_format.attestation.cose import sign_es384

OUT = Path(__file__).resolve().parent / "attestation"
AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TIMESTAMP_MS = int(AT.timestamp() * 1000)
PCRS = {i: rand(f"pcr{i}", 48) for i in (0, 1, 2, 8)}


def _key(label: str) -> ec.EllipticCurvePrivateKey:
    n = int.from_bytes(rand(f"p-384 key {label}", 48), "big") % (2**383) + 1
    return ec.derive_private_key(n, ec.SECP384R1())


ROOT_KEY, INTER_KEY, LEAF_KEY, OTHER_KEY = (_key(x) for x in ("root", "inter", "leaf", "other"))
YEAR = timedelta(days=365)


def _ca(name: str, key: ec.EllipticCurvePrivateKey, issuer: Any, issuer_key: Any) -> x509.Certificate:
    return build_ca_certificate(
        common_name=name, public_key=key.public_key(), issuer=issuer, issuer_key=issuer_key,
        not_before=AT - YEAR, not_after=AT + 10 * YEAR, serial=serial_from(name.encode()),
        path_length=None if issuer is None else 0,
    )  # fmt: skip


ROOT = _ca("vector root", ROOT_KEY, None, ROOT_KEY)
OTHER_ROOT = _ca("vector root", OTHER_KEY, None, OTHER_KEY)
INTER = _ca("vector intermediate", INTER_KEY, ROOT, ROOT_KEY)


def _leaf(issuer_key: ec.EllipticCurvePrivateKey = INTER_KEY) -> x509.Certificate:
    return build_leaf_certificate(
        common_name="i-0123456789abcdef0-enc0123456789abcdef", public_key=LEAF_KEY.public_key(),
        issuer=INTER, issuer_key=issuer_key, not_before=AT - timedelta(hours=1),
        not_after=AT + timedelta(hours=2), serial=serial_from(b"leaf"),
    )  # fmt: skip


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _payload(**change: Any) -> dict[str, Any]:
    fields: dict[str, Any] = cbor2.loads(
        encode_payload(
            module_id="i-0123456789abcdef0-enc0123456789abcdef",
            timestamp_ms=TIMESTAMP_MS,
            pcrs=PCRS,
            certificate=_der(_leaf()),
            cabundle=[_der(ROOT), _der(INTER)],
            public_key=None,
            user_data=b"vector user data",
            nonce=rand("nonce", 20),
        )
    )
    fields.update(change)
    return {k: v for k, v in fields.items() if v is not _DROP}


_DROP = object()


def _doc(payload: dict[str, Any] | None = None, key: ec.EllipticCurvePrivateKey = LEAF_KEY) -> bytes:
    return sign_es384(cbor2.dumps(payload or _payload()), key)


GOOD = _doc()


def _cose(change: Callable[[list[Any]], None]) -> bytes:
    parts = cbor2.loads(GOOD)
    change(parts)
    return cbor2.dumps(parts)


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 1]) + data[offset + 1 :]


def _vector(name: str, expect: str, comment: str, data: bytes, **extra: str) -> Vector:
    fields = {"expect": expect, "comment": comment, "root": _der(ROOT).hex(), "at": AT.isoformat()}
    if expect == "success":
        fields["pcr0"] = PCRS[0].hex()
    fields.update(extra)
    return f"doc_{name}", fields, data


def _set(index: int, value: Any) -> Callable[[list[Any]], None]:
    return lambda parts: parts.__setitem__(index, value)


def vectors() -> list[Vector]:  # noqa: PLR0915 - one line per scenario
    sig_at = len(GOOD) - 10
    other_leaf = build_leaf_certificate(
        common_name="x", public_key=LEAF_KEY.public_key(), issuer=INTER, issuer_key=OTHER_KEY,
        not_before=AT - timedelta(hours=1), not_after=AT + timedelta(hours=2), serial=2,
    )  # fmt: skip
    return [
        _vector("ok", "success", "a document shaped like the NSM's, verified at its time", GOOD),
        _vector("ok_tagged", "success", "the same with COSE tag 18", cbor2.dumps(
            cbor2.CBORTag(18, cbor2.loads(GOOD)))),
        _vector("other_root", "UntrustedRootError", "pinned root is another key",
                GOOD, root=_der(OTHER_ROOT).hex()),
        _vector("before_leaf", "CertificateTimeError", "verified before the leaf's not_before",
                GOOD, at=(AT - timedelta(hours=2)).isoformat()),
        _vector("after_leaf", "CertificateTimeError", "verified after the leaf's 3 hours",
                GOOD, at=(AT + timedelta(hours=3)).isoformat()),
        _vector("signature_bit_flip", "SignatureInvalidError", "one bit of r||s",
                _flip(GOOD, sig_at)),
        _vector("signed_by_other_key", "SignatureInvalidError", "not the leaf's key",
                _doc(key=OTHER_KEY)),
        _vector("leaf_not_from_intermediate", "ChainBrokenError",
                "the leaf names the intermediate but another key signed it",
                _doc(_payload(certificate=_der(other_leaf)))),
        _vector("leaf_is_ca", "CertificateInvalidError", "the intermediate as the leaf",
                _doc(_payload(certificate=_der(INTER), cabundle=[_der(ROOT)]), INTER_KEY)),
        _vector("alg_es256", "UnsupportedAlgorithmError", "protected header alg -7",
                _cose(_set(0, cbor2.dumps({1: -7})))),
        _vector("crit_header", "CoseStructureError", "crit in the protected header",
                _cose(_set(0, cbor2.dumps({1: -35, 2: [1]})))),
        _vector("short_signature", "CoseStructureError", "a 95-byte signature",
                _cose(lambda p: p.__setitem__(3, p[3][:95]))),
        _vector("three_elements", "CoseStructureError", "COSE array of 3",
                _cose(lambda p: p.pop())),
        _vector("trailing_bytes", "CoseStructureError", "a byte after the item", GOOD + b"\x00"),
        _vector("truncated", "CoseStructureError", "the last byte cut", GOOD[:-1]),
        _vector("other_tag", "CoseStructureError", "tag 98 (COSE_Sign) is not accepted",
                cbor2.dumps(cbor2.CBORTag(98, cbor2.loads(GOOD)))),
        _vector("missing_module_id", "FieldError", "a required field absent",
                _doc(_payload(module_id=_DROP))),
        _vector("unknown_field", "FieldError", "a field AWS does not send",
                _doc(_payload(extra=1))),
        _vector("digest_sha256", "FieldError", "digest must be SHA384",
                _doc(_payload(digest="SHA256"))),
        _vector("pcr_47_bytes", "FieldError", "a PCR of 47 bytes",
                _doc(_payload(pcrs={**PCRS, 0: PCRS[0][:47]}))),
        _vector("empty_cabundle", "FieldError", "no root in the bundle",
                _doc(_payload(cabundle=[]))),
        _vector("nonce_too_long", "FieldLimitError", "a 1025-byte nonce",
                _doc(_payload(nonce=bytes(1025)))),
        _vector("33_pcrs", "FieldLimitError", "more than 32 PCRs",
                _doc(_payload(pcrs={i: PCRS[0] for i in range(33)}))),
        _vector("pcr_index_32", "FieldError", "PCR index past 31 (a field rule, §4)",
                _doc(_payload(pcrs={**PCRS, 32: PCRS[0]}))),
    ]  # fmt: skip


def generate(out: Path = OUT) -> list[Path]:
    return write_all(out, vectors())


if __name__ == "__main__":
    main(OUT, generate)
