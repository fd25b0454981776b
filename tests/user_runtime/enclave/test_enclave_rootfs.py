# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 21: the image's customer ramdisk unpacked into the cache (user_runtime.enclave.rootfs).

Images are built with hand-made ramdisks (`build-eif --ramdisk`), so each test controls every
member, hostile ones included.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from owner_tools.image import DEFAULT_CMD, DEFAULT_ENV
from package_format.eif import CpioEntry, build_archive
from user_runtime.enclave.files import ImageContentError, read_image
from user_runtime.enclave.rootfs import IMAGES_DIR, KEEP, image_root, interpreter_problem
from user_runtime.enclave.world import image_command, image_environment

REPO = Path(__file__).resolve().parents[3]
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"
PY = "opt/nitro-bundles/venv/bin/python3"


def _server() -> list[CpioEntry]:
    return [
        CpioEntry.directory("rootfs"),
        CpioEntry.file("rootfs/opt/nitro-bundles/python/enclave/__init__.py", b""),
        CpioEntry.file("rootfs/etc/nitro-bundles/enclave.json", b"{}"),
        CpioEntry.file("cmd", "".join(f"{c}\n" for c in DEFAULT_CMD).encode()),
        CpioEntry.file("env", "".join(f"{e}\n" for e in DEFAULT_ENV).encode()),
    ]


def _eif(tmp_path: Path, members: list[CpioEntry], name: str = "app.eif") -> Path:
    from owner_tools.image import BuildOptions, build_eif, find_blobs

    boot = tmp_path / f"{name}.boot.cpio"
    boot.write_bytes(build_archive([CpioEntry.directory("dev")]))
    customer = tmp_path / f"{name}.customer.cpio"
    customer.write_bytes(build_archive([*_server(), *members]))
    out = tmp_path / name
    blobs = find_blobs(BLOBS, "x86_64", need_bootstrap=False)
    build_eif(BuildOptions(output=out, blobs=blobs, ramdisks=[boot, customer], build_time="0"))
    return out


def _unpack(tmp_path: Path, eif: Path, *, hold: bool = False):
    root = image_root(eif, read_image(eif), tmp_path / "cache")
    if not hold:
        os.close(root.lock)
    return root


def test_unpacks_the_customer_ramdisk_as_the_kernel_does(tmp_path) -> None:
    eif = _eif(
        tmp_path,
        [
            CpioEntry.file(f"rootfs/{PY}", b"#!/bin/sh\n", perm=0o755),
            CpioEntry.symlink("rootfs/usr/bin/python3", f"/{PY}"),
            CpioEntry.file("rootfs/etc/motd", b"first\n"),
            CpioEntry.file("rootfs/etc/motd", b"later wins\n"),
            CpioEntry.file("rootfs/usr/bin/su", b"x", perm=0o4755),
            CpioEntry(name="rootfs/dev/sda", mode=stat.S_IFBLK | 0o600, rdevmajor=8),
            CpioEntry.directory("rootfs/secret", perm=0o700),
        ],
    )
    root = _unpack(tmp_path, eif)
    tree = root.rootfs
    assert root.extracted
    assert (tree / PY).read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((tree / PY).stat().st_mode) == 0o755
    assert (tree / "usr/bin/python3").readlink() == Path(f"/{PY}")
    assert (tree / "etc/motd").read_text() == "later wins\n"
    assert stat.S_IMODE((tree / "usr/bin/su").stat().st_mode) == 0o755  # set-id bits dropped
    assert not (tree / "dev/sda").exists()  # no device node lands in the host's cache
    assert stat.S_IMODE((tree / "secret").stat().st_mode) == 0o700
    assert (root.path / "cmd").read_text().split("\n")[:3] == list(DEFAULT_CMD[:3])
    assert stat.S_IMODE((tmp_path / "cache" / IMAGES_DIR).stat().st_mode) == 0o700


def test_cached_tree_is_reused(tmp_path) -> None:
    eif = _eif(tmp_path, [CpioEntry.file("rootfs/etc/motd", b"hi\n")])
    first = _unpack(tmp_path, eif)
    second = _unpack(tmp_path, eif)
    assert second.path == first.path
    assert first.extracted
    assert not second.extracted
    assert first.path.name == read_image(eif).pcrs[2].hex()


