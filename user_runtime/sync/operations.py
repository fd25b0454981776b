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
from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from user_runtime.rpc.client import (
    ConnectionLostError,
    EnclaveUnavailableError,
    PutFile,
    RemoteError,
)
from user_runtime.sync.link import EnclaveLink, SessionClient, upload_file
from user_runtime.sync.replay import Pending, ReplayQueue
from user_runtime.sync.store import OUTPUT, BackingStore, PathSplitter, is_output
from user_runtime.sync.writes import PutSend, WriteQueue

log = logging.getLogger(__name__)
_UID, _GID = os.getuid(), os.getgid()

BLOCK = 4096
IO_SIZE = 1024 * 1024  # st_blksize: `cp` then writes 1 MiB at a time
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
_PROTOCOL_ERRNO = {
    "BUSY": errno.EBUSY,
    "NOT_ALLOWED": errno.EPERM,
    "BAD_ARGS": errno.EINVAL,
    "TOO_LARGE": errno.EFBIG,
    "UNKNOWN_OP": errno.ENOSYS,
}


def classify(exc: BaseException) -> int | None:
    """Map an exception met while talking to the enclave to an errno (None: link lost)."""
    if isinstance(exc, RemoteError):
        return exc.errno or _PROTOCOL_ERRNO.get(exc.name, errno.EIO)
    if isinstance(exc, ConnectionLostError | EnclaveUnavailableError | ConnectionError):
        return None
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


def session_path(path: str) -> str:
    """Turn a mount path (`/dataset/a`) into a session path (`dataset/a`)."""
    return path.lstrip("/")


@dataclass
class _Handle:
    """One open file: its store descriptor (None inside output/) and first error."""

    path: str
    fd: int | None
    error: int = 0
    dirty: bool = False  # written since the last flush
    written: bool = False  # written since opened
    # Created by us and, so far, only in the store: the enclave gets it in one `put`
    # (specs/sync.md §6). `lock` orders its store writes against that `put`.
    fresh: bool = False
    mode: int = 0o644
    lock: threading.Lock = field(default_factory=threading.Lock)
    fd_sends: bool = False  # queued work reads the descriptor: drain before closing it
    pending: Pending | None = None  # its last close's answers, awaited by `fsync`

    def fail(self, code: int) -> None:
        """Keep the first error (the write queue's thread may set it concurrently)."""
        if not self.error:
            self.error = code


Attrs = tuple[int, int, int, int, int, int]


def _stat_dict(mode: int, size: int, nlink: int, times: tuple[int, int, int]) -> dict[str, int]:
    atime, mtime, ctime = times
    return {
        "st_mode": mode,
        "st_size": size,
        "st_nlink": nlink,
        "st_uid": _UID,
        "st_gid": _GID,
        "st_atime": atime,
        "st_mtime": mtime,
        "st_ctime": ctime,
        "st_blksize": IO_SIZE,
        "st_blocks": (size + 511) // 512,
    }


