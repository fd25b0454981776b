# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The bytes of one session file: a `bytearray` while small, an anonymous memfd once large.

Why two kinds (specs/sync.md §12, "Large files"): a `bytearray` that grows takes
its fresh pages by faulting them in one at a time, which on this class of
machine (a VM) costs more than copying the data; `pwrite` into a memfd lets
the kernel allocate the pages in bulk, about 2.5x cheaper per GiB, and the
kernel can then copy a file out (`sendfile`) without Python touching the bytes.
A memfd has no name in any directory, so no path reaches it; it dies with the
process. Small files stay `bytearray`s: a descriptor each would be wasteful.
Reads and writes are the caller's to serialise (the session filesystem's lock).

`seal()` makes a memfd's bytes immutable (F_SEAL_WRITE, GROW, SHRINK: the kernel refuses
any change), so a reader may map them and use them in place (the runner decrypts a bundle
that way). A later write to the file copies it into a fresh memfd first; the sealed one
lives on, unchanged, for as long as someone maps it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource

PROMOTE_BYTES = 256 * 1024
"""A file that grows past this moves from a `bytearray` into a memfd."""

_COPY_CHUNK = 1024 * 1024
_SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK
_limit_raised = False


def _raise_fd_limit() -> None:
    """Let this process hold as many descriptors as its hard limit allows (once)."""
    global _limit_raised  # noqa: PLW0603 - a process-wide, one-time adjustment
    if _limit_raised:
        return
    _limit_raised = True
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            want = 1 << 20 if hard == resource.RLIM_INFINITY else hard
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _new_memfd() -> int | None:
    """A fresh memfd, or None where there is none (or no descriptor left)."""
    create = getattr(os, "memfd_create", None)
    if create is None:
        return None
    _raise_fd_limit()
    try:
        flags = getattr(os, "MFD_CLOEXEC", 1) | getattr(os, "MFD_ALLOW_SEALING", 2)
        return int(create("nb-session-file", flags))
    except OSError:
        return None


def _copy_fd(src: int, dst: int, size: int) -> None:
    done = 0
    while done < size:
        sent = os.sendfile(dst, src, done, size - done)
        if sent <= 0:
            raise OSError(errno.EIO, "short copy of a sealed session file")
        done += sent


class FileContent:
    """Content of one file; see the module docstring."""

    __slots__ = ("_buf", "_fd", "_sealed", "_size")

    def __init__(self) -> None:
        self._buf: bytearray | None = bytearray()
        self._fd: int | None = None
        self._sealed = False
        self._size = 0

    def __del__(self) -> None:
        self.clear()

    @property
    def size(self) -> int:
        """Length in bytes."""
        return self._size

    def clear(self) -> None:
        """Drop every byte (and the memfd, if any)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self._buf = bytearray()
        self._sealed = False
        self._size = 0

    def seal(self) -> int | None:
        """Make the bytes immutable and return the memfd to map (None: not in a memfd)."""
        if self._fd is None:
            return None
        if not self._sealed:
            try:
                fcntl.fcntl(self._fd, fcntl.F_ADD_SEALS, _SEALS)
            except OSError:
                return None  # a kernel without seals: the caller copies instead
            self._sealed = True
        return self._fd

    def _unseal(self) -> None:
        # Before any change to sealed bytes: continue in a copy; the sealed memfd stays as
        # it is for whoever maps it (the mapping holds its own reference).
        if not self._sealed:
            return
        assert self._fd is not None
        fd = _new_memfd()
        if fd is None:
            raise OSError(errno.ENOMEM, "cannot copy a sealed session file")
        try:
            _copy_fd(self._fd, fd, self._size)
        except OSError:
            os.close(fd)
            raise
        os.close(self._fd)
        self._fd, self._sealed = fd, False

    def _promote(self, need: int) -> None:
        if self._buf is None or need <= PROMOTE_BYTES:
            return
        fd = _new_memfd()
        if fd is None:
            return  # stays a bytearray: slower, never wrong
        try:
            view = memoryview(self._buf)
            done = 0
            while done < len(view):
                done += os.pwrite(fd, view[done:], done)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._buf = fd, None

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write `data` at `offset`; a gap before it reads as zeros."""
        view = memoryview(data).cast("B")
        end = offset + view.nbytes
        self._unseal()
        self._promote(end)
        if self._buf is not None:
            buf = self._buf
            if offset > len(buf):
                buf.extend(bytes(offset - len(buf)))
            buf[offset:end] = view
        else:
            assert self._fd is not None
            done = 0
            while done < view.nbytes:
                written = os.pwrite(self._fd, view[done:], offset + done)
                if written <= 0:
                    raise OSError(errno.EIO, "short write to session memory")
                done += written
        self._size = max(self._size, end)

    def truncate(self, size: int) -> None:
        """Set the length, zero-filling when it grows."""
        self._unseal()
        self._promote(size)
        if self._buf is not None:
            if size > len(self._buf):
                self._buf.extend(bytes(size - len(self._buf)))
            else:
                del self._buf[size:]
        else:
            assert self._fd is not None
            os.ftruncate(self._fd, size)
        self._size = size

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer at the end)."""
        length = max(0, min(length, self._size - offset))
        if length == 0:
            return b""
        if self._buf is not None:
            return bytes(self._buf[offset : offset + length])
        assert self._fd is not None
        parts: list[bytes] = []
        while length > 0:
            chunk = os.pread(self._fd, length, offset)
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def readinto(self, offset: int, out: memoryview) -> int:
        """Fill `out` from `offset` (fewer bytes at the end); one copy, no allocation."""
        length = max(0, min(out.nbytes, self._size - offset))
        if length == 0:
            return 0
        if self._buf is not None:
            out[:length] = memoryview(self._buf)[offset : offset + length]
            return length
        assert self._fd is not None
        done = 0
        while done < length:
            got = os.preadv(self._fd, [out[done:length]], offset + done)
            if got <= 0:
                break
            done += got
        return done

    def reader(self) -> int | None:
        """A descriptor of this content's memfd, for the caller to close; None: a `bytearray`.

        It stays valid after a `clear` or an unseal, which close only our own: the digest
        pipeline reads behind the writer through it without the session lock
        (specs/receipts.md §4.1.1).
        """
        return None if self._fd is None else os.dup(self._fd)

    def copy_to(self, out_fd: int) -> None:
        """Write every byte to `out_fd` from its start, in the kernel where it can."""
        if self._fd is not None:
            offset = 0
            try:
                while offset < self._size:
                    sent = os.sendfile(out_fd, self._fd, offset, self._size - offset)
                    if sent == 0:
                        break
                    offset += sent
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOSYS) or offset:
                    raise
            else:
                if offset == self._size:
                    return
        offset = 0
        while offset < self._size:
            chunk = self.read(offset, _COPY_CHUNK)
            view = memoryview(chunk)
            while view:
                view = view[os.write(out_fd, view) :]
            offset += len(chunk)
