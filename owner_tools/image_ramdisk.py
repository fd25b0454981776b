# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The image's two ramdisks as linuxkit streams them (specs/enclave-image.md §5.1, §5.2).

The bootstrap ramdisk (`dev/`, `init`, `nsm.ko`), and the customer ramdisk: the merged root
filesystem transformed like linuxkit's `ImageTar` (prefix `rootfs/`, excluded, replaced and
touched entries), followed by the YAML `files:` section (`rootfs/{dev,run,sys,var,proc,tmp}`,
`cmd`, `env`).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from owner_tools.image_rootfs import RootEntry, file_opener, symlink
from package_format.eif import LINUXKIT_MTIME, CpioEntry

#: linuxkit moby/image.go: entries dropped from the image.
EXCLUDE = frozenset(
    {".dockerenv", "Dockerfile", "dev/console", "dev/pts", "dev/shm", "etc/hostname"}
)
HOSTS = (
    b"127.0.0.1       localhost\n"
    b"::1     localhost ip6-localhost ip6-loopback\n"
    b"fe00::0 ip6-localnet\n"
    b"ff00::0 ip6-mcastprefix\n"
    b"ff02::1 ip6-allnodes\n"
    b"ff02::2 ip6-allrouters\n"
)
RESOLV_TARGET = "/run/resolvconf/resolv.conf"
MTAB_TARGET = "/proc/mounts"
TOUCH_ORDER = (
    "dev",
    "dev/pts",
    "dev/shm",
    "etc",
    "etc/hosts",
    "etc/mtab",
    "etc/resolv.conf",
    "proc",
    "sys",
)
FILES_DIRS = ("dev", "run", "sys", "var", "proc", "tmp")
PREFIX = "rootfs/"


def _cpio(name: str, e: RootEntry) -> CpioEntry:
    return CpioEntry(
        name=name,
        mode=e.mode,
        size=e.size,
        uid=e.uid,
        gid=e.gid,
        mtime=e.mtime,
        rdevmajor=e.rdevmajor,
        rdevminor=e.rdevminor,
        data=e.data,
        opener=e.opener,
    )


def _touch(path: str) -> RootEntry:
    if path == "etc/hosts":
        return RootEntry(path, stat.S_IFREG | 0o644, len(HOSTS), data=HOSTS)
    if path == "etc/mtab":
        return replace(symlink(path, MTAB_TARGET, LINUXKIT_MTIME), mode=stat.S_IFLNK | 0o755)
    if path == "etc/resolv.conf":
        return replace(symlink(path, RESOLV_TARGET, LINUXKIT_MTIME), mode=stat.S_IFLNK | 0o644)
    return RootEntry(path, stat.S_IFDIR | 0o755)


def _image_entries(image: list[RootEntry], touched: set[str]) -> Iterator[CpioEntry]:
    for e in image:
        if e.path in EXCLUDE or any(e.path.startswith(x + "/") for x in EXCLUDE):
            continue
        name = PREFIX + e.path + ("/" if e.is_dir else "")
        if e.path in TOUCH_ORDER:
            touched.add(e.path)
            t = _touch(e.path)
            # touched directories keep the image's header, with linuxkit's mtime
            yield _cpio(name, replace(e, mtime=LINUXKIT_MTIME) if t.is_dir and e.is_dir else t)
        else:
            yield _cpio(name, e)


def customer_entries(image: list[RootEntry], cmd: list[str], env: list[str]) -> Iterator[CpioEntry]:
    """The customer ramdisk's entries in linuxkit's stream order (specs §5.2).

    Args:
        image: the root filesystem in Docker's walk order (see `merge_layer`).
        cmd: the command, one element per line of the `cmd` file.
        env: `NAME=value` strings, one per line of the `env` file.
    """
    yield CpioEntry.directory("rootfs")
    touched: set[str] = set()
    yield from _image_entries(image, touched)
    for path in TOUCH_ORDER:
        if path not in touched:
            yield _cpio(PREFIX + path, _touch(path))
    yield CpioEntry.directory("rootfs")
    for d in FILES_DIRS:
        yield CpioEntry.directory(PREFIX + d)
    yield CpioEntry.file("cmd", "".join(f"{c}\n" for c in cmd).encode())
    yield CpioEntry.file("env", "".join(f"{v}\n" for v in env).encode())


def bootstrap_entries(init: Path, nsm_ko: Path) -> list[CpioEntry]:
    """The bootstrap ramdisk: `dev/`, `init` and `nsm.ko`, as linuxkit writes them (§5.1).

    Raises:
        OSError: a blob cannot be read.
    """
    out = [CpioEntry.directory("dev")]
    for name, path in (("init", init), ("nsm.ko", nsm_ko)):
        size = path.stat().st_size
        out.append(
            CpioEntry(name=name, mode=stat.S_IFREG | 0o755, size=size, opener=file_opener(path))
        )
    return out
