# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The signed index (specs/distribution.md §3): encoding, signature, expiry, rollback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from package_format.errors import FormatError
from package_format.index import (
    FileEntry,
    Index,
    IndexExpiredError,
    IndexFormatError,
    IndexKeyMismatchError,
    IndexLimitError,
    IndexLimits,
    IndexNameMismatchError,
    IndexRollbackError,
    IndexSignatureError,
    IndexVersionError,
    Revocation,
    S3Location,
    VersionEntry,
    VersionNotFoundError,
    VersionRevokedError,
    check_not_rolled_back,
    index_digest,
    key_id,
    parse_signed_index,
    sign_index,
    verify_index,
    version_key,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(days=30)
OWNER = SigningKey(b"\x01" * 32)
OTHER = SigningKey(b"\x02" * 32)
PUB = bytes(OWNER.verify_key)


def _entry(digit: str = "a", size: int = 10) -> VersionEntry:
    return VersionEntry(
        bundle=FileEntry("demo.nbundle", size, digit * 64),
        published=NOW,
        kms_key_id="arn:aws:kms:us-east-1:111122223333:key/k",
        encryption_context={"bundle": "demo", "version": "1.0.0"},
    )


def _index(*versions: str) -> Index:
    index = Index.empty("demo", LATER)
    for ver in versions:
        index = index.with_version(ver, _entry(), expires=LATER)
    return index


def _resign(signed: dict, key: SigningKey = OWNER) -> bytes:
    """Sign an arbitrary `signed` object the way sign_index does (to craft bad indexes)."""
    import base64

    from package_format.index import SIGNATURE_CONTEXT, _canonical

    sig = key.sign(SIGNATURE_CONTEXT + _canonical(signed)).signature
    env = {
        "signature": {
            "keyid": key_id(bytes(key.verify_key)),
            "sig": base64.b64encode(sig).decode(),
        },
        "signed": signed,
    }
    return _canonical(env)


def test_round_trip_is_exact() -> None:
    index = _index("1.0.0", "1.1.0")
    data = sign_index(index, bytes(OWNER))
    parsed = verify_index(data, PUB, name="demo", now=NOW)
    assert parsed == index
    assert sign_index(parsed, bytes(OWNER)) == data
    assert parsed.version == 3
    assert parsed.current == "1.1.0"


def test_known_vector_is_stable() -> None:
    data = sign_index(_index("1.0.0"), bytes(OWNER))
    assert data.startswith(b'{"signature":{"keyid":"' + key_id(PUB).encode())
    assert b'"signed":{"current":"1.0.0","expires":"2026-01-31T00:00:00Z","name":"demo"' in data
    assert index_digest(data) == index_digest(sign_index(_index("1.0.0"), bytes(OWNER)))


def test_index_signed_by_other_key_refused() -> None:
    data = sign_index(_index("1.0.0"), bytes(OTHER))
    with pytest.raises(IndexKeyMismatchError):
        verify_index(data, PUB, name="demo", now=NOW)


def test_signature_claiming_owner_keyid_but_made_by_other_key_refused() -> None:
    env = json.loads(sign_index(_index("1.0.0"), bytes(OTHER)))
    env["signature"]["keyid"] = key_id(PUB)
    from package_format.index import _canonical

    with pytest.raises(IndexSignatureError):
        verify_index(_canonical(env), PUB, name="demo", now=NOW)


def test_tampered_signed_field_refused() -> None:
    data = sign_index(_index("1.0.0"), bytes(OWNER))
    tampered = data.replace(b'"size":10', b'"size":11')
    assert tampered != data
    with pytest.raises(IndexSignatureError):
        verify_index(tampered, PUB, name="demo", now=NOW)


def test_expired_index_refused() -> None:
    data = sign_index(_index("1.0.0"), bytes(OWNER))
    with pytest.raises(IndexExpiredError):
        verify_index(data, PUB, name="demo", now=LATER)
    # The owner may still read it, to publish the next version.
    assert parse_signed_index(data, PUB).version == 2


def test_index_for_other_name_refused() -> None:
    data = sign_index(_index("1.0.0"), bytes(OWNER))
    with pytest.raises(IndexNameMismatchError):
        verify_index(data, PUB, name="other", now=NOW)


def test_rollback_refused() -> None:
    old, new = _index("1.0.0"), _index("1.0.0", "1.1.0")
    old_digest = index_digest(sign_index(old, bytes(OWNER)))
    new_digest = index_digest(sign_index(new, bytes(OWNER)))
    check_not_rolled_back(new, new_digest, old.version, old_digest)
    check_not_rolled_back(new, new_digest, new.version, new_digest)
    with pytest.raises(IndexRollbackError):
        check_not_rolled_back(old, old_digest, new.version, new_digest)


def test_same_version_different_content_refused() -> None:
    index = _index("1.0.0")
    with pytest.raises(IndexRollbackError):
        check_not_rolled_back(index, "b" * 64, index.version, "c" * 64)


def test_revoked_version_not_installable_and_not_current() -> None:
    index = _index("1.0.0", "1.1.0")
    index = index.with_revocation("1.1.0", Revocation("key leak", NOW), expires=LATER)
    assert index.current == "1.0.0"
    assert index.installable(None)[0] == "1.0.0"
    with pytest.raises(VersionRevokedError):
        index.installable("1.1.0")
    with pytest.raises(VersionNotFoundError):
        index.installable("9.9.9")
    data = sign_index(index, bytes(OWNER))
    assert verify_index(data, PUB, name="demo", now=NOW).versions["1.1.0"].revoked == Revocation(
        "key leak", NOW
    )


def test_all_revoked_has_no_current() -> None:
    index = _index("1.0.0").with_revocation("1.0.0", Revocation("x", NOW), expires=LATER)
    assert index.current is None
    with pytest.raises(VersionNotFoundError):
        index.installable(None)


def test_current_prefers_release_over_prerelease() -> None:
    assert _index("1.0.0", "2.0.0-rc.1").current == "1.0.0"
    assert _index("2.0.0-rc.1", "2.0.0-rc.2").current == "2.0.0-rc.2"
    assert _index("1.9.0", "1.10.0").current == "1.10.0"


def test_semver_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "2.0.0",
    ]
    shuffled = [ordered[i] for i in (8, 3, 0, 6, 1, 7, 4, 2, 5)]
    assert sorted(shuffled, key=version_key) == ordered


