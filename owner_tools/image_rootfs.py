# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The customer ramdisk's file list, as linuxkit would stream it (specs/enclave-image.md §5.2).

A base root filesystem comes from a directory or a tar (e.g. `docker export`);
our enclave server and its configuration are merged in as one more layer; the
result is walked like Docker's archive package (depth first, names sorted per
directory) and transformed like linuxkit's `ImageTar` (prefix `rootfs/`,
excluded, replaced and touched entries), followed by the YAML `files:` section
(`rootfs/{dev,run,sys,var,proc,tmp}`, `cmd`, `env`).
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from owner_tools.errors import InputError
from package_format.eif import LINUXKIT_MTIME, CpioEntry


class RootfsError(InputError):
    """The base root filesystem cannot be read or holds an unsupported entry."""


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


@dataclass(frozen=True)
class RootEntry:
    """One entry of a root filesystem layer (path relative, no leading or trailing "/")."""

    path: str
    mode: int
    size: int = 0
    uid: int = 0
    gid: int = 0
    mtime: int = LINUXKIT_MTIME
    rdevmajor: int = 0
    rdevminor: int = 0
    data: bytes | None = None
    opener: Callable[[], BinaryIO] | None = None

    @property
    def is_dir(self) -> bool:
        """True for a directory."""
        return stat.S_ISDIR(self.mode)


def file_opener(path: Path) -> Callable[[], BinaryIO]:
    """A callable that opens `path` for reading (unbuffered: the chunks are large)."""

    def _open() -> BinaryIO:
        return path.open("rb", buffering=0)

    return _open


def _tar_opener(
    tar: tarfile.TarFile, member: tarfile.TarInfo, where: str
) -> Callable[[], BinaryIO]:
    def _open() -> BinaryIO:
        return _tar_member(tar, member, where)

    return _open


def _sort_key(entry: RootEntry) -> tuple[str, ...]:
    # Docker's archive walk: depth first, names sorted per directory
    return tuple(entry.path.split("/"))


def _check_path(path: str, where: str) -> str:
    clean = path.strip("/")
    while clean.startswith("./"):
        clean = clean[2:]
    parts = clean.split("/")
    if clean in ("", ".") or any(p in ("", ".", "..") for p in parts):
        raise RootfsError(f"{where}: unsafe or empty path {path!r}")
    return clean


def _symlink(path: str, target: str, mtime: int, uid: int = 0, gid: int = 0) -> RootEntry:
    raw = target.encode()
    return RootEntry(path, stat.S_IFLNK | 0o777, len(raw), uid, gid, mtime, data=raw)


def _relative_link(path: str, target: str) -> str:
    # linuxkit turns hard links into relative symlinks
    return posixpath.relpath("/" + target, "/" + posixpath.dirname(path))


def walk_directory(root: Path, mtime: int | None) -> list[RootEntry]:
    """The entries of a directory tree (owner uid/gid mapped to 0, like `COPY`).

    Args:
        root: the directory.
        mtime: replace every mtime with this value, or None to keep them.

    Raises:
        RootfsError: an unreadable directory or a socket.
    """
    out: list[RootEntry] = []
    seen: dict[tuple[int, int], str] = {}

    def visit(directory: Path, rel: str) -> None:
        try:
            names = sorted(p.name for p in directory.iterdir())
        except OSError as exc:
            raise RootfsError(f"{directory}: {(exc.strerror or str(exc)).lower()}") from exc
        for name in names:
            full = directory / name
            path = f"{rel}{name}"
            st = full.lstat()
            when = int(st.st_mtime) if mtime is None else mtime
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                out.append(RootEntry(path, stat.S_IFDIR | perm, mtime=when))
                visit(full, path + "/")
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    out.append(_symlink(path, _relative_link(path, seen[key]), when))
                    continue
                seen[key] = path
                out.append(
                    RootEntry(
                        path,
                        stat.S_IFREG | perm,
                        st.st_size,
                        mtime=when,
                        opener=file_opener(full),
                    )
                )
            elif stat.S_ISLNK(st.st_mode):
                out.append(replace(_symlink(path, str(full.readlink()), when), mode=st.st_mode))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                out.append(
                    RootEntry(
                        path,
                        st.st_mode,
                        mtime=when,
                        rdevmajor=os.major(st.st_rdev),
                        rdevminor=os.minor(st.st_rdev),
                    )
                )
            else:
                raise RootfsError(f"{full}: unsupported file type (socket or unknown)")

    visit(root, "")
    return out