def test_member_with_dotdot_is_refused(tmp_path) -> None:
    eif = _eif(tmp_path, [CpioEntry.file("rootfs/../../escaped", b"x")])
    with pytest.raises(ImageContentError, match="unsafe member name"):
        _unpack(tmp_path, eif)
    assert list((tmp_path / "cache" / IMAGES_DIR).iterdir()) == []  # nothing half-made left
    assert not (tmp_path / "cache" / "escaped").exists()


def test_member_through_a_symlink_is_refused(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    eif = _eif(
        tmp_path,
        [
            CpioEntry.symlink("rootfs/link", str(outside)),
            CpioEntry.file("rootfs/link/planted", b"x"),
        ],
    )
    with pytest.raises(ImageContentError, match="non-dir"):
        _unpack(tmp_path, eif)
    assert list(outside.iterdir()) == []
    assert list((tmp_path / "cache" / IMAGES_DIR).iterdir()) == []


def test_leftover_of_a_crashed_extraction_is_removed(tmp_path) -> None:
    images = tmp_path / "cache" / IMAGES_DIR
    stale = images / ".tmp-0123456789abcdef-999999999-1"  # no such process
    (stale / "rootfs").mkdir(parents=True)
    eif = _eif(tmp_path, [])
    root = _unpack(tmp_path, eif)
    assert not stale.exists()
    assert [p.name for p in images.iterdir()] == [root.path.name]


def test_image_without_an_interpreter_is_reported(tmp_path) -> None:
    bare = read_image(_eif(tmp_path, [], "bare.eif"))
    assert "has no /opt/nitro-bundles/venv/bin/python3" in (interpreter_problem(bare) or "")
    linked = read_image(
        _eif(
            tmp_path,
            [
                CpioEntry.file("rootfs/usr/bin/python3.11", b"", perm=0o755),
                CpioEntry.symlink("rootfs/opt/nitro-bundles/venv/bin/python3", "python3.11"),
                CpioEntry.symlink(
                    "rootfs/opt/nitro-bundles/venv/bin/python3.11", "/usr/bin/python3.11"
                ),
            ],
            "linked.eif",
        )
    )
    assert interpreter_problem(linked) is None


def test_only_the_transport_is_swapped(tmp_path) -> None:
    image = read_image(_eif(tmp_path, []))
    cmd, workdir = image_command(image, memory_mib=512)
    expected = list(DEFAULT_CMD)
    at = expected.index("--vsock")
    expected[at : at + 2] = ["--unix", "/run/nitro-bundles-io/enclave.sock"]
    assert cmd == [*expected, "--memory-budget", "512M"]
    assert workdir == "/run/nitro-bundles"
    env = image_environment(image, {"NB_NSM": "simulated"}, kms_socket="/run/k.sock")
    kept = [e for e in DEFAULT_ENV if not e.startswith("NB_KMS_TARGET=")]
    assert env == [*kept, "NB_KMS_TARGET=unix:/run/k.sock", "NB_NSM=simulated"]


def test_old_entries_are_evicted_but_never_one_in_use(tmp_path) -> None:
    assert KEEP == 2
    eifs = [
        _eif(tmp_path, [CpioEntry.file("rootfs/etc/motd", f"{i}\n".encode())], f"{i}.eif")
        for i in range(5)
    ]
    held = _unpack(tmp_path, eifs[0], hold=True)  # an enclave runs in it
    roots = [held]
    for when, eif in enumerate(eifs[1:], start=1):
        os.utime(roots[-1].path, (when * 1000, when * 1000))  # used in this order
        roots.append(_unpack(tmp_path, eif))
    try:
        left = {p.name for p in (tmp_path / "cache" / IMAGES_DIR).iterdir()}
        # The newest, the KEEP most recently used before it, and the one in use.
        assert left == {r.path.name for r in (roots[4], roots[3], roots[2], roots[0])}
        assert (roots[0].rootfs / "etc/motd").read_text() == "0\n"
    finally:
        os.close(held.lock)
