# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""build-eif and app environments (enclave-image.md §5.5, issue 21): the image's enclave.json
lists the rootfs's environments, and `--app-requirements` refuses bad input in one line,
with non-zero exit and no cache entry and no EIF left behind.

The hash and resolution failures run offline: pip reads a local wheel directory
(PIP_NO_INDEX, PIP_FIND_LINKS) and fails before any Debian work.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from owner_tools._cli import main
from owner_tools.image import CONFIG_PATH
from package_format.eif import read_cpio, read_eif
from package_format.eif.reader import SectionReader

REPO = Path(__file__).resolve().parents[2]
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"
PINNED = REPO / "tests" / "apps" / "pinned" / "requirements.txt"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the rootfs builder runs as root")


@pytest.fixture
def owner_pub(tmp_path) -> Path:
    from owner_tools.keys import keygen

    _, pub = keygen(tmp_path / "owner")
    return pub


@pytest.fixture
def offline_wheels(tmp_path, monkeypatch) -> tuple[Path, str]:
    """A local wheel directory as pip's only source; returns it and the wheel's SHA-256."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "tinypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("tinypkg/__init__.py", "")
        z.writestr("tinypkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinypkg\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("NB_CACHE_DIR", str(tmp_path / "cache"))
    return wheels, hashlib.sha256(wheel.read_bytes()).hexdigest()


def _build(tmp_path: Path, owner_pub: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "out" / "app.eif"
    out.parent.mkdir(exist_ok=True)
    args = ["build-eif", "-o", str(out), "--blobs", str(BLOBS), "--owner-key", str(owner_pub)]
    return main([*args, *extra]), out


def _errors(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln or "usage" in ln]


def _nothing_left(tmp_path: Path) -> None:
    assert list((tmp_path / "out").iterdir()) == []
    cache = tmp_path / "cache" / "toolchain"
    leftover = [p.name for p in cache.iterdir() if p.name not in {"logs", ".app-rootfs.lock"}]
    assert leftover == [], leftover


@needs_root
def test_wheel_failing_its_hash_is_one_line_and_leaves_nothing(
    tmp_path, owner_pub, offline_wheels, capsys
):
    req = tmp_path / "requirements.txt"
    req.write_text(f"tinypkg==1.0 --hash=sha256:{'0' * 64}\n")
    rc, _ = _build(tmp_path, owner_pub, "--app-requirements", str(req))
    errors = _errors(capsys)
    assert rc == 1
    assert len(errors) == 1
    assert errors[0].startswith(f"owner-tools: error: app requirements {req}: hash mismatch: ")
    assert "tinypkg" in errors[0]
    _nothing_left(tmp_path)


@needs_root
def test_pin_that_does_not_resolve_is_one_line_and_leaves_nothing(
    tmp_path, owner_pub, offline_wheels, capsys
):
    _, digest = offline_wheels
    req = tmp_path / "requirements.txt"
    req.write_text(f"tinypkg==9.9 --hash=sha256:{digest}\n")
    rc, _ = _build(tmp_path, owner_pub, "--app-requirements", str(req))
    errors = _errors(capsys)
    assert rc == 1
    assert len(errors) == 1
    assert f"app requirements {req}: " in errors[0]
    assert "tinypkg==9.9" in errors[0]
    _nothing_left(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tinypkg==1.0\n", "must be pinned with == and hashed"),
        (f"tinypkg>=1.0 --hash=sha256:{'0' * 64}\n", "must be pinned with == and hashed"),
        ("--index-url https://example.invalid/simple\n", "options (--index-url) are not allowed"),
    ],
    ids=["unhashed", "unpinned", "index-option"],
)
def test_requirements_that_are_not_a_hashed_lock_are_refused(  # noqa: PLR0917 - fixtures
    tmp_path, owner_pub, monkeypatch, capsys, text, expected
):
    monkeypatch.setenv("NB_CACHE_DIR", str(tmp_path / "cache"))
    req = tmp_path / "requirements.txt"
    req.write_text(text)
    rc, _ = _build(tmp_path, owner_pub, "--app-requirements", str(req))
    errors = _errors(capsys)
    assert rc == 1
    assert len(errors) == 1
    assert expected in errors[0]
    assert f"{req}:1:" in errors[0]
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "cache").exists()


def test_bad_debian_package_name_is_refused(tmp_path, owner_pub, monkeypatch, capsys):
    monkeypatch.setenv("NB_CACHE_DIR", str(tmp_path / "cache"))
    rc, _ = _build(
        tmp_path, owner_pub, "--app-requirements", str(PINNED), "--deb", "libfoo;rm -rf /"
    )
    assert rc == 1
    assert _errors(capsys) == [
        "owner-tools: error: --deb 'libfoo;rm -rf /': not a Debian package name"
    ]
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "extra",
    [["--deb", "libgomp1"], ["--app-requirements", str(PINNED), "--rootfs", "/nonexistent"]],
    ids=["deb-alone", "with-rootfs"],
)
def test_app_requirements_flag_combinations(tmp_path, owner_pub, capsys, extra):
    rc, _ = _build(tmp_path, owner_pub, *extra)
    assert rc == 2
    assert len(_errors(capsys)) == 1


def _tree_with_environment(root: Path, requirements: bytes, env_id: str | None = None) -> str:
    digest = hashlib.sha256(requirements).hexdigest()
    env = root / "opt" / "nitro-bundles" / "app" / (env_id or digest[:16])
    (env / "bin").mkdir(parents=True)
    (env / "requirements.txt").write_bytes(requirements)
    python = env / "bin" / "python3"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return digest


def _config(eif: Path) -> dict[str, object]:
    with eif.open("rb") as f:
        image = read_eif(f)
        members = {m.name: m for m in read_cpio(SectionReader(f, image.ramdisks()[1]))}
    return json.loads(members[f"rootfs/{CONFIG_PATH}"].data)


def test_enclave_json_lists_the_rootfs_environments(tmp_path, owner_pub):
    root = tmp_path / "rootfs"
    digest = _tree_with_environment(root, PINNED.read_bytes())
    rc, out = _build(tmp_path, owner_pub, "--rootfs", str(root), "--no-server-check")
    assert rc == 0
    assert _config(out)["environments"] == [
        {"python": f"/opt/nitro-bundles/app/{digest[:16]}/bin/python3", "sha256": digest}
    ]


def test_image_without_rootfs_declares_no_environments(tmp_path, owner_pub):
    rc, out = _build(tmp_path, owner_pub)
    assert rc == 0
    assert _config(out)["environments"] is None


def test_environment_whose_requirements_do_not_match_its_id_is_refused(tmp_path, owner_pub, capsys):
    root = tmp_path / "rootfs"
    _tree_with_environment(root, PINNED.read_bytes(), env_id="0123456789abcdef")
    rc, _ = _build(tmp_path, owner_pub, "--rootfs", str(root), "--no-server-check")
    assert rc == 1
    assert "does not hash to its environment's id 0123456789abcdef" in _errors(capsys)[0]
    assert list((tmp_path / "out").iterdir()) == []


def test_environment_without_interpreter_is_refused(tmp_path, owner_pub, capsys):
    root = tmp_path / "rootfs"
    digest = _tree_with_environment(root, PINNED.read_bytes())
    (root / "opt/nitro-bundles/app" / digest[:16] / "bin/python3").unlink()
    rc, _ = _build(tmp_path, owner_pub, "--rootfs", str(root), "--no-server-check")
    assert rc == 1
    assert f"app environment {digest[:16]} has no" in _errors(capsys)[0]
