# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""One test per tampering: its own typed error, one CLI line, exit 1 (issue 2, item 3).

Each test packs a real bundle through moto's KMS (5 segments of 1 KiB), changes
it, then checks both the library (`verify_bundle`, typed error) and the CLI
(`owner-tools verify --decrypt`: exit 1, one `owner-tools: error:` line).
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
from _bundle_support import (
    SEGMENT,
    TAG,
    Env,
    create_kms_key,
    keygen,
    make_app,
    one_error_line,
    pack,
    segment_offset,
    verify_argv,
)

from owner_tools._cli import main
from owner_tools.keys import load_owner_key, load_signing_key
from owner_tools.kms.aws import AwsKms
from owner_tools.kms.interface import KmsAccessDeniedError
from owner_tools.verify import verify_bundle
from package_format.bundle import errors
from package_format.bundle.header import preamble
from package_format.bundle.signing import sign


@pytest.fixture
def env(moto_server, aws_env, tmp_path) -> Env:
    private, public = keygen(tmp_path, "owner")
    return Env(moto_server.url, create_kms_key(moto_server.url), private, public, tmp_path)


@pytest.fixture
def bundle(env) -> Path:
    out = env.tmp / "good.nb"
    assert pack(env, make_app(env.tmp), out) == 0
    return out


def segments(data: bytes) -> int:
    return (len(data) - segment_offset(data, 0) + SEGMENT + TAG - 1) // (SEGMENT + TAG)


def flip(data: bytes, offset: int) -> bytes:
    b = bytearray(data)
    b[offset] ^= 0x04
    return bytes(b)


def header_fields(data: bytes) -> tuple[int, dict]:
    (length,) = struct.unpack(">I", data[6:10])
    return length, cbor2.loads(data[10 : 10 + length])


def expect_rejected(env: Env, path: Path, error: type[Exception], capsys) -> str:
    kms = AwsKms(env.kms_url, "us-east-1")
    with pytest.raises(error) as info:
        verify_bundle(path, [load_owner_key(env.public_key)], kms=kms)
    assert type(info.value) is error
    capsys.readouterr()
    assert main(verify_argv(env, path)) == 1
    line = one_error_line(capsys)
    assert line == f"owner-tools: error: {info.value}"
    return line


def tampered(bundle: Path, data: bytes) -> Path:
    path = bundle.with_name("tampered.nb")
    path.write_bytes(data)
    return path


def test_good_bundle_verifies(env, bundle, capsys) -> None:
    capsys.readouterr()
    assert main(verify_argv(env, bundle)) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ok: demo-app 1.0.0 signed by SHA256:")
    assert "every segment" in captured.out
    assert captured.err == ""
    assert segments(bundle.read_bytes()) == 5


def test_header_bit_flip_rejected(env, bundle, capsys) -> None:
    data = bundle.read_bytes()
    _, obj = header_fields(data)
    path = tampered(bundle, flip(data, data.index(obj["salt"]) + 3))
    expect_rejected(env, path, errors.BundleSignatureError, capsys)


def test_signature_bit_flip_rejected(env, bundle, capsys) -> None:
    data = bundle.read_bytes()
    length, _ = header_fields(data)
    path = tampered(bundle, flip(data, 10 + length + 20))
    expect_rejected(env, path, errors.BundleSignatureError, capsys)


def test_wrapped_key_bit_flip_rejected(env, bundle, capsys) -> None:
    data = bundle.read_bytes()
    _, obj = header_fields(data)
    path = tampered(bundle, flip(data, data.index(obj["wrapped_key"]) + 10))
    expect_rejected(env, path, errors.BundleSignatureError, capsys)


@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_segment_bit_flip_rejected(env, bundle, capsys, which: str) -> None:
    data = bundle.read_bytes()
    index = {"first": 0, "middle": 2, "last": 4}[which]
    path = tampered(bundle, flip(data, segment_offset(data, index) + 5))
    line = expect_rejected(env, path, errors.SegmentAuthenticationError, capsys)
    assert f"segment {index} failed authentication" in line


def test_truncation_at_segment_boundary_rejected(env, bundle, capsys) -> None:
    data = bundle.read_bytes()
    path = tampered(bundle, data[: segment_offset(data, 3)])
    line = expect_rejected(env, path, errors.TruncatedPayloadError, capsys)
    assert "at a segment boundary" in line


def test_truncation_between_segment_boundaries_rejected(env, bundle, capsys) -> None:
    data = bundle.read_bytes()
    path = tampered(bundle, data[: segment_offset(data, 2) + 500])
    line = expect_rejected(env, path, errors.TruncatedPayloadError, capsys)
    assert "inside a segment" in line


def test_truncation_of_last_segment_only_rejected(env, bundle, capsys) -> None:
    data = bundle.read_bytes()
    path = tampered(bundle, data[:-1])
    expect_rejected(env, path, errors.TruncatedPayloadError, capsys)


def test_segment_swap_rejected(env, bundle, capsys) -> None:
    data = bundle.read_bytes()
    a, b = segment_offset(data, 1), segment_offset(data, 2)
    size = SEGMENT + TAG
    swapped = data[:a] + data[b : b + size] + data[a : a + size] + data[b + size :]
    line = expect_rejected(env, tampered(bundle, swapped), errors.SegmentOrderError, capsys)
    assert "segment 1 is authentic but belongs at" in line


