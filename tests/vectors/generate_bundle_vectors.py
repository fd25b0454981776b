# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/bundle/: one scenario per file (specs/bundle-format.md §13).

Each file: `key: value` header lines (`expect:` first), a blank line, raw bundle
bytes. Fixed keys and deterministic "randomness", a fixed fake data key, no KMS:
running this twice gives identical bytes. Usage: generate_bundle_vectors.py [OUT_DIR]
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
from vectorlib import rand

from package_format.bundle.access import AppGrant, DataRule, DataTerms, VersionRange
from package_format.bundle.header import preamble
from package_format.bundle.limits import TAG_SIZE
from package_format.bundle.manifest import Entrypoint, FileEntry, Manifest, OutputPolicy
from package_format.bundle.signing import public_key_of, sign
from package_format.bundle.stream import SegmentSealer, derive_payload_key
from package_format.bundle.writer import build_header

OUT = Path(__file__).resolve().parent / "bundle"
OWNER_SEED = b"TEST OWNER SIGNING KEY, TEST! 01"
OTHER_SEED = b"TEST OTHER SIGNING KEY, TEST! 02"
DATA_KEY = b"TEST DATA KEY, NOT FROM KMS! 001"
OTHER_DATA_KEY = b"TEST DATA KEY, NOT FROM KMS! 002"
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z
SEGMENT = 64


FILES = {
    "app/main.py": b"print('hello from the enclave')\n",
    "app/run.sh": b"#!/bin/sh\nexec python3 app/main.py\n",
    "data/weights.bin": rand("weights", 200),
    "empty.txt": b"",
}


def manifest(files: dict[str, bytes] = FILES, name: str = "vector-app") -> Manifest:
    entries = [FileEntry("app", 0, 0o755, "dir"), FileEntry("data", 0, 0o755, "dir")]
    entries = [e for e in entries if any(p.startswith(e.path + "/") for p in files)]
    for path, data in files.items():
        entries.append(FileEntry(path, len(data), 0o755 if path.endswith(".sh") else 0o644))
    entries.sort(key=lambda e: tuple(e.path.split("/")))
    first = next(p for p in files)
    return Manifest(
        name=name,
        version="1.0.0",
        created=CREATED,
        entrypoints=(Entrypoint(name="main", path=first, runtime="python"),),
        output=OutputPolicy(stdout=True, stderr=False, files=True, max_files_size=1 << 20),
        files=tuple(entries),
        not_before=CREATED,
        expires=CREATED + 365 * 86400,
    )


DATA_FILES = {"data/weights.bin": rand("weights", 200), "empty.txt": b""}


def data_manifest() -> Manifest:
    """A data bundle (§5.7): two files, one app granted, output terms."""
    base = manifest(DATA_FILES, name="vector-data")
    return Manifest(
        name="vector-data",
        version="1.0.0",
        created=CREATED,
        entrypoints=(),
        output=OutputPolicy(),
        files=base.files,
        expires=CREATED + 365 * 86400,
        kind="data",
        apps=(AppGrant("vector-app", (public_key_of(OWNER_SEED),), VersionRange(">=1.0.0, <2.0.0")),),
        terms=DataTerms(stdout=True, stderr=False, max_output_bytes=1 << 20,
                        output_paths=("scores-*.csv",)),
    )  # fmt: skip


def app_with_data() -> Manifest:
    """The vector app with one `[[data]]` rule (§5.7)."""
    rule = DataRule("vector-data", (public_key_of(OTHER_SEED),), VersionRange(">=1.0.0"),
                    "/data/vector-data")  # fmt: skip
    base = manifest()
    return Manifest(
        name=base.name, version=base.version, created=base.created,
        entrypoints=base.entrypoints, output=base.output, files=base.files,
        not_before=base.not_before, expires=base.expires, data=(rule,),
    )  # fmt: skip


def _data_mutated(change: Callable[[dict[str, Any]], None]) -> bytes:
    obj = header_obj(data_manifest())
    change(obj)
    return assemble(obj, DATA_FILES)


def header_obj(
    m: Manifest, data_key: bytes = DATA_KEY, seed: bytes = OWNER_SEED, label: str = "salt"
) -> dict[str, Any]:
    salt = rand(label, 32)
    h = build_header(
        m,
        kms_key_id="arn:aws:kms:us-east-1:111122223333:key/test-vector-key",
        encryption_context={"team": "vectors"},
        wrapped_key=b"WRAPPED:" + hashlib.sha256(data_key).digest(),
        data_key=data_key,
        salt=salt,
        signer=public_key_of(seed),
        segment_size=SEGMENT,
    )
    return h.to_cbor_obj()


