# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The FUSE view of the enclave's session filesystem (specs/sync.md).

`SyncOperations` answers the kernel. Everything the user writes goes to the
backing store first and is pipelined to the enclave (no round trip per
write); the enclave's first error for an open file comes back on
flush/fsync/close as its errno. Metadata, listings and reads outside
`output/` come from the store, which holds exactly what the enclave holds
(write-through plus replay); `output/` is the enclave's and is read from it.
"""

# The hot paths use os.* on str paths: pathlib would add an object per call.
# The hot paths use os.* on str paths: pathlib would add an object per call.
from __future__ import annotations

import errno
import functools
import logging
import os
import stat

from user_runtime.sync.core import (
    IO_SIZE,
    Attrs,
    Handle,
    classify,
    session_path,
    stat_dict,
    store_write,
)
from user_runtime.sync.namespace import NamespaceOps
from user_runtime.sync.replay import Pending
from user_runtime.sync.store import OUTPUT, is_output

__all__ = ["IO_SIZE", "Attrs", "SyncOperations", "classify"]

log = logging.getLogger(__name__)


class SyncOperations(NamespaceOps):
    """FUSE operations over the backing store and the enclave link (mfusepy's API)."""

    use_ns = True

    # -- lifecycle -----------------------------------------------------------------------

    def init(self, path: str) -> None:
        """Mounted: tell whoever waits for readiness."""
        del path
        if self.on_init is not None:
            self.on_init()
        if self._on_ready is not None:
            self._on_ready()

    def destroy(self, path: str) -> None:
        """Unmounted: close every descriptor and the link."""
        del path
        with self._lock:
            fhs, handles = list(self._handles), list(self._handles.values())
            self._handles.clear()
        self.replay.stop()  # sends what is held and collects the answers first
        self._writes.stop()
        if self._fast is not None:
            for fh in fhs:
                self._fast.unregister(fh)
        for handle in handles:
            if handle.fd is not None:
                os.close(handle.fd)
        self.enclave_link.close()
        try:
            self.store.save_journal(self.enclave_link.synced.snapshot())
        except OSError as e:
            log.warning("cannot save the sync journal: %s", e)

    # -- metadata ------------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        """Status from the store, or from the enclave inside output/."""
        del fh
        mode, size, nlink, atime, mtime, ctime = self.attrs(path)
        return stat_dict(mode, size, nlink, (atime, mtime, ctime))

    def attrs(self, path: str) -> Attrs:
        """`getattr` as a tuple: mode, size, nlink, atime, mtime, ctime (ns)."""
        parts = self._parts(path)
        if is_output(parts):
            info = self._remote(lambda c: c.stat(session_path(path)))
            return (info.mode, info.size, info.nlink, info.atime_ns, info.mtime_ns, info.ctime_ns)
        self._writes.drain_local()  # queued store writes first: sizes must include them
        st = self.store.lstat(path)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise OSError(errno.ENOENT, "not a file or folder")
        return (st.st_mode, st.st_size, st.st_nlink, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)

    def readdir(self, path: str, fh: int) -> list[str]:
        """List a folder (the root also lists the enclave's output/)."""
        del fh
        parts = self._parts(path)
        if is_output(parts):
            entries = self._remote(lambda c: c.listdir(session_path(path)))
            return [".", "..", *(name for name, _ in entries)]
        names = [n for n in self.store.listdir(path) if parts or n != OUTPUT]
        if not parts:
            names.append(OUTPUT)
        return [".", "..", *names]

    # -- files ---------------------------------------------------------------------------

    def create(self, path: str, mode: int, flags: int = 0) -> int:
        """Create (or with O_TRUNC, empty) a file and open it.

        Outside output/ the store answers at once (EEXIST, ENOENT...) and the
        file stays `fresh`: small writes go to the store only, and the enclave
        gets the whole file in one `put` at flush (or before any other enclave
        request, or once it outgrows a `put`); an enclave refusal (ENOSPC)
        surfaces on flush/close (specs/sync.md §6).
        """
        parts = self._parts(path)
        truncate = bool(flags & os.O_TRUNC)
        exclusive = bool(flags & os.O_EXCL)
        sp, perm = session_path(path), mode & 0o7777
        if is_output(parts):
            self._remote(lambda c: c.create(sp, perm, truncate=truncate, exclusive=exclusive))
            return self._new_handle(path, None)
        store_flags = os.O_CREAT | (os.O_TRUNC if truncate else 0) | (os.O_EXCL if exclusive else 0)
        fh = self._new_handle(path, self.store.open(path, store_flags, mode))
        handle = self._handles[fh]
        handle.dirty = handle.written = handle.fresh = True
        handle.mode = perm
        with self._lock:
            self._fresh[fh] = handle
        if self._fast is not None and handle.fd is not None:
            self._fast.register(fh, handle.fd)  # its small writes: C, into the store (§8.1)
        return fh

    def open(self, path: str, flags: int) -> int:
        """Open an existing file (O_TRUNC empties it on both sides: atomic_o_trunc)."""
        parts = self._parts(path)
        self._check_failed(path)
        if flags & os.O_TRUNC:
            self.truncate(path, 0)
        if self._fresh:  # a second descriptor's writes are sent as they come: the file first
            with self._lock:
                same = [(fh, h) for fh, h in self._fresh.items() if h.path == path]
            for fh, handle in same:
                self._materialize(fh, handle)
        if is_output(parts):
            info = self._remote(lambda c: c.stat(session_path(path)))
            if stat.S_ISDIR(info.mode):
                raise OSError(errno.EISDIR, "is a directory")
            return self._new_handle(path, None)
        return self._new_handle(path, self.store.open(path, flags & ~os.O_TRUNC))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        """Read from the store, or from the enclave inside output/."""
        handle = self._handle(fh)
        if handle.fd is not None:
            self._writes.drain()
            return os.pread(handle.fd, size, offset)
        if handle.dirty:
            self._flush_handle(path, fh)
        return bytes(self._remote(lambda c: c.read(session_path(path), offset, size)))

    def write(self, path: str | None, data: bytes | memoryview, offset: int, fh: int) -> int:
        """Write through to the store and pipeline to the enclave."""
        handle = self._handle(fh)
        if handle.error:
            raise OSError(handle.error, os.strerror(handle.error))
        if handle.fresh:
            with handle.lock:
                fits = offset + len(data) <= self._writes.inline_bytes
                if handle.fd is not None and fits and handle.fresh:
                    store_write(handle.fd, offset, data)  # the `put` at flush sends it
                    return len(data)
            self._materialize(fh, handle)  # too large for a `put`: send it, write on
        handle.dirty = handle.written = True
        handle.fd_sends = handle.fd is not None
        sp = None if path is None else session_path(path)
        key, fd, size = f"fh:{fh}", handle.fd, len(data)
        if fd is not None and sp is not None and size > self._writes.inline_bytes:
            # Large: into the store now, from libfuse's buffer; the queue thread then
            # sends the store's bytes with sendfile (no copy in Python, §6).
            self._writes.drain_local()  # earlier queued store writes land first
            store_write(fd, offset, data)
            self._writes.put_call(
                handle, lambda c: c.write_pipelined_from(sp, offset, fd, size, key=key), size
            )
            return size
        local = None if fd is None else functools.partial(store_write, fd, offset)
        self._writes.put(handle, local=local, path=sp, offset=offset, data=data, key=key)
        return size

    def flush(self, path: str | None, fh: int) -> int:
        """Queue the file's answers for the replay queue; a known error comes back (§6.3).

        `close` does not wait for the enclave: the file is in the store already.
        """
        self._flush_handle(path, fh)
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        """Wait for the enclave's answers to this file, then sync the store's disk."""
        del datasync
        handle = self._handle(fh)
        self._flush_handle(path, fh, wait=True)
        if handle.fd is not None:
            os.fsync(handle.fd)
        return 0

    def release(self, path: str | None, fh: int) -> int:
        """Close; a file closed without `flush` joins the replay queue here."""
        del path  # the handle knows it (nullpath_ok passes None)
        with self._lock:
            handle = self._handles.pop(fh, None)
        if handle is None:
            return 0
        try:
            if handle.fd is not None and not handle.error:
                self._queue_close(fh, handle)
        except OSError as e:
            log.warning("%s: closing: %s", handle.path, e)
        finally:
            with self._lock:
                self._fresh.pop(fh, None)
            if handle.fresh and self._fast is not None:
                self._fast.unregister(fh)  # before its descriptor closes
            if handle.fd_sends:
                self._writes.drain()  # queued store writes and sends read the descriptor
            if handle.fd is not None:
                os.close(handle.fd)
        return 0

    def _queue_close(self, fh: int, handle: Handle) -> None:
        self._materialize(fh, handle)
        if handle.dirty and handle.fd is not None:
            if handle.fd_sends:
                self._writes.drain_local()
            st = os.fstat(handle.fd)
            item = Pending(f"fh:{fh}", session_path(handle.path), st.st_size, st.st_mtime_ns)
            handle.dirty = False
            self.replay.add(item)
