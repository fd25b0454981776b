# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What the local enclave launcher reads out of an EIF, and how it lays out and wipes files.

The enclave server's code and enclave.json come from the image's customer ramdisk(s), the
bytes PCR2 measures (specs/enclave-image.md §5.2), never from the host's installed packages.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from user_runtime.errors import InputError

ROOTFS_PREFIX = "rootfs/"
SERVER_PREFIX = "rootfs/opt/nitro-bundles/python/"
CONFIG_NAME = "rootfs/etc/nitro-bundles/enclave.json"
_WIPE_CHUNK = 1 << 20


class ImageContentError(InputError):
    """The EIF is unreadable, damaged, or carries no enclave server."""


@dataclass(frozen=True)
class ImageContents:
    """The server code, the config and the PCRs of one image.

    Attributes:
        server_files: Relative path (e.g. `enclave/app.py`) -> bytes.
        config: The bytes of enclave.json.
        pcrs: PCR index -> 48-byte value (0, 1, 2, and 8 when signed).
        cmd: The image's command, one argument each (specs/enclave-image.md §5.3).
        env: The image's environment, `NAME=value` each.
        tree: Every `rootfs/` member's path (relative, no "/" at either end) -> (st_mode,
            symlink target or ""), later duplicates winning: enough to resolve the command's
            interpreter before anything is extracted (user_runtime.enclave.rootfs).
    """

    server_files: dict[str, bytes]
    config: bytes
    pcrs: dict[int, bytes]
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    tree: dict[str, tuple[int, str]] = field(default_factory=dict)


def read_image(path: Path) -> ImageContents:
    """Parse and check the EIF at `path` and extract the enclave server from it.

    Raises:
        ImageContentError: Unreadable, damaged (CRC, signature), or without a server.
    """
    from package_format.eif import iter_cpio, read_eif  # noqa: PLC0415
    from package_format.eif.reader import SectionReader  # noqa: PLC0415
    from package_format.errors import PackageFormatError  # noqa: PLC0415

    try:
        with path.open("rb") as f:
            image = read_eif(f)
            image.verify()
            wanted: dict[str, bytes] = {}
            tree: dict[str, tuple[int, str]] = {}
            for section in image.ramdisks()[1:]:  # the bootstrap ramdisk comes first
                # Only the server, its config and cmd/env are held: a rootfs may be GiBs.
                for member in iter_cpio(SectionReader(f, section), want=_wanted):
                    if member.is_file and member.data is not None and _wanted(member.name):
                        wanted[member.name] = member.data
                    if member.name.startswith(ROOTFS_PREFIX):
                        link = (
                            (member.data or b"").decode(errors="surrogateescape")
                            if member.is_symlink
                            else ""
                        )
                        tree[member.name[len(ROOTFS_PREFIX) :].strip("/")] = (member.mode, link)
    except OSError as exc:
        raise ImageContentError(f"{path}: {exc.strerror or exc}") from exc
    except PackageFormatError as exc:
        raise ImageContentError(f"{path}: {exc}") from exc
    files = {
        rel: data
        for name, data in wanted.items()
        if (rel := name[len(SERVER_PREFIX) :]) and name.startswith(SERVER_PREFIX)
        if not rel.startswith("/") and ".." not in rel.split("/")
    }
    config = wanted.get(CONFIG_NAME)
    if not any(p.startswith("enclave/") for p in files) or config is None:
        raise ImageContentError(f"{path}: the image carries no nitro-bundles enclave server")
    m = image.measurements
    pcrs = {0: m.pcr0, 1: m.pcr1, 2: m.pcr2}
    if m.pcr8 is not None:
        pcrs[8] = m.pcr8
    cmd, env = (_lines(wanted.get(name, b"")) for name in ("cmd", "env"))
    return ImageContents(files, config, pcrs, cmd, env, tree)


def _wanted(name: str) -> bool:
    return name.startswith(SERVER_PREFIX) or name in {CONFIG_NAME, "cmd", "env"}


def _lines(data: bytes) -> tuple[str, ...]:
    return tuple(line for line in data.decode("utf-8", "replace").split("\n") if line)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new file readable by this user only (parents made 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def wipe_tree(root: Path) -> None:
    """Overwrite every regular file under `root` with zeros, unlink it, remove every directory.

    Symlinks are removed, never followed; errors do not stop the walk.
    """
    try:
        st = root.lstat()
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode):
        _wipe_file(root, st)
        return
    with contextlib.suppress(OSError):
        root.chmod(0o700)
    with contextlib.suppress(OSError):
        for entry in list(os.scandir(root)):
            wipe_tree(Path(entry.path))
    with contextlib.suppress(OSError):
        root.rmdir()


def _wipe_file(path: Path, st: os.stat_result) -> None:
    with contextlib.suppress(OSError):
        if stat.S_ISREG(st.st_mode):
            path.chmod(0o600)
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                left = st.st_size
                zeros = bytes(min(left, _WIPE_CHUNK))
                while left > 0:
                    left -= os.write(fd, zeros[: min(left, _WIPE_CHUNK)])
            finally:
                os.close(fd)
    with contextlib.suppress(OSError):
        path.unlink()
