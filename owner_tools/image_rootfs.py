# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The image's root filesystem as layers of entries (specs/enclave-image.md §5.2).

A base root filesystem comes from a directory or a tar (e.g. `docker export`);
our enclave server and its configuration are merged in as one more layer; the
result is walked like Docker's archive package (depth first, names sorted per
directory). `image_ramdisk` turns it into the customer ramdisk's stream.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from owner_tools.errors import InputError
from package_format.eif import LINUXKIT_MTIME


class RootfsError(InputError):
    """The base root filesystem cannot be read or holds an unsupported entry."""


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


def symlink(path: str, target: str, mtime: int, uid: int = 0, gid: int = 0) -> RootEntry:
    """A symbolic link entry to `target` (mode 0o777, as Docker and linuxkit write them)."""
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
                    out.append(symlink(path, _relative_link(path, seen[key]), when))
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
                out.append(replace(symlink(path, str(full.readlink()), when), mode=st.st_mode))
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
                    symlink(path, member.linkname, when, member.uid, member.gid),
                    mode=stat.S_IFLNK | perm,
                )
            )
        elif member.islnk():
            target = _check_path(member.linkname, where)
            out.append(symlink(path, _relative_link(path, target), when, member.uid, member.gid))
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
