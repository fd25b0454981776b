# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/index/: one signed-index scenario per file (specs/distribution.md §8).

Each file (layout: vectorlib.py): `expect:` (`success` or the `package_format.index` error
class), `comment:`, `owner key:` (hex), `name:` (the bundle asked for), `now:` (the client's
clock), optional `trusted version:` / `trusted digest:` (the client's trust state, §5.1) and
`install:` (the version asked for, `current` when absent), a blank line, then the index
bytes as fetched. The client runs, in order: verify_index (format, key, signature, name,
expiry), check_not_rolled_back, installable. On success `current:` is the version it gets.

Fixed keys (seed 0x01*32 owner, 0x02*32 other), fixed times. Usage: generate_index_vectors.py [OUT_DIR]
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey
from vectorlib import Vector, main, write_all

from package_format.index import (
    SIGNATURE_CONTEXT,
    FileEntry,
    Index,
    Revocation,
    VersionEntry,
    _canonical,
    format_time,
    index_digest,
    key_id,
    sign_index,
)

OUT = Path(__file__).resolve().parent / "index"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(days=30)
OWNER = SigningKey(b"\x01" * 32)
OTHER = SigningKey(b"\x02" * 32)
PUB = bytes(OWNER.verify_key)


def _entry(ver: str) -> VersionEntry:
    return VersionEntry(
        bundle=FileEntry("demo.nbundle", 1000, "ab" * 32),
        published=NOW,
        image=FileEntry("demo.eif", 2000, "cd" * 32),
        pcrs=FileEntry("demo.eif.pcrs.json", 300, "ef" * 32),
        kms_key_id="arn:aws:kms:us-east-1:111122223333:key/k",
        encryption_context={"bundle": "demo", "version": ver},
    )


def _index(*versions: str, revoked: tuple[str, ...] = ()) -> Index:
    index = Index.empty("demo", LATER)
    for ver in versions:
        index = index.with_version(ver, _entry(ver), expires=LATER)
    for ver in revoked:
        index = index.with_revocation(ver, Revocation("compromised", NOW), expires=LATER)
    return index


GOOD = _index("1.0.0", "1.1.0")
GOOD_BYTES = sign_index(GOOD, bytes(OWNER))


def _signed() -> dict[str, Any]:
    return json.loads(GOOD_BYTES)["signed"]  # type: ignore[no-any-return]


def _envelope(signed: dict[str, Any], key: SigningKey = OWNER, claim: SigningKey = OWNER) -> bytes:
    """Sign any `signed` object with `key`, naming `claim`'s key id (crafts bad indexes)."""
    sig = key.sign(SIGNATURE_CONTEXT + _canonical(signed)).signature
    env = {
        "signature": {"keyid": key_id(bytes(claim.verify_key)), "sig": base64.b64encode(sig).decode()},
        "signed": signed,
    }
    return _canonical(env)


def _with(**change: Any) -> dict[str, Any]:
    signed = _signed()
    signed.update(change)
    return signed


def _vector(file: str, expect: str, comment: str, data: bytes, **extra: str) -> Vector:
    fields = {"expect": expect, "comment": comment, "owner key": PUB.hex(), "name": "demo"}
    fields["now"] = format_time(NOW)
    fields.update({k.replace("_", " "): v for k, v in extra.items()})
    return file, fields, data


def _non_canonical() -> bytes:
    signed = json.dumps(_signed(), sort_keys=True).encode()  # ", " and ": " separators
    sig = OWNER.sign(SIGNATURE_CONTEXT + signed).signature
    head = {"keyid": key_id(PUB), "sig": base64.b64encode(sig).decode()}
    return b'{"signature":' + _canonical(head) + b',"signed":' + signed + b"}"


def _tampered() -> bytes:
    return GOOD_BYTES.replace(b'"size":1000', b'"size":1001')


def _unknown_field() -> dict[str, Any]:
    signed = _signed()
    signed["versions"]["1.0.0"]["extra"] = 1
    return signed


def vectors() -> list[Vector]:
    digest = index_digest(GOOD_BYTES)
    later = format_time(LATER)
    return [
        _vector("index_ok", "success", "two versions, the newest current", GOOD_BYTES,
                current="1.1.0"),
        _vector("index_ok_install_older", "success", "an older version asked for", GOOD_BYTES,
                install="1.0.0", current="1.0.0"),
        _vector("index_ok_same_as_trusted", "success", "the trusted version again, same bytes",
                GOOD_BYTES, trusted_version="3", trusted_digest=digest, current="1.1.0"),
        _vector("index_ok_backport_not_current", "success", "1.4.1 after 2.0.0 stays behind",
                sign_index(_index("1.4.0", "2.0.0", "1.4.1"), bytes(OWNER)), current="2.0.0"),
        _vector("index_ok_release_over_rc", "success", "a release candidate never displaces a "
                "release", sign_index(_index("1.0.0", "2.0.0-rc.1"), bytes(OWNER)),
                current="1.0.0"),
        _vector("index_other_key", "IndexKeyMismatchError", "signed and named by another key",
                _envelope(_signed(), OTHER, OTHER)),
        _vector("index_keyid_claims_owner", "IndexSignatureError",
                "names the owner's key id, signed by another key",
                _envelope(_signed(), OTHER, OWNER)),
        _vector("index_tampered", "IndexSignatureError", "a size changed after signing",
                _tampered()),
        _vector("index_expired", "IndexExpiredError", "now is the expiry", GOOD_BYTES,
                now=later),
        _vector("index_other_name", "IndexNameMismatchError", "asked for another bundle",
                GOOD_BYTES, name="other"),
        _vector("index_rollback", "IndexRollbackError", "older than the trusted version",
                GOOD_BYTES, trusted_version="4", trusted_digest="00" * 32),
        _vector("index_same_version_other_bytes", "IndexRollbackError",
                "the trusted version number with other bytes", GOOD_BYTES,
                trusted_version="3", trusted_digest="00" * 32),
        _vector("index_wrong_current", "IndexFormatError", "current names a lower version",
                _envelope(_with(current="1.0.0"))),
        _vector("index_unknown_field", "IndexFormatError", "an unknown field in an entry",
                _envelope(_unknown_field())),
        _vector("index_spec_version_2", "IndexVersionError", "spec_version 2",
                _envelope(_with(spec_version=2))),
        _vector("index_spec_version_true", "IndexFormatError", "true is not 1",
                _envelope(_with(spec_version=True))),
        _vector("index_non_canonical", "IndexFormatError",
                "signed bytes with spaces, correctly signed: decoded, then refused",
                _non_canonical()),
        _vector("index_space_before_signed", "IndexSignatureError",
                "a space before the signed bytes: the signature is over other bytes",
                GOOD_BYTES.replace(b'"signed":{', b'"signed": {')),
        _vector("index_not_json", "IndexFormatError", "not an index at all", b"hello"),
        _vector("index_integer_too_long", "IndexLimitError", "a 26-digit index version",
                _envelope(_with(version=10**25))),
        _vector("index_revoked_version", "VersionRevokedError", "the asked version is revoked",
                sign_index(_index("1.0.0", "1.1.0", revoked=("1.0.0",)), bytes(OWNER)),
                install="1.0.0"),
        _vector("index_version_not_found", "VersionNotFoundError", "not listed", GOOD_BYTES,
                install="9.9.9"),
        _vector("index_nothing_current", "VersionNotFoundError", "every version revoked",
                sign_index(_index("1.0.0", revoked=("1.0.0",)), bytes(OWNER))),
    ]  # fmt: skip


def generate(out: Path = OUT) -> list[Path]:
    return write_all(out, vectors())


if __name__ == "__main__":
    main(OUT, generate)
