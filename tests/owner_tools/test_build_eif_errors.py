# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""owner-tools build-eif bad input: one clear line, exit 1, nothing left behind (must-show 3)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from owner_tools._cli import main

REPO = Path(__file__).resolve().parents[2]
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"


@pytest.fixture
def owner_pub(tmp_path) -> Path:
    from owner_tools.keys import keygen

    _, pub = keygen(tmp_path / "owner")
    return pub


def _err(capsys) -> list[str]:
    lines = capsys.readouterr().err.strip().splitlines()
    return [line for line in lines if line != "Start building the Enclave Image..."]


def test_missing_blob_one_line(tmp_path, owner_pub, capsys):
    blobs = tmp_path / "blobs"
    shutil.copytree(BLOBS, blobs)
    (blobs / "nsm.ko").unlink()
    out = tmp_path / "out" / "x.eif"
    out.parent.mkdir()
    rc = main(["build-eif", "-o", str(out), "--blobs", str(blobs), "--owner-key", str(owner_pub)])
    err = _err(capsys)
    assert rc == 1
    assert err == [
        f"owner-tools: error: {blobs / 'nsm.ko'}: blob missing (set --blobs or --nsm-ko)"
    ]
    assert list(out.parent.iterdir()) == []


def test_missing_owner_key_flag(tmp_path, capsys):
    rc = main(["build-eif", "-o", str(tmp_path / "x.eif"), "--blobs", str(BLOBS)])
    assert rc != 0
    assert _err(capsys) == ["owner-tools: usage: at least one --owner-key is required"]


def test_bad_owner_key_file(tmp_path, capsys):
    key = tmp_path / "k.pub"
    key.write_text("garbage\n")
    rc = main(
        ["build-eif", "-o", str(tmp_path / "x.eif"), "--blobs", str(BLOBS), "--owner-key", str(key)]
    )
    err = _err(capsys)
    assert rc == 1
    assert len(err) == 1
    assert str(key) in err[0]


def test_bad_build_time(tmp_path, owner_pub, capsys):
    rc = main(
        [
            "build-eif",
            "-o",
            str(tmp_path / "x.eif"),
            "--blobs",
            str(BLOBS),
            "--owner-key",
            str(owner_pub),
            "--build-time",
            "yesterday",
        ]
    )
    assert rc == 1
    assert _err(capsys) == [
        "owner-tools: error: --build-time 'yesterday': not RFC 3339 with an offset or Unix seconds"
    ]


def test_bad_arch(tmp_path, owner_pub, capsys):
    rc = main(
        [
            "build-eif",
            "-o",
            str(tmp_path / "x.eif"),
            "--blobs",
            str(BLOBS),
            "--owner-key",
            str(owner_pub),
            "--arch",
            "riscv",
        ]
    )
    assert rc != 0
    assert len(_err(capsys)) == 1


def test_bad_rootfs_file_one_line(tmp_path, owner_pub, capsys):
    bogus = tmp_path / "rootfs.tar"
    bogus.write_bytes(b"this is not a tar" * 100)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc = main(
        [
            "build-eif",
            "-o",
            str(out_dir / "x.eif"),
            "--blobs",
            str(BLOBS),
            "--owner-key",
            str(owner_pub),
            "--rootfs",
            str(bogus),
        ]
    )
    err = _err(capsys)
    assert rc == 1
    assert err == [f"owner-tools: error: {bogus}: not a directory or a readable tar archive"]
    assert list(out_dir.iterdir()) == []


def test_socket_in_rootfs_fails_and_leaves_nothing(tmp_path, owner_pub, capsys):
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "a.txt").write_text("a")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "s.sock"))
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        rc = main(
            [
                "build-eif",
                "-o",
                str(out_dir / "x.eif"),
                "--blobs",
                str(BLOBS),
                "--owner-key",
                str(owner_pub),
                "--rootfs",
                str(root),
            ]
        )
    finally:
        sock.close()
    err = _err(capsys)
    assert rc == 1
    assert len(err) == 1
    assert "unsupported file type" in err[0]
    assert list(out_dir.iterdir()) == []


def test_tar_with_dotdot_member_rejected(tmp_path, owner_pub, capsys):
    import io
    import tarfile

    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    rc = main(
        [
            "build-eif",
            "-o",
            str(tmp_path / "x.eif"),
            "--blobs",
            str(BLOBS),
            "--owner-key",
            str(owner_pub),
            "--rootfs",
            str(tar_path),
        ]
    )
    err = _err(capsys)
    assert rc == 1
    assert "unsafe or empty path" in err[0]


def test_console_script_missing_blob_no_traceback(tmp_path, owner_pub):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "owner_tools",
            "build-eif",
            "-o",
            str(tmp_path / "x.eif"),
            "--blobs",
            str(tmp_path / "no-blobs"),
            "--owner-key",
            str(owner_pub),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"owner-tools: error: {tmp_path / 'no-blobs' / 'bzImage'}: blob missing (set --blobs or --kernel)"
    ]
