# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Namespace changes and refused operations of the sync mount (specs/sync.md §4-5).

Each change goes to the enclave first and to the store inside the same link call, so a
replay sees neither or both (§5); operations the session filesystem lacks are refused
with the errno of §4.
"""

from __future__ import annotations

import errno
import time

from user_runtime.rpc.client import RemoteError
from user_runtime.sync.core import BLOCK, UTIME_NOW, UTIME_OMIT, OperationsCore, session_path
from user_runtime.sync.session import SessionClient
from user_runtime.sync.store import is_output

__all__ = ["NamespaceOps"]


class NamespaceOps(OperationsCore):
    """`statfs`, the namespace changes and the refused operations."""

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