def assemble(
    obj: dict[str, Any],
    files: dict[str, bytes] = FILES,
    *,
    data_key: bytes = DATA_KEY,
    seed: bytes = OWNER_SEED,
    encoded: bytes | None = None,
    version_byte: int = 1,
) -> bytes:
    """Encode (or take `encoded`), sign, and seal the payload over `files` in table order."""
    body = encoded if encoded is not None else cbor2.dumps(obj, canonical=True)
    signed = preamble(len(body), version_byte) + body
    payload = b"".join(files[f["path"]] for f in obj["manifest"]["files"] if f["kind"] == "file")
    sealer = SegmentSealer(
        derive_payload_key(data_key, obj["salt"]),
        hashlib.sha256(signed).digest(),
        len(payload),
        obj["segment_size"],
    )
    out = io.BytesIO()
    out.write(signed + sign(signed, seed))
    view = memoryview(payload)
    seg = obj["segment_size"]
    for start in range(0, max(len(payload), 1), seg):
        out.write(bytes(sealer.seal(view[start : start + seg])))
    return out.getvalue()


def good() -> tuple[dict[str, Any], bytes]:
    obj = header_obj(manifest())
    return obj, assemble(obj)


def segment_offset(data: bytes, obj: dict[str, Any], index: int) -> int:
    """Byte offset of sealed segment `index` in a bundle built from `obj`."""
    body = cbor2.dumps(obj, canonical=True)
    return len(preamble(len(body))) + len(body) + 64 + index * (obj["segment_size"] + TAG_SIZE)


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[offset] ^= 1 << bit
    return bytes(b)


Scenario = tuple[str, str, Callable[[], bytes], dict[str, str]]


