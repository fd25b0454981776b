# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The server layer owns /opt/nitro-bundles/python (specs/enclave-image.md §5.3)."""

from __future__ import annotations

from pathlib import Path

from owner_tools._cli import main
from owner_tools.image import SERVER_PYTHON
from package_format.eif import read_cpio, read_eif
from package_format.eif.reader import SectionReader

REPO = Path(__file__).resolve().parents[2]
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"


def _members(eif: Path) -> dict[str, bytes | None]:
    with eif.open("rb") as f:
        customer = read_eif(f).ramdisks()[1]
        return {m.name: m.data for m in read_cpio(SectionReader(f, customer))}


def test_stale_server_pyc_in_the_base_rootfs_is_dropped(tmp_path: Path) -> None:
    from owner_tools.keys import keygen

    _, pub = keygen(tmp_path / "owner")
    rootfs = tmp_path / "rootfs"
    stale = rootfs / SERVER_PYTHON / "enclave" / "__pycache__" / "server.cpython-313.pyc"
    stale.parent.mkdir(parents=True)
    # An unchecked-hash .pyc of some other server: Python would load it and never the source.
    stale.write_bytes(b"\xf3\x0d\x0d\x0a\x01\x00\x00\x00" + bytes(8) + b"old code")
    (rootfs / SERVER_PYTHON / "extra.py").write_bytes(b"import os\n")
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "os-release").write_bytes(b"NAME=test\n")
    eif = tmp_path / "e.eif"
    argv = ["build-eif", "-o", str(eif), "--blobs", str(BLOBS), "--owner-key", str(pub)]
    assert main([*argv, "--rootfs", str(rootfs), "--no-server-check"]) == 0
    members = _members(eif)
    ours = {n for n in members if n.startswith(f"rootfs/{SERVER_PYTHON}/")}
    assert f"rootfs/{SERVER_PYTHON}/enclave/server.py" in ours
    assert not [n for n in ours if "__pycache__" in n or n.endswith("extra.py")]
    assert members["rootfs/etc/os-release"] == b"NAME=test\n"