def _store_write(fd: int, offset: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class SyncOperations:
    """FUSE operations over the backing store and the enclave link (mfusepy's API)."""

    use_ns = True

    def __init__(
        self,
        store: BackingStore,
        link: EnclaveLink,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.enclave_link = link
        self._on_ready = on_ready
        self.on_init: Callable[[], None] | None = None
        self._writes = WriteQueue(link, self._write_failed)
        self.replay = ReplayQueue(
            link,
            send_all=self._send_all,
            send_queued=self._writes.drain,
            classify=classify,
            upload=lambda c, sp: upload_file(c, store, sp, link.synced),
        )
        self._handles: dict[int, _Handle] = {}
        self._fresh: dict[int, _Handle] = {}  # handles still `fresh`
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._split = PathSplitter()

    # -- helpers -------------------------------------------------------------------------

    def _parts(self, path: str) -> tuple[str, ...]:
        return self._split(path)

    def _new_handle(self, path: str, fd: int | None) -> int:
        with self._lock:
            fh = next(self._ids)
            self._handles[fh] = _Handle(path, fd)
        return fh

    def _handle(self, fh: int) -> _Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise OSError(errno.EBADF, "bad file handle") from None

    def _remote(self, fn: Callable[[SessionClient], Any]) -> Any:
        if self._fresh:  # what it touches may be a file the enclave has not seen yet
            with self._lock:
                fresh, self._fresh = self._fresh, {}
            for fh, handle in fresh.items():
                self._materialize(fh, handle)
        self._writes.drain()  # nothing may overtake a queued write
        return self.enclave_link.call(fn)

    def _materialize(self, fh: int, handle: _Handle) -> None:
        """Queue a fresh file's `put` (its whole bytes from the store); no-op once sent.

        Its verdict comes, like a queued write's, from `flush(fh:N)` at its close.
        """
        with self._lock:
            self._fresh.pop(fh, None)
        with handle.lock:
            if handle.fd is not None and handle.fresh:
                handle.fresh = False
                self._queue_put(fh, handle, handle.fd)

    def _queue_put(self, fh: int, handle: _Handle, fd: int) -> None:
        # Called with handle.lock held: no store write of this handle can slip between
        # reading its bytes and queueing them; later writes queue behind.
        sp, mode, key = session_path(handle.path), handle.mode, f"fh:{fh}"
        size = os.fstat(fd).st_size
        if size <= self._writes.inline_bytes:
            data = os.pread(fd, size, 0)
            self._writes.put_call(handle, PutSend(PutFile(key, sp, mode, data)), size)
            return
        # Grown past a `put` through another descriptor: create, then the store's bytes.
        handle.fd_sends = True
        args = {"path": sp, "mode": mode, "truncate": True, "exclusive": False}

        def send(c: SessionClient) -> None:
            c.call_pipelined("create", args, key=key)
            c.write_pipelined_from(sp, 0, fd, size, key=key)

        self._writes.put_call(handle, send, size)

    def _write_failed(self, token: object, code: int) -> None:
        if isinstance(token, _Handle):
            token.fail(code)
            if token.fd is not None:
                self.replay.fail(session_path(token.path), code)

    def _send_all(self) -> None:
        """Queue every fresh file's `put`, hand everything queued to the connection."""
        if self._fresh:
            with self._lock:
                fresh, self._fresh = self._fresh, {}
            for fh, handle in fresh.items():
                self._materialize(fh, handle)
        self._writes.drain()

    def _check_failed(self, path: str) -> None:
        """The enclave refused `path` after its close returned: say so, once (§6.3)."""
        code = self.replay.failed_errno(session_path(path))
        if code:
            raise OSError(code, f"the enclave refused this file earlier: {os.strerror(code)}")

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
            handles = list(self._handles.values())
            self._handles.clear()
        self.replay.stop()  # sends what is held and collects the answers first
        self._writes.stop()
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
        return _stat_dict(mode, size, nlink, (atime, mtime, ctime))

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

    def statfs(self, path: str) -> dict[str, int]:
        """The enclave's memory budget as blocks; its node limit as inodes."""
        del path
        info = self._remote(lambda c: c.statfs())
        total = int(info.get("total_bytes", 0))
        free = int(info.get("free_bytes", 0))
        max_nodes = int(info.get("max_nodes", 0))
        nodes = int(info.get("nodes", 0))
        return {
            "f_bsize": BLOCK,
            "f_frsize": BLOCK,
            "f_blocks": total // BLOCK,
            "f_bfree": free // BLOCK,
            "f_bavail": free // BLOCK,
            "f_files": max_nodes,
            "f_ffree": max(0, max_nodes - nodes),
            "f_favail": max(0, max_nodes - nodes),
            "f_namemax": int(info.get("max_name", 255)),
        }

    # -- namespace changes: enclave first, then the store, under one link call ---------

    def mkdir(self, path: str, mode: int) -> int:
        """Create a folder."""
        sp, parts = session_path(path), self._parts(path)

        def op(c: SessionClient) -> None:
            c.mkdir(sp, mode & 0o7777)
            if not is_output(parts):
                self.store.mkdir(path, mode)

        self._remote(op)
        return 0

    def rmdir(self, path: str) -> int:
        """Remove an empty folder (ENOTEMPTY otherwise)."""
        sp, parts = session_path(path), self._parts(path)
        if not is_output(parts) and self.store.listdir(path):
            raise OSError(errno.ENOTEMPTY, "directory not empty")

        def op(c: SessionClient) -> None:
            c.rmdir(sp)
            if not is_output(parts):
                self.store.rmdir(path)

        self._remote(op)
        return 0

    def unlink(self, path: str) -> int:
        """Remove a file."""
        sp, parts = session_path(path), self._parts(path)

        def op(c: SessionClient) -> None:
            try:
                c.unlink(sp)
            except RemoteError as e:
                # A refused create may have left nothing there: removed all the same.
                if e.errno != errno.ENOENT or not self.replay.is_failed(sp):
                    raise
            if not is_output(parts):
                self.store.unlink(path)
                self.enclave_link.synced.forget(sp)
                self.replay.forget(sp)

        self._remote(op)
        return 0

    def rename(self, old: str, new: str) -> int:
        """Rename within the store side or within output/; across them is EXDEV."""
        old_parts, new_parts = self._parts(old), self._parts(new)
        self._check_failed(old)
        if is_output(old_parts) != is_output(new_parts):
            raise OSError(errno.EXDEV, "output/ is the enclave's; copy instead")
        if (len(old_parts) == 1 or len(new_parts) == 1) and old_parts != new_parts:
            raise OSError(errno.EBUSY, "top-level folders cannot be moved")
        if new_parts[: len(old_parts)] == old_parts and new_parts != old_parts:
            raise OSError(errno.EINVAL, "cannot move a folder into itself")

        def op(c: SessionClient) -> None:
            c.rename(session_path(old), session_path(new))
            if not is_output(old_parts):
                self.store.rename(old, new)
                self.enclave_link.synced.move(session_path(old), session_path(new))

        self._remote(op)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        """Set permission bits."""
        parts = self._parts(path)
        self._check_failed(path)

        def op(c: SessionClient) -> None:
            c.chmod(session_path(path), mode & 0o7777)
            if not is_output(parts):
                self.store.chmod(path, mode)

        self._remote(op)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        """Owners are not part of the session filesystem."""
        del path, uid, gid
        raise OSError(errno.EPERM, "ownership is not synced")

    def utimens(
        self, path: str, times: tuple[tuple[int, int], tuple[int, int]] | None = None
    ) -> int:
        """Set times; `times` holds raw (sec, nsec) pairs with UTIME_NOW/OMIT."""
        parts = self._parts(path)
        self._check_failed(path)
        now = time.time_ns()
        if times is None:
            atime = mtime = now
        else:
            if is_output(parts):
                cur = self._remote(lambda c: c.stat(session_path(path)))
                old = (cur.atime_ns, cur.mtime_ns)
            else:
                st = self.store.lstat(path)
                old = (st.st_atime_ns, st.st_mtime_ns)
            atime, mtime = (
                now if nsec == UTIME_NOW else prev if nsec == UTIME_OMIT else sec * 10**9 + nsec
                for (sec, nsec), prev in zip(times, old, strict=True)
            )

        def op(c: SessionClient) -> None:
            c.utimens(session_path(path), atime, mtime)
            if not is_output(parts):
                self.store.utimens(path, atime, mtime)

        self._remote(op)
        return 0

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        """Set a file's size (the kernel sends this for O_TRUNC opens too)."""
        parts = self._parts(path)
        self._check_failed(path)
        if fh is not None:
            self._flush_handle(path, fh)

        def op(c: SessionClient) -> None:
            c.truncate(session_path(path), length)
            if not is_output(parts):
                self.store.truncate(path, length)

        self._remote(op)
        return 0

    # -- refused -------------------------------------------------------------------------

    def symlink(self, target: str, source: str) -> int:
        """The session filesystem has no symbolic links."""
        del target, source
        raise OSError(errno.EPERM, "symbolic links are not synced")

    def link(self, target: str, source: str) -> int:
        """The session filesystem has no hard links."""
        del target, source
        raise OSError(errno.EPERM, "hard links are not synced")

    def mknod(self, path: str, mode: int, dev: int) -> int:
        """Only regular files and folders exist in the session filesystem."""
        del path, mode, dev
        raise OSError(errno.EPERM, "special files are not synced")

    def readlink(self, path: str) -> str:
        """Nothing is a link."""
        del path
        raise OSError(errno.EINVAL, "not a symbolic link")

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
                    _store_write(handle.fd, offset, data)  # the `put` at flush sends it
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
            _store_write(fd, offset, data)
            self._writes.put_call(
                handle, lambda c: c.write_pipelined_from(sp, offset, fd, size, key=key), size
            )
            return size
        local = None if fd is None else functools.partial(_store_write, fd, offset)
        self._writes.put(handle, local=local, path=sp, offset=offset, data=data, key=key)
        return size

    def _flush_handle(self, path: str | None, fh: int, *, wait: bool = False) -> None:
        handle = self._handle(fh)
        self._materialize(fh, handle)
        if handle.fd is None:  # output/: the enclave's verdict now, as ever
            if handle.dirty and not handle.error:
                key = f"fh:{fh}"
                try:
                    self._remote(lambda c: c.flush(key))  # drains the queue first
                except OSError as e:
                    handle.fail(e.errno or errno.EIO)
        elif handle.dirty and not handle.error:
            # Synced tree: the file is in the store; its answers come behind (§6.3).
            if handle.fd_sends:
                self._writes.drain_local()  # its queued store writes land before the stat
            st = os.fstat(handle.fd)
            sp = session_path(path if path is not None else handle.path)
            item = Pending(f"fh:{fh}", sp, st.st_size, st.st_mtime_ns, handle.fail)
            handle.pending, handle.dirty = item, False
            self.replay.add(item)
        if wait and handle.pending is not None:
            code = self.replay.wait(handle.pending)
            if code:
                handle.fail(code)
        if handle.error:
            raise OSError(handle.error, os.strerror(handle.error))
        handle.dirty = False

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
            if handle.fd_sends:
                self._writes.drain()  # queued store writes and sends read the descriptor
            if handle.fd is not None:
                os.close(handle.fd)
        return 0

    def _queue_close(self, fh: int, handle: _Handle) -> None:
        self._materialize(fh, handle)
        if handle.dirty and handle.fd is not None:
            if handle.fd_sends:
                self._writes.drain_local()
            st = os.fstat(handle.fd)
            item = Pending(f"fh:{fh}", session_path(handle.path), st.st_size, st.st_mtime_ns)
            handle.dirty = False
            self.replay.add(item)