def _segments(obj: dict[str, Any]) -> int:
    return -(-obj["payload_size"] // obj["segment_size"])


def _swap(data: bytes, obj: dict[str, Any], i: int, j: int) -> bytes:
    seg = obj["segment_size"] + TAG_SIZE
    a, b = segment_offset(data, obj, i), segment_offset(data, obj, j)
    out = bytearray(data)
    out[a : a + seg], out[b : b + seg] = data[b : b + seg], data[a : a + seg]
    return bytes(out)


def _mutated(change: Callable[[dict[str, Any]], None], **kw: Any) -> bytes:
    obj = header_obj(manifest())
    change(obj)
    return assemble(obj, **kw)


def _spliced_key() -> bytes:
    other = header_obj(manifest(), data_key=OTHER_DATA_KEY, label="other salt")
    obj = header_obj(manifest())
    obj["wrapped_key"] = other["wrapped_key"]
    return assemble(obj)  # re-signed by the owner: only the key commitment catches it


def _spliced_payload() -> bytes:
    obj, data = good()
    other = header_obj(manifest(), label="other salt")
    other_data = assemble(other)
    start = segment_offset(data, obj, 0)
    return data[:start] + other_data[segment_offset(other_data, other, 0) :]


def _non_canonical() -> bytes:
    obj = header_obj(manifest())
    body = cbor2.dumps(obj, canonical=True)
    # Same map, keys in reverse order: valid CBOR, not deterministic encoding.
    items = sorted(obj.items(), reverse=True)
    raw = bytes([0xA0 | len(items)]) + b"".join(
        cbor2.dumps(k, canonical=True) + cbor2.dumps(v, canonical=True) for k, v in items
    )
    assert raw != body
    return assemble(obj, encoded=raw)


def scenarios() -> list[Scenario]:
    obj, data = good()
    n = _segments(obj)
    body_len = len(cbor2.dumps(obj, canonical=True))
    sig_at = 10 + body_len
    wk = obj["wrapped_key"]
    wk_at = data.index(wk)
    sd = "SegmentAuthenticationError"
    return [
        ("bundle_ok", "success", lambda: data, {"comment": "four files, two dirs, 64-byte segments"}),
        ("bundle_empty_payload", "success",
         lambda: assemble(header_obj(manifest({"empty.bin": b""})), {"empty.bin": b""}),
         {"comment": "one empty file: a single empty final segment"}),
        ("bundle_exact_segments", "success",
         lambda: assemble(header_obj(manifest({"a.bin": rand("a", 128)})), {"a.bin": rand("a", 128)}),
         {"comment": "payload of exactly two segments; the second carries the last flag"}),
        ("header_bad_magic", "BadMagicError", lambda: b"NBNDX" + data[5:],
         {"comment": "magic changed"}),
        ("header_unsupported_version", "UnsupportedBundleVersionError",
         lambda: data[:5] + b"\x02" + data[6:], {"comment": "preamble version byte 2"}),
        ("header_format_field_2", "UnsupportedBundleVersionError",
         lambda: _mutated(lambda o: o.__setitem__("format", 2)),
         {"comment": "header format field 2, signed"}),
        ("header_bit_flip", "BundleSignatureError", lambda: flip(data, data.index(obj["salt"]) + 4),
         {"comment": "one bit of the header's salt flipped"}),
        ("header_truncated", "TruncatedHeaderError", lambda: data[: 10 + body_len // 2],
         {"comment": "ends inside the header"}),
        ("header_too_large", "BundleLimitError",
         lambda: data[:6] + (17 << 20).to_bytes(4, "big") + data[10:],
         {"comment": "header length 17 MiB, over the 16 MiB limit"}),
        ("header_non_canonical", "HeaderEncodingError", _non_canonical,
         {"comment": "map keys not in deterministic order, signed"}),
        ("header_unknown_field", "HeaderFieldError",
         lambda: _mutated(lambda o: o.__setitem__("extra", 1)),
         {"comment": "unknown header field, signed"}),
        ("header_path_traversal", "UnsafePathError",
         lambda: _mutated(lambda o: o["manifest"]["files"].__setitem__(
             3, {**o["manifest"]["files"][3], "path": "../empty.txt"})),
         {"comment": "file-table path with '..', signed"}),
        ("header_absolute_path", "UnsafePathError",
         lambda: _mutated(lambda o: o["manifest"]["files"].__setitem__(
             3, {**o["manifest"]["files"][3], "path": "/empty.txt"})),
         {"comment": "absolute file-table path, signed"}),
        ("signature_bit_flip", "BundleSignatureError", lambda: flip(data, sig_at + 5),
         {"comment": "one bit of the signature flipped"}),
        ("signature_other_key", "UntrustedSignerError",
         lambda: assemble(header_obj(manifest(), seed=OTHER_SEED), seed=OTHER_SEED),
         {"comment": "well signed, by a key the reader does not trust"}),
        ("signature_key_substituted", "BundleSignatureError",
         lambda: assemble(obj, seed=OTHER_SEED),
         {"comment": "header names the owner key, other key signed"}),
        ("wrapped_key_bit_flip", "BundleSignatureError", lambda: flip(data, wk_at + 3),
         {"comment": "one bit of the wrapped data key flipped"}),
        ("wrapped_key_spliced", "KeyCommitmentError", _spliced_key,
         {"comment": "another bundle's wrapped key, header re-signed by the owner",
          "data key": OTHER_DATA_KEY.hex()}),
        ("segment_first_bit_flip", sd, lambda: flip(data, segment_offset(data, obj, 0) + 7),
         {"comment": "bit flipped in segment 0"}),
        ("segment_middle_bit_flip", sd,
         lambda: flip(data, segment_offset(data, obj, n // 2) + 7),
         {"comment": "bit flipped in a middle segment"}),
        ("segment_last_bit_flip", sd, lambda: flip(data, len(data) - 3),
         {"comment": "bit flipped in the last segment's tag"}),
        ("segment_swapped", "SegmentOrderError", lambda: _swap(data, obj, 0, 1),
         {"comment": "segments 0 and 1 swapped"}),
        ("payload_spliced", sd, _spliced_payload,
         {"comment": "payload of another bundle sealed under the same key (other header)"}),
        ("payload_truncated_at_boundary", "TruncatedPayloadError",
         lambda: data[: segment_offset(data, obj, n - 1)],
         {"comment": "last segment removed"}),
        ("payload_truncated_mid_segment", "TruncatedPayloadError",
         lambda: data[: segment_offset(data, obj, 1) + 10],
         {"comment": "ends inside segment 1"}),
        ("payload_trailing_bytes", "TrailingDataError", lambda: data + b"\x00",
         {"comment": "one byte appended"}),
        ("bundle_data_ok", "success",
         lambda: assemble(header_obj(data_manifest()), DATA_FILES),
         {"comment": "a data bundle (kind data, one [[apps]] grant, terms); context has kind"}),
        ("bundle_app_with_data_rules", "success",
         lambda: assemble(header_obj(app_with_data())),
         {"comment": "an app bundle with one [[data]] rule"}),
        ("header_data_context_without_kind", "HeaderFieldError",
         lambda: _data_mutated(lambda o: o["encryption_context"].pop("kind")),
         {"comment": "data manifest, encryption context lacks kind = data, signed"}),
        ("header_app_context_kind_data", "HeaderFieldError",
         lambda: _mutated(lambda o: o["encryption_context"].__setitem__("kind", "data")),
         {"comment": "app manifest, encryption context says kind = data, signed"}),
        ("header_data_with_entrypoints", "HeaderFieldError",
         lambda: _data_mutated(lambda o: o["manifest"].__setitem__(
             "entrypoints", [{"allow_args": True, "name": "m", "path": "empty.txt",
                              "runtime": "python"}])),
         {"comment": "data manifest with an entrypoint, signed"}),
        ("header_data_without_apps", "HeaderFieldError",
         lambda: _data_mutated(lambda o: o["manifest"].__setitem__("apps", [])),
         {"comment": "data manifest granting no app, signed"}),
        ("header_kind_app_written", "HeaderFieldError",
         lambda: _mutated(lambda o: o["manifest"].__setitem__("kind", "app")),
         {"comment": "kind written for an app (writers omit it), signed"}),
    ]  # fmt: skip


def render(expect: str, data: bytes, extra: dict[str, str]) -> bytes:
    lines = [f"expect: {expect}"]
    lines += [f"comment: {extra['comment']}"]
    lines += [f"owner key: {public_key_of(OWNER_SEED).hex()}"]
    lines += [f"data key: {extra.get('data key', DATA_KEY.hex())}"]
    return ("\n".join(lines) + "\n\n").encode() + data


def generate(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, expect, build, extra in scenarios():
        path = out / name
        path.write_bytes(render(expect, build(), extra))
        written.append(path)
    return written


def parse_vector(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Split a vector file into its header fields and raw bundle bytes."""
    head, _, data = raw.partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in head.decode().splitlines())
    return fields, data


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    for p in generate(target):
        print(p)
