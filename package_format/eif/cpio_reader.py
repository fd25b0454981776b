# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Reading newc cpio archives such as an EIF's ramdisks (specs/enclave-image.md §5.3).

The local enclave launcher reads the server code and `enclave.json` out of the
customer ramdisk, so that what runs is exactly what PCR2 measures.
"""

from __future__ import annotations

import io
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from package_format.eif.cpio import HEADER_SIZE, NEWC_MAGIC, TRAILER
from package_format.eif.errors import CpioFormatError, CpioLimitError

_HEX = frozenset(b"0123456789abcdefABCDEF")


class Readable(Protocol):
    """Anything with a binary `read(n)`."""

    def read(self, n: int = -1, /) -> bytes:
        """Read up to `n` bytes."""
        ...


@dataclass(frozen=True)
class CpioLimits:
    """Limits on untrusted archives."""

    max_entries: int = 1_000_000
    max_name_size: int = 4096
    max_member_size: int = 256 << 20  # per member whose data is returned
    # Zero padding after TRAILER!!! (writers pad to 512); anything more is refused unread.
    max_trailer_padding: int = 512


@dataclass(frozen=True)
class CpioMember:
    """One archive member as read.

    Attributes:
        name: the stored name.
        mode: full st_mode.
        size: data size.
        data: the data, or None when the caller's filter skipped it.
    """

    name: str
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int
    ino: int
    rdevmajor: int
    rdevminor: int
    data: bytes | None

    @property
    def is_dir(self) -> bool:
        """True for a directory."""
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        """True for a regular file."""
        return stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        """True for a symbolic link (`data` is the target)."""
        return stat.S_ISLNK(self.mode)


class _Stream:
    def __init__(self, stream: Readable) -> None:
        self._s = stream
        self.pos = 0

    def read(self, n: int, what: str) -> bytes:
        data = self._s.read(n)
        if len(data) != n:
            raise CpioFormatError(f"cpio: truncated {what} at offset {self.pos}")
        self.pos += n
        return data

    def skip(self, n: int, what: str, sink: Callable[[bytes], object] | None = None) -> None:
        while n:
            chunk = self.read(min(n, 1 << 20), what)
            if sink is not None:
                sink(chunk)
            n -= len(chunk)

    def padding(self, what: str) -> None:
        pad = self.read(-self.pos % 4, what)
        if pad.strip(b"\0"):
            raise CpioFormatError(f"cpio: non-zero padding after {what}")


def _read_header(
    src: _Stream, lim: CpioLimits
) -> tuple[int, int, int, int, int, int, int, int, str]:
    head = src.read(HEADER_SIZE, "entry header")
    if head[:6] != NEWC_MAGIC:
        raise CpioFormatError(f"cpio: bad magic at offset {src.pos - HEADER_SIZE}")
    raw = head[6:]
    if not _HEX.issuperset(raw):
        raise CpioFormatError(f"cpio: non-hex header field at offset {src.pos - HEADER_SIZE}")
    f = [int(raw[i : i + 8], 16) for i in range(0, 104, 8)]
    ino, mode, uid, gid, _nlink, mtime, size, _dmaj, _dmin, rmaj, rmin, namesize, _chk = f
    if namesize < 2 or namesize > lim.max_name_size:
        raise CpioLimitError(f"cpio: name size {namesize} out of range")
    raw_name = src.read(namesize, "name")
    if raw_name[-1] != 0 or b"\0" in raw_name[:-1]:
        raise CpioFormatError("cpio: name not NUL-terminated")
    try:
        name = raw_name[:-1].decode()
    except UnicodeDecodeError as exc:
        raise CpioFormatError("cpio: name is not utf-8") from exc
    return ino, mode, uid, gid, mtime, size, rmaj, rmin, name


def _check_trailer_padding(src: _Stream, lim: CpioLimits) -> None:
    """Read at most `max_trailer_padding` + 1 bytes after the trailer: zeros, then the end."""
    rest = src._s.read(lim.max_trailer_padding + 1)  # noqa: SLF001 - the raw stream's end
    if len(rest) > lim.max_trailer_padding or rest.strip(b"\0"):
        raise CpioFormatError("cpio: data after the trailer")


def iter_cpio(
    stream: Readable | bytes,
    limits: CpioLimits | None = None,
    want: Callable[[str], bool] | None = None,
    sink: Callable[[CpioMember], Callable[[bytes], object] | None] | None = None,
) -> Iterator[CpioMember]:
    """Yield the members of a newc archive up to (not including) the trailer.

    Args:
        stream: the archive bytes or a binary stream positioned at its start.
        limits: limits on untrusted input.
        want: which names to return data for (default: all); others are skipped
            without being held in memory. Symlink targets are always returned.
        sink: for a member whose data is not returned, called with its header (data None)
            before its data is read; the callable it returns, if any, gets the data in
            chunks of at most 1 MiB (an extractor streams members of any size this way).

    Raises:
        CpioFormatError: bad magic, hex field, name, padding, truncation or trailer.
        CpioLimitError: too many entries, a name or a returned member too large.
    """
    lim = limits or CpioLimits()
    src = _Stream(io.BytesIO(stream) if isinstance(stream, bytes) else stream)
    count = 0
    while True:
        ino, mode, uid, gid, mtime, size, rmaj, rmin, name = _read_header(src, lim)
        src.padding("name")
        if name == TRAILER:
            _check_trailer_padding(src, lim)
            return
        count += 1
        if count > lim.max_entries:
            raise CpioLimitError(f"cpio: more than {lim.max_entries} entries")
        data: bytes | None = None
        if stat.S_ISLNK(mode) or want is None or want(name):
            if size > lim.max_member_size:
                raise CpioLimitError(f"cpio: {name}: {size} bytes over the member limit")
            data = src.read(size, f"data of {name}")
        else:
            head = CpioMember(name, mode, uid, gid, mtime, size, ino, rmaj, rmin, None)
            src.skip(size, f"data of {name}", sink(head) if sink is not None else None)
        src.padding(f"data of {name}")
        yield CpioMember(name, mode, uid, gid, mtime, size, ino, rmaj, rmin, data)


def read_cpio(
    stream: Readable | bytes,
    limits: CpioLimits | None = None,
    want: Callable[[str], bool] | None = None,
) -> list[CpioMember]:
    """All members of a newc archive (see `iter_cpio`).

    Raises:
        CpioFormatError: as `iter_cpio`.
        CpioLimitError: as `iter_cpio`.
    """
    return list(iter_cpio(stream, limits, want))


def extract_files(
    stream: Readable | bytes, prefix: str, limits: CpioLimits | None = None
) -> dict[str, bytes]:
    """Regular files under `prefix` (e.g. "rootfs/opt/nitro-bundles/python/"), by relative path.

    Later duplicates win, as when the kernel unpacks the archive.

    Raises:
        CpioFormatError: as `iter_cpio`, or a member path escapes `prefix` with "..".
        CpioLimitError: as `iter_cpio`.
    """
    out: dict[str, bytes] = {}
    for m in iter_cpio(stream, limits, want=lambda n: n.startswith(prefix)):
        if not m.name.startswith(prefix) or not m.is_file:
            continue
        rel = m.name[len(prefix) :]
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise CpioFormatError(f"cpio: unsafe member path {m.name!r}")
        assert m.data is not None
        out[rel] = m.data
    return out
