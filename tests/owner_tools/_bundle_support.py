# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Helpers for the owner-tools bundle tests: a KMS key on moto, an app folder, a bundle."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from owner_tools._cli import main

SEGMENT = 1024
TAG = 16


@dataclass(frozen=True)
class Env:
    kms_url: str
    key_id: str
    private_key: Path
    public_key: Path
    tmp: Path


def create_kms_key(url: str) -> str:
    kms = boto3.client("kms", endpoint_url=url, region_name="us-east-1")
    return kms.create_key(Description="nitro-bundles test")["KeyMetadata"]["KeyId"]


def make_app(root: Path, name: str = "demo-app", version: str = "1.0.0") -> Path:
    app = root / f"app-{name}-{version}"
    (app / "model").mkdir(parents=True)
    (app / "ml_algorithm.py").write_text("print('predict')\n")
    (app / "run.sh").write_text("#!/bin/sh\necho run\n")
    (app / "run.sh").chmod(0o755)
    (app / "model" / "weights.bin").write_bytes(os.urandom(4 * SEGMENT + 100))
    (app / "bundle.toml").write_text(
        f'name = "{name}"\nversion = "{version}"\n\n[[entrypoints]]\npath = "ml_algorithm.py"\n'
    )
    return app


def keygen(env_tmp: Path, prefix: str) -> tuple[Path, Path]:
    assert main(["keygen", "-o", str(env_tmp / prefix)]) == 0
    return env_tmp / f"{prefix}.key", env_tmp / f"{prefix}.pub"


def pack(env: Env, app: Path, out: Path, *extra: str, key: Path | None = None) -> int:
    return main(
        [
            "pack",
            str(app),
            "-o",
            str(out),
            "--key-id",
            env.key_id,
            "--signing-key",
            str(key or env.private_key),
            "--kms-endpoint",
            env.kms_url,
            "--segment-size",
            str(SEGMENT),
            *extra,
        ]
    )


def verify_argv(env: Env, bundle: Path, decrypt: bool = True) -> list[str]:
    argv = ["verify", str(bundle), "--owner-key", str(env.public_key)]
    if decrypt:
        argv += ["--decrypt", "--kms-endpoint", env.kms_url]
    return argv


def segment_offset(data: bytes, index: int, segment: int = SEGMENT) -> int:
    (header_len,) = struct.unpack(">I", data[6:10])
    return 10 + header_len + 64 + index * (segment + TAG)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("owner-tools: error: "), lines[0]
    assert "Traceback" not in captured.err
    assert captured.out == ""
    return lines[0]