def read_tar(tar: tarfile.TarFile, where: str, mtime: int | None) -> list[RootEntry]:
    """The entries of a tar (e.g. `docker export`), uid/gid and modes kept.

    Raises:
        RootfsError: an unsafe path or an unsupported member type.
    """
    out: list[RootEntry] = []
    for member in tar:
        if member.name.strip("/") in ("", ".") and member.isdir():
            continue  # the archive's root ("./" from `tar -C DIR .`)
        path = _check_path(member.name, where)
        when = int(member.mtime) if mtime is None else mtime
        perm = member.mode & 0o7777
        if member.isdir():
            out.append(
                RootEntry(path, stat.S_IFDIR | perm, uid=member.uid, gid=member.gid, mtime=when)
            )
        elif member.isreg():
            out.append(
                RootEntry(
                    path,
                    stat.S_IFREG | perm,
                    member.size,
                    opener=_tar_opener(tar, member, where),
                    uid=member.uid,
                    gid=member.gid,
                    mtime=when,
                )
            )
        elif member.issym():
            out.append(
                replace(
                    _symlink(path, member.linkname, when, member.uid, member.gid),
                    mode=stat.S_IFLNK | perm,
                )
            )
        elif member.islnk():
            target = _check_path(member.linkname, where)
            out.append(_symlink(path, _relative_link(path, target), when, member.uid, member.gid))
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = (
                stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            )
            out.append(
                RootEntry(
                    path,
                    kind | perm,
                    rdevmajor=member.devmajor,
                    rdevminor=member.devminor,
                    uid=member.uid,
                    gid=member.gid,
                    mtime=when,
                )
            )
        else:
            raise RootfsError(f"{where}: {member.name}: unsupported tar member type")
    return out


def _tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> BinaryIO:
    stream = tar.extractfile(member)
    if stream is None:
        raise RootfsError(f"{where}: {member.name}: cannot read member data")
    return stream  # type: ignore[return-value]


def load_rootfs(path: Path | None, stack: ExitStack, mtime: int | None) -> list[RootEntry]:
    """Entries of `--rootfs` (a directory or a tar, any compression), or none.

    Raises:
        RootfsError: not a directory or readable tar, or a bad entry.
    """
    if path is None:
        return []
    if path.is_dir():
        return walk_directory(path, mtime)
    try:
        tar = stack.enter_context(tarfile.open(path, "r:*"))  # noqa: SIM115
        return read_tar(tar, str(path), mtime)
    except (tarfile.TarError, EOFError) as exc:
        raise RootfsError(f"{path}: not a directory or a readable tar archive") from exc


def merge_layer(base: list[RootEntry], layer: list[RootEntry]) -> list[RootEntry]:
    """Overlay `layer` on `base` (same path: the layer wins), adding missing parent dirs.

    Returns the merged entries in Docker's walk order.
    """
    entries = {e.path: e for e in base}
    for entry in layer:
        parts = entry.path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in entries:
                entries[parent] = RootEntry(parent, stat.S_IFDIR | 0o755)
        entries[entry.path] = entry
    return sorted(entries.values(), key=_sort_key)


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
        return replace(_symlink(path, MTAB_TARGET, LINUXKIT_MTIME), mode=stat.S_IFLNK | 0o755)
    if path == "etc/resolv.conf":
        return replace(_symlink(path, RESOLV_TARGET, LINUXKIT_MTIME), mode=stat.S_IFLNK | 0o644)
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


def resolve(entries: Sequence[RootEntry], path: str) -> RootEntry | None:
    """The entry `path` names in a layer, following symlinks (absolute ones from the root).

    Returns None when a component is missing, a loop, or more than 40 links.
    """
    table = {e.path: e for e in entries}
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in {"", "."}:
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        entry = table.get("/".join([*done, part]))
        if entry is None:
            return None
        if stat.S_ISLNK(entry.mode):
            hops += 1
            target = (entry.data or b"").decode("utf-8", "surrogateescape")
            if hops > 40:
                return None
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return table.get("/".join(done)) if done else None


def check_server_interpreter(entries: Sequence[RootEntry], interpreter: str, where: str) -> None:
    """Refuse a rootfs whose enclave server interpreter is missing (enclave-image.md §5.3).

    Raises:
        RootfsError: `interpreter` (e.g. /opt/nitro-bundles/venv/bin/python3) does not
            resolve to an executable regular file of the layer.
    """
    entry = resolve(entries, interpreter)
    if entry is None or not stat.S_ISREG(entry.mode) or not entry.mode & 0o111:
        raise RootfsError(
            f"{where}: has no {interpreter} (the enclave server's Python): an image built on "
            "it could not start its server; build the rootfs with toolchain/rootfs/build.sh"
        )
