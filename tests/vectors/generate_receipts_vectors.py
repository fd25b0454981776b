# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/receipts/: one receipt scenario per file (specs/receipts.md §8).

Each file: `key: value` header lines, a blank line, then the raw `receipt.cbor` bytes.

- `expect:` `ok` or the failing step (`format`, `document`, `pcr`, `record`, `nonce`,
  `output`, `input`), each one typed error class of package_format.receipt;
- `comment:` what the case shows;
- `root:` the pinned root certificate (DER, hex);
- `pcr0:` the PCR0 the verifier expects (hex);
- `nonce:` the nonce the verifier gives (hex), or `none`;
- `output PATH:` / `input PATH:` a file the verifier finds (content in hex), PATH as the
  record names it (`output/...`, `dataset/...`).

Fixed keys (derived from constant scalars), fixed times and RFC 6979 signatures make every
byte reproducible: `make vectors` regenerates and CI checks `git diff --exit-code`.
Usage: generate_receipts_vectors.py [OUT_DIR]
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from package_format.attestation import (
    build_ca_certificate,
    build_document,
    build_leaf_certificate,
)
from package_format.receipt import (
    FileDigest,
    RecordBundle,
    RecordTerms,
    RunRecord,
    encode_receipt,
)

OUT = Path(__file__).resolve().parent / "receipts"
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
PCR0 = hashlib.sha384(b"TEST IMAGE").digest()
OTHER_PCR0 = hashlib.sha384(b"ANOTHER IMAGE").digest()
NONCE = bytes.fromhex("00112233445566778899aabbccddeeff")
OUTPUTS = {"output/metrics.json": b'{"rows": 169}\n', "output/plots/roc.txt": b"0.97\n"}
INPUTS = {"dataset/patients.csv": b"age,bp\n61,140\n", "model/weights.bin": bytes(range(64))}


def _key(scalar: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar, ec.SECP384R1())


@dataclass(frozen=True)
class Pki:
    """A root, an intermediate and their keys: the simulator's shape, reproducible."""

    root_der: bytes
    inter_der: bytes
    inter: object
    inter_key: ec.EllipticCurvePrivateKey


def make_pki(seed: int) -> Pki:
    root_key, inter_key = _key(seed), _key(seed + 1)
    root = build_ca_certificate(
        common_name=f"test root {seed}", public_key=root_key.public_key(), issuer=None,
        issuer_key=root_key, not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=3650), serial=seed, path_length=None, deterministic=True,
    )  # fmt: skip
    inter = build_ca_certificate(
        common_name=f"test intermediate {seed}", public_key=inter_key.public_key(),
        issuer=root, issuer_key=root_key, not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=365), serial=seed + 1, path_length=0, deterministic=True,
    )  # fmt: skip
    der = Encoding.DER
    return Pki(root.public_bytes(der), inter.public_bytes(der), inter, inter_key)


PKI = make_pki(0x5EED_0001)
OTHER_PKI = make_pki(0x5EED_0101)


def document(pki: Pki, user_data: bytes, nonce: bytes | None, pcr0: bytes = PCR0) -> bytes:
    """A document as the NSM gives it, signed by a fixed leaf of `pki`."""
    from cryptography import x509

    leaf_key = _key(0x1EAF)
    assert isinstance(pki.inter, x509.Certificate)
    leaf = build_leaf_certificate(
        common_name="i-0123456789abcdef0-enc0123456789abcdef.test", public_key=leaf_key.public_key(),
        issuer=pki.inter, issuer_key=pki.inter_key, not_before=NOW - timedelta(minutes=5),
        not_after=NOW + timedelta(hours=3), serial=0x1EAF, deterministic=True,
    )  # fmt: skip
    pcrs = dict.fromkeys(range(16), bytes(48))
    pcrs[0], pcrs[1], pcrs[2] = (
        pcr0,
        hashlib.sha384(b"pcr1").digest(),
        hashlib.sha384(b"pcr2").digest(),
    )
    return build_document(
        signing_key=leaf_key, module_id="i-0123456789abcdef0-enc0123456789abcdef",
        timestamp_ms=int(NOW.timestamp() * 1000), pcrs=pcrs,
        certificate=leaf.public_bytes(Encoding.DER), cabundle=[pki.root_der, pki.inter_der],
        user_data=user_data, nonce=nonce, deterministic=True,
    )  # fmt: skip


def _files(files: dict[str, bytes]) -> tuple[FileDigest, ...]:
    return tuple(FileDigest(p, hashlib.sha256(c).digest(), len(c)) for p, c in files.items())