def test_wrong_current_refused() -> None:
    signed = _index("1.0.0", "1.1.0").to_json()
    signed["current"] = "1.0.0"
    with pytest.raises(IndexFormatError):
        verify_index(_resign(signed), PUB, name="demo", now=NOW)


def test_unknown_field_refused() -> None:
    signed = _index("1.0.0").to_json()
    signed["extra"] = 1
    with pytest.raises(IndexFormatError):
        verify_index(_resign(signed), PUB, name="demo", now=NOW)


def test_unsupported_spec_version_refused() -> None:
    signed = _index("1.0.0").to_json()
    signed["spec_version"] = 2
    with pytest.raises(IndexVersionError):
        verify_index(_resign(signed), PUB, name="demo", now=NOW)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"signature":{},"signed":{}}',
        b'{"signed":1, "signature":2}',
        b'{"a":1,"a":1}',
        b'{"a":1.5}',
        b'{"a":NaN}',
        b"\xff\xfe",
    ],
    ids=[
        "empty",
        "text",
        "array",
        "empty-objects",
        "whitespace",
        "duplicate",
        "float",
        "nan",
        "not-utf8",
    ],
)
def test_malformed_index_refused(data: bytes) -> None:
    with pytest.raises(FormatError):
        verify_index(data, PUB, name="demo", now=NOW)


def test_non_canonical_whitespace_refused() -> None:
    data = sign_index(_index("1.0.0"), bytes(OWNER))
    pretty = json.dumps(json.loads(data), indent=1, sort_keys=True).encode()
    with pytest.raises(IndexFormatError):
        verify_index(pretty, PUB, name="demo", now=NOW)


def test_oversized_index_refused() -> None:
    data = sign_index(_index("1.0.0"), bytes(OWNER))
    with pytest.raises(IndexLimitError):
        verify_index(data, PUB, name="demo", now=NOW, limits=IndexLimits(max_bytes=100))


def test_too_many_versions_refused() -> None:
    data = sign_index(_index("1.0.0", "1.0.1"), bytes(OWNER))
    with pytest.raises(IndexLimitError):
        verify_index(data, PUB, name="demo", now=NOW, limits=IndexLimits(max_versions=1))


@pytest.mark.parametrize(
    ("field", "value"),
    [("file", "../x"), ("file", "a/b"), ("sha256", "A" * 64), ("size", -1), ("size", True)],
    ids=["dotdot", "slash", "upper-hex", "negative", "bool"],
)
def test_bad_file_entry_refused(field: str, value: object) -> None:
    signed = _index("1.0.0").to_json()
    signed["versions"]["1.0.0"]["bundle"][field] = value
    with pytest.raises(IndexFormatError):
        verify_index(_resign(signed), PUB, name="demo", now=NOW)


@pytest.mark.parametrize("ver", ["1.0", "01.0.0", "1.0.0-", "../1.0.0", "v1.0.0"])
def test_bad_version_string_refused(ver: str) -> None:
    signed = _index("1.0.0").to_json()
    signed["versions"] = {ver: signed["versions"]["1.0.0"]}
    signed["current"] = ver
    with pytest.raises(IndexFormatError):
        verify_index(_resign(signed), PUB, name="demo", now=NOW)


def test_s3_location_layout() -> None:
    loc = S3Location.parse("s3://my-bucket/team/releases/")
    assert loc == S3Location("my-bucket", "team/releases")
    assert loc.index_key("demo") == "team/releases/demo/index.json"
    assert loc.file_key("demo", "1.0.0", "image.eif") == "team/releases/demo/1.0.0/image.eif"
    assert S3Location.parse("s3://my-bucket").index_key("demo") == "demo/index.json"


@pytest.mark.parametrize("url", ["http://b/p", "s3://", "s3://B/x", "s3://bucket/../x", "s3://b"])
def test_bad_s3_url_refused(url: str) -> None:
    with pytest.raises(FormatError):
        S3Location.parse(url)


@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    with pytest.raises(FormatError):
        verify_index(data, PUB, name="demo", now=NOW)


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=1, max_value=255))
def test_single_byte_flip_refused(pos: int, xor: int) -> None:
    data = bytearray(sign_index(_index("1.0.0"), bytes(OWNER)))
    pos %= len(data)
    data[pos] ^= xor
    with pytest.raises((FormatError, IndexSignatureError, IndexKeyMismatchError)):
        verify_index(bytes(data), PUB, name="demo", now=NOW)