def test_bytes_appended_rejected(env, bundle, capsys) -> None:
    data = bundle.read_bytes()
    path = tampered(bundle, data + b"\x00" * 17)
    expect_rejected(env, path, errors.TrailingDataError, capsys)


def test_other_bundles_wrapped_key_and_context_spliced_rejected(env, bundle, capsys) -> None:
    other = env.tmp / "other.nb"
    assert pack(env, make_app(env.tmp, "other-app", "2.0.0"), other) == 0
    data = bundle.read_bytes()
    length, obj = header_fields(data)
    _, other_obj = header_fields(other.read_bytes())
    obj["wrapped_key"] = other_obj["wrapped_key"]
    obj["encryption_context"] = other_obj["encryption_context"]
    obj["manifest"]["name"], obj["manifest"]["version"] = "other-app", "2.0.0"
    body = cbor2.dumps(obj, canonical=True)
    spliced = preamble(len(body)) + body + data[10 + length :]  # keeps the old signature
    path = tampered(bundle, spliced)
    expect_rejected(env, path, errors.BundleSignatureError, capsys)


def test_spliced_wrapped_key_resigned_by_owner_caught_by_key_commitment(
    env, bundle, capsys
) -> None:
    # Even the owner's own key cannot make a header use another bundle's data key:
    # KMS unwraps it happily (same name, version, context) but the commitment differs.
    twin = env.tmp / "twin.nb"
    assert pack(env, make_app(env.tmp / "twin"), twin) == 0
    data = bundle.read_bytes()
    length, obj = header_fields(data)
    _, twin_obj = header_fields(twin.read_bytes())
    assert twin_obj["encryption_context"] == obj["encryption_context"]
    obj["wrapped_key"] = twin_obj["wrapped_key"]
    body = cbor2.dumps(obj, canonical=True)
    signed = preamble(len(body)) + body
    resigned = signed + sign(signed, load_signing_key(env.private_key)) + data[10 + length + 64 :]
    path = tampered(bundle, resigned)
    expect_rejected(env, path, errors.KeyCommitmentError, capsys)


def test_bundle_signed_by_another_key_rejected(env, capsys) -> None:
    other_private, _ = keygen(env.tmp, "intruder")
    path = env.tmp / "intruder.nb"
    assert pack(env, make_app(env.tmp), path, key=other_private) == 0
    line = expect_rejected(env, path, errors.UntrustedSignerError, capsys)
    assert "not a trusted owner key" in line


def test_unsupported_format_version_rejected(env, bundle, capsys) -> None:
    data = bundle.read_bytes()
    path = tampered(bundle, data[:5] + b"\x02" + data[6:])
    line = expect_rejected(env, path, errors.UnsupportedBundleVersionError, capsys)
    assert "format version 2 is not supported" in line


def test_not_a_bundle_rejected(env, bundle, capsys) -> None:
    path = tampered(bundle, b"PK\x03\x04 this is a zip file")
    expect_rejected(env, path, errors.BadMagicError, capsys)


def test_signature_only_verify_skips_kms(env, bundle, capsys) -> None:
    capsys.readouterr()
    argv = ["verify", str(bundle), "--owner-key", str(env.public_key), "--json",
            "--kms-endpoint", "http://127.0.0.1:1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert '"decrypted": false' in out


def test_console_script_tampered_bundle_no_traceback(env, bundle) -> None:
    data = bundle.read_bytes()
    path = tampered(bundle, data + b"x")
    proc = subprocess.run(
        [sys.executable, "-m", "owner_tools", *verify_argv(env, path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "owner-tools: error: payload: bytes follow the last segment"


@pytest.mark.parametrize("cut", [1, SEGMENT + TAG + 3], ids=["last-byte", "a-segment-and-more"])
def test_truncated_bundle_fails_verify_without_decrypt(env, bundle, capsys, cut: int) -> None:
    # Issue 15 item 6: without --decrypt, verify said "ok" on a truncated bundle; the
    # header's declared sizes give the exact length without any key.
    data = bundle.read_bytes()
    path = tampered(bundle, data[:-cut])
    capsys.readouterr()
    assert main(verify_argv(env, path, decrypt=False)) == 1
    line = one_error_line(capsys)
    assert line.startswith("owner-tools: error: payload: ends ")


def test_verify_without_decrypt_says_what_it_did_not_check(env, bundle, capsys) -> None:
    capsys.readouterr()
    assert main(verify_argv(env, bundle, decrypt=False)) == 0
    out = capsys.readouterr().out
    assert "(signature and length; segments not decrypted, use --decrypt)" in out


class _DenyingKms:
    """A key service whose policy no longer lets the owner decrypt (after apply-policy)."""

    def decrypt(self, wrapped: bytes, key_id: str, context: object) -> bytes:
        raise KmsAccessDeniedError(f"kms: access to key {key_id} denied (AccessDeniedException)")


def test_decrypt_denied_after_policy_names_the_likely_cause(env, bundle) -> None:
    with pytest.raises(KmsAccessDeniedError) as info:
        verify_bundle(bundle, [load_owner_key(env.public_key)], kms=_DenyingKms())  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("kms: access to key")
    assert "only that enclave may decrypt" in message
    assert "without --decrypt" in message