def record(nonce: bytes | None = None, **changes: object) -> RunRecord:
    base = RunRecord(
        bundles=(
            RecordBundle(
                role="app", name="ml-app", version="1.2.0",
                digest=hashlib.sha256(b"bundle").digest(),
                manifest_digest=hashlib.sha256(b"manifest").digest(), signer=bytes(range(32)),
            ),
        ),
        entrypoint="ml_algorithm.py", args=("-d", "/dataset/"), env=("THREADS=2",), nonce=nonce,
        inputs=_files(INPUTS), outputs=_files(OUTPUTS),
        stdout=hashlib.sha256(b"[ml_algorithm] scored 169 rows\n").digest(),
        stderr=hashlib.sha256(b"").digest(), exit_status=0,
        started=int(NOW.timestamp() * 1000) - 2000, ended=int(NOW.timestamp() * 1000) - 100,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def receipt(rec: RunRecord, *, pki: Pki = PKI, pcr0: bytes = PCR0) -> bytes:
    raw = rec.encode()
    return encode_receipt(raw, document(pki, hashlib.sha384(raw).digest(), rec.nonce, pcr0))


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@dataclass
class Case:
    expect: str
    comment: str
    receipt: bytes
    pcr0: bytes = PCR0
    nonce: bytes | None = None
    root: bytes = PKI.root_der
    outputs: dict[str, bytes] = field(default_factory=lambda: dict(OUTPUTS))
    inputs: dict[str, bytes] = field(default_factory=lambda: dict(INPUTS))

    def text(self) -> bytes:
        lines = [
            f"expect: {self.expect}",
            f"comment: {self.comment}",
            f"root: {self.root.hex()}",
            f"pcr0: {self.pcr0.hex()}",
            f"nonce: {'none' if self.nonce is None else self.nonce.hex()}",
        ]
        lines += [f"output {p}: {c.hex()}" for p, c in sorted(self.outputs.items())]
        lines += [f"input {p}: {c.hex()}" for p, c in sorted(self.inputs.items())]
        return ("\n".join(lines) + "\n\n").encode() + self.receipt


def _resigned_record(raw: bytes) -> bytes:
    """A receipt whose (non-canonical) record bytes the document does sign."""
    return encode_receipt(raw, document(PKI, hashlib.sha384(raw).digest(), None))


def cases() -> dict[str, Case]:
    good = receipt(record())
    data_run = record(
        bundles=(
            *record().bundles,
            RecordBundle(
                "data",
                "patients",
                "3.0.0",
                hashlib.sha256(b"data").digest(),
                hashlib.sha256(b"data manifest").digest(),
                bytes(32),
                "/data/patients",
            ),
        ),
        terms=RecordTerms(
            max_output_bytes=1 << 20,
            stdout=True,
            stderr=False,
            output_paths=("metrics.json", "plots/*"),
        ),
    )
    raw = record().encode()
    loose = b"\xb9\x00" + bytes([raw[0] & 0x1F]) + raw[1:]  # map head in 3 bytes: not canonical
    return {
        "receipt_ok": Case("ok", "a receipt and the files it names", good),
        "receipt_ok_nonce": Case(
            "ok", "bound to the user's nonce", receipt(record(NONCE)), nonce=NONCE
        ),
        "receipt_ok_data_bundle_terms": Case(
            "ok", "a run with a data bundle and output terms (issue 22)", receipt(data_run)
        ),
        "receipt_output_flipped": Case(
            "output",
            "one byte of an output differs",
            good,
            outputs={**OUTPUTS, "output/metrics.json": _flip(OUTPUTS["output/metrics.json"], 3)},
        ),
        "receipt_output_missing": Case(
            "output",
            "an output the record names is absent",
            good,
            outputs={"output/metrics.json": OUTPUTS["output/metrics.json"]},
        ),
        "receipt_input_flipped": Case(
            "input",
            "one byte of an input differs",
            good,
            inputs={**INPUTS, "model/weights.bin": _flip(INPUTS["model/weights.bin"], 10)},
        ),
        "receipt_record_flipped": Case(
            "record",
            "one byte of the record differs from what the document signs",
            encode_receipt(_flip(raw, raw.index(b"ml-app") + 1), _doc(good)),
        ),
        "receipt_document_flipped": Case(
            "document",
            "one byte of the document's signature differs",
            good[:-5] + _flip(good[-5:], 0),
        ),
        "receipt_document_other_root": Case(
            "document",
            "signed under a root other than the pinned one",
            receipt(record(), pki=OTHER_PKI),
        ),
        "receipt_pcr_other_image": Case(
            "pcr", "the enclave ran another image (PCR0)", receipt(record(), pcr0=OTHER_PCR0)
        ),
        "receipt_nonce_replay": Case(
            "nonce",
            "a receipt replayed for another nonce",
            receipt(record(NONCE)),
            nonce=bytes(16),
        ),
        "receipt_nonce_missing": Case(
            "nonce", "a receipt without a nonce when one was asked for", good, nonce=NONCE
        ),
        "receipt_not_canonical": Case(
            "format",
            "the receipt map's head is not in its shortest form",
            b"\xb9\x00\x03" + good[1:],
        ),
        "receipt_record_not_canonical": Case(
            "format", "a signed record that is not canonical cbor", _resigned_record(loose)
        ),
    }


def _doc(data: bytes) -> bytes:
    from package_format.receipt import parse_receipt

    return parse_receipt(data).document


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    for name, case in cases().items():
        (out / name).write_bytes(case.text())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
