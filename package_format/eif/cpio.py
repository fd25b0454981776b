# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""SVR4 "newc" cpio, byte-compatible with linuxkit's gocpio writer (specs/enclave-image.md §5).

Each entry: "070701", 13 lowercase `%08x` fields (ino, mode, uid, gid, nlink,
mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check),
the name and a NUL, zero padding to 4 bytes, the data, zero padding to 4.
Inodes count from 721, devmajor:devminor is 3:1, the archive ends with
`TRAILER!!!` and zero padding to a multiple of 512. The writer streams; sizes
are known up front so the ramdisk's length can go into the EIF header first.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from package_format.eif.errors import CpioFormatError, CpioLimitError

NEWC_MAGIC = b"070701"
HEADER_SIZE = 110
FIRST_INO = 721
DEV_MAJOR, DEV_MINOR = 3, 1
TRAILER = "TRAILER!!!"
CHUNK = 1 << 20
S_IFMT = 0o170000

#: linuxkit's defaultModTime, 2017-04-18 16:30:00 UTC.
LINUXKIT_MTIME = 1492533000


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


@dataclass(frozen=True)
class CpioEntry:
    """One archive member to write.

    Attributes:
        name: path as stored (no leading "/"; directories may end in "/").
        mode: full st_mode (file type bits and permissions).
        size: data size (symlinks: length of the target).
        data: the data in memory, or None when `opener` provides it.
        opener: returns a binary stream with exactly `size` bytes.
    """

    name: str
    mode: int
    size: int = 0
    uid: int = 0
    gid: int = 0
    mtime: int = LINUXKIT_MTIME
    rdevmajor: int = 0
    rdevminor: int = 0
    data: bytes | None = None
    opener: Callable[[], BinaryIO] | None = field(default=None, compare=False)

    @classmethod
    def directory(cls, name: str, perm: int = 0o755, mtime: int = LINUXKIT_MTIME) -> CpioEntry:
        """A directory entry."""
        return cls(name=name, mode=stat.S_IFDIR | perm, mtime=mtime)

    @classmethod
    def file(
        cls, name: str, data: bytes, perm: int = 0o644, mtime: int = LINUXKIT_MTIME
    ) -> CpioEntry:
        """A regular file held in memory."""
        return cls(name=name, mode=stat.S_IFREG | perm, size=len(data), data=data, mtime=mtime)

    @classmethod
    def symlink(
        cls, name: str, target: str, perm: int = 0o777, mtime: int = LINUXKIT_MTIME
    ) -> CpioEntry:
        """A symbolic link (the target is the entry's data)."""
        raw = target.encode()
        return cls(name=name, mode=stat.S_IFLNK | perm, size=len(raw), data=raw, mtime=mtime)


def _header(entry: CpioEntry, ino: int, name: bytes) -> bytes:
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (
        ino,
        entry.mode,
        entry.uid,
        entry.gid,
        nlink,
        entry.mtime,
        entry.size,
        DEV_MAJOR,
        DEV_MINOR,
        entry.rdevmajor,
        entry.rdevminor,
        len(name) + 1,
        0,
    )
    for value in fields:
        if not 0 <= value <= 0xFFFFFFFF:
            raise CpioLimitError(f"cpio entry {entry.name!r}: field value {value} out of range")
    return NEWC_MAGIC + "".join(f"{v:08x}" for v in fields).encode()


def _member_size(name_len: int, size: int) -> int:
    head = HEADER_SIZE + name_len + 1
    return head + _pad4(head) + size + _pad4(size)


def archive_size(entries: Iterable[CpioEntry]) -> int:
    """Exact byte length of the archive `iter_archive` will produce for `entries`."""
    total = sum(_member_size(len(e.name.encode()), e.size) for e in entries)
    total += _member_size(len(TRAILER), 0)
    return total + (-total % 512)


def _entry_data(entry: CpioEntry) -> Iterator[bytes]:
    if entry.data is not None:
        if len(entry.data) != entry.size:
            raise CpioFormatError(f"cpio entry {entry.name!r}: data length is not its size")
        yield entry.data
        return
    if entry.size == 0:
        return
    if entry.opener is None:
        raise CpioFormatError(f"cpio entry {entry.name!r}: no data source")
    left = entry.size
    with entry.opener() as stream:
        while left:
            piece = stream.read(min(CHUNK, left))
            if not piece:
                break
            left -= len(piece)
            yield piece
        extra = stream.read(1)
    if left or extra:
        raise CpioFormatError(f"cpio entry {entry.name!r}: source changed size while reading")


def _pieces(entries: Iterable[CpioEntry]) -> Iterator[bytes]:
    ino = FIRST_INO
    total = 0
    trailer = CpioEntry(name=TRAILER, mode=0, mtime=0)
    for entry in [*entries, trailer]:
        name = entry.name.encode()
        if not name or b"\0" in name:
            raise CpioFormatError(f"cpio entry {entry.name!r}: empty name or NUL in name")
        head = _header(entry, ino, name) + name + b"\0"
        head += bytes(_pad4(len(head)))
        yield head
        yield from _entry_data(entry)
        if _pad4(entry.size):
            yield bytes(_pad4(entry.size))
        total += len(head) + entry.size + _pad4(entry.size)
        ino += 1
    if total % 512:
        yield bytes(-total % 512)


def iter_archive(entries: Iterable[CpioEntry], chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Yield the archive bytes in chunks of about `chunk_size` (the last may be shorter).

    Raises:
        CpioFormatError: a name is empty or holds NUL, or a source changed size.
        CpioLimitError: a header field does not fit in 32 bits.
    """
    buf = bytearray()
    for piece in _pieces(entries):
        if not buf and len(piece) >= chunk_size:
            yield piece
            continue
        buf += piece
        if len(buf) >= chunk_size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


def build_archive(entries: Iterable[CpioEntry]) -> bytes:
    """The whole archive in memory (small archives, tests).

    Raises:
        CpioFormatError: as `iter_archive`.
        CpioLimitError: as `iter_archive`.
    """
    return b"".join(iter_archive(entries))
