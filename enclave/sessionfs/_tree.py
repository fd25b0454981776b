# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The tree: path checks, lookups and the RPC's filesystem operations (rpc-protocol.md §7.2)."""

from __future__ import annotations

import bisect
import stat as st
import threading
import time
from collections.abc import Callable

from enclave.file_content import FileContent
from enclave.sessionfs._nodes import (
    ENTRY_OVERHEAD,
    TOP_LEVEL,
    SessionLimits,
    StatInfo,
    _Dir,
    _err,
    _File,
)
from enclave.stream_digest import DigestPipeline, StreamDigest
from package_format.rpc.codes import ErrorCode


class SessionTree:
    """The in-RAM tree with its budget: paths, nodes and their bytes (enclave.sessionfs)."""

    def __init__(
        self,
        limits: SessionLimits | None = None,
        clock: Callable[[], int] = time.time_ns,
        *,
        digests: bool = True,
    ) -> None:
        self.limits = limits or SessionLimits()
        self._clock = clock
        self._lock = threading.Lock()
        self._hasher = DigestPipeline(self._lock) if digests else None  # receipts.md §4.1.1
        now = clock()
        self._root = _Dir(0o755, now, now, now)
        self._used = 0
        self._nodes = 1
        for name in TOP_LEVEL:
            self._root.children[name] = _Dir(0o755, now, now, now)
            self._nodes += 1

    # -- paths -------------------------------------------------------------

    def split(self, path: str) -> tuple[str, ...]:
        """Validate a session path and return its components (`""` is the root).

        Raises:
            SessionFsError: EINVAL for absolute paths, empty, `.` or `..`
                components, NUL; ENAMETOOLONG past the name or path limits.
        """
        if path == "":
            return ()
        if "\0" in path:
            raise _err(ErrorCode.EINVAL, repr(path), "path contains nul")
        try:
            size = len(path.encode("utf-8"))
        except UnicodeEncodeError:
            raise _err(ErrorCode.EINVAL, repr(path), "path is not valid utf-8") from None
        if size > self.limits.max_path:
            raise _err(ErrorCode.ENAMETOOLONG, path[:64] + "...", "path too long")
        if path.startswith("/"):
            raise _err(ErrorCode.EINVAL, path, "absolute paths are not allowed")
        parts = tuple(path.split("/"))
        for part in parts:
            if part in ("", ".", ".."):
                raise _err(ErrorCode.EINVAL, path, "empty, '.' or '..' path component")
            if len(part.encode("utf-8")) > self.limits.max_name:
                raise _err(ErrorCode.ENAMETOOLONG, path[:64] + "...", "name too long")
        return parts

    def _lookup(self, path: str) -> _File | _Dir:
        node: _File | _Dir = self._root
        for part in self.split(path):
            if not isinstance(node, _Dir):
                raise _err(ErrorCode.ENOTDIR, path, "not a directory")
            child = node.children.get(part)
            if child is None:
                raise _err(ErrorCode.ENOENT, path, "no such file or directory")
            node = child
        return node

    def _parent(self, path: str) -> tuple[_Dir, str]:
        parts = self.split(path)
        if not parts:
            raise _err(ErrorCode.EBUSY, path, "the session root cannot be changed")
        parent = self._lookup("/".join(parts[:-1]))
        if not isinstance(parent, _Dir):
            raise _err(ErrorCode.ENOTDIR, path, "not a directory")
        return parent, parts[-1]

    def _file(self, path: str) -> _File:
        node = self._lookup(path)
        if isinstance(node, _Dir):
            raise _err(ErrorCode.EISDIR, path, "is a directory")
        return node

    def _check_not_pinned(self, path: str) -> None:
        if len(self.split(path)) <= 1 and path in ("", *TOP_LEVEL):
            raise _err(ErrorCode.EBUSY, path, "top-level folders cannot be removed or moved")

    # -- queries -----------------------------------------------------------

    def stat(self, path: str) -> StatInfo:
        """Return the status of `path`."""
        with self._lock:
            return self._stat(self._lookup(path))

    @staticmethod
    def _stat(node: _File | _Dir) -> StatInfo:
        if isinstance(node, _Dir):
            kind, size = st.S_IFDIR, 0
            nlink = 2 + sum(isinstance(c, _Dir) for c in node.children.values())
        else:
            kind, size, nlink = st.S_IFREG, node.content.size, 1
        return StatInfo(kind | node.mode, size, nlink, node.atime_ns, node.mtime_ns, node.ctime_ns)

    def listdir(self, path: str) -> list[tuple[str, StatInfo]]:
        """Return the entries of a directory with their status, sorted by name."""
        entries, _ = self.listdir_page(path, "", None)
        return entries

    def listdir_page(
        self, path: str, after: str, max_bytes: int | None
    ) -> tuple[list[tuple[str, StatInfo]], bool]:
        """Return the entries sorted after `after` that fit `max_bytes`, and whether more follow.

        The size of an entry is estimated as its UTF-8 name plus `ENTRY_OVERHEAD`
        (an upper bound of its encoded stat map); at least one entry is returned.
        """
        with self._lock:
            node = self._lookup(path)
            if not isinstance(node, _Dir):
                raise _err(ErrorCode.ENOTDIR, path, "not a directory")
            names = sorted(node.children)
            start = bisect.bisect_right(names, after) if after else 0
            entries: list[tuple[str, StatInfo]] = []
            used = 0
            for name in names[start:]:
                used += len(name.encode("utf-8")) + ENTRY_OVERHEAD
                if max_bytes is not None and entries and used > max_bytes:
                    return entries, True
                entries.append((name, self._stat(node.children[name])))
            return entries, False

    def read(self, path: str, offset: int, length: int) -> bytes:
        """Return up to `length` bytes of a file from `offset` (fewer at its end)."""
        with self._lock:
            node = self._file(path)
            return node.content.read(offset, length)

    def readinto(self, path: str, offset: int, out: memoryview) -> int:
        """Fill `out` with a file's bytes from `offset`; return how many (fewer at its end)."""
        with self._lock:
            return self._file(path).content.readinto(offset, out)

    def statfs(self) -> dict[str, int]:
        """Return the budget and what is used (specs/rpc-protocol.md §7.2)."""
        with self._lock:
            return {
                "total_bytes": self.limits.budget_bytes,
                "used_bytes": self._used,
                "free_bytes": max(0, self.limits.budget_bytes - self._used),
                "nodes": self._nodes,
                "max_nodes": self.limits.max_nodes,
                "max_name": self.limits.max_name,
            }

    # -- changes -----------------------------------------------------------

    def _add_node(self, parent: _Dir, name: str, node: _File | _Dir, path: str) -> None:
        if self._nodes >= self.limits.max_nodes:
            raise _err(ErrorCode.ENOSPC, path, "too many files in the session")
        parent.children[name] = node
        self._nodes += 1
        parent.mtime_ns = parent.ctime_ns = node.ctime_ns

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        """Create a directory; its parent must exist."""
        with self._lock:
            parent, name = self._parent(path)
            if name in parent.children:
                raise _err(ErrorCode.EEXIST, path, "file exists")
            now = self._clock()
            self._add_node(parent, name, _Dir(mode & 0o7777, now, now, now), path)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory (not the root or a top-level folder)."""
        with self._lock:
            self._check_not_pinned(path)
            parent, name = self._parent(path)
            node = self._lookup(path)
            if not isinstance(node, _Dir):
                raise _err(ErrorCode.ENOTDIR, path, "not a directory")
            if node.children:
                raise _err(ErrorCode.ENOTEMPTY, path, "directory not empty")
            del parent.children[name]
            self._nodes -= 1
            parent.mtime_ns = parent.ctime_ns = self._clock()

    def unlink(self, path: str) -> None:
        """Remove a file."""
        with self._lock:
            parent, name = self._parent(path)
            node = self._file(path)
            del parent.children[name]
            self._nodes -= 1
            self._used -= node.content.size
            node.content.clear()
            parent.mtime_ns = parent.ctime_ns = self._clock()

    def create(
        self, path: str, mode: int = 0o644, *, truncate: bool = True, exclusive: bool = False
    ) -> None:
        """Create an empty file, or truncate an existing one when `truncate` (O_TRUNC)."""
        with self._lock:
            parent, name = self._parent(path)
            existing = parent.children.get(name)
            now = self._clock()
            if existing is None:
                content = FileContent()
                digest = self._hasher.digest(content) if self._hasher else StreamDigest(on=False)
                node = _File(mode & 0o7777, now, now, now, content, digest)
                self._add_node(parent, name, node, path)
                return
            if exclusive:
                raise _err(ErrorCode.EEXIST, path, "file exists")
            if isinstance(existing, _Dir):
                raise _err(ErrorCode.EISDIR, path, "is a directory")
            if truncate and existing.content.size:
                self._used -= existing.content.size
                existing.content.clear()
                existing.digest.reset()
                existing.mtime_ns = existing.ctime_ns = now

    def put(self, path: str, mode: int, data: bytes | bytearray | memoryview) -> int:
        """`create` with truncate, then `write` of `data` at 0 (rpc-protocol.md §7.2 `put`)."""
        self.create(path, mode, truncate=True, exclusive=False)
        return self.write(path, 0, data)

    def truncate(self, path: str, size: int) -> None:
        """Set a file's size, zero-filling when it grows."""
        with self._lock:
            node = self._file(path)
            growth = size - node.content.size
            self._reserve(growth, path)
            node.content.truncate(size)
            node.digest.truncated(size)
            self._used += growth
            node.mtime_ns = node.ctime_ns = self._clock()

    def write(self, path: str, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Write `data` at `offset` (zero-filling a gap); all of it or nothing."""
        with self._lock:
            node = self._file(path)
            size = memoryview(data).nbytes
            if size == 0:
                return 0  # POSIX: a zero-length write changes nothing
            growth = max(0, offset + size - node.content.size)
            self._reserve(growth, path)
            node.content.write(offset, data)
            node.digest.wrote(offset, data)
            self._used += growth
            node.mtime_ns = node.ctime_ns = self._clock()
            return size

    def _reserve(self, growth: int, path: str) -> None:
        if growth > 0 and self._used + growth > self.limits.budget_bytes:
            raise _err(ErrorCode.ENOSPC, path, "session memory budget exhausted")

    def chmod(self, path: str, mode: int) -> None:
        """Set permission bits (the low 12 bits of `mode`)."""
        with self._lock:
            node = self._lookup(path)
            node.mode = mode & 0o7777
            node.ctime_ns = self._clock()

    def utimens(self, path: str, atime_ns: int, mtime_ns: int) -> None:
        """Set access and modification times."""
        with self._lock:
            node = self._lookup(path)
            node.atime_ns, node.mtime_ns = atime_ns, mtime_ns
            node.ctime_ns = self._clock()

    def fsync(self, path: str) -> None:
        """Check `path` exists; RAM has nothing to flush (writes apply in order)."""
        with self._lock:
            self._lookup(path)

    def rename(self, src: str, dst: str) -> None:
        """Move `src` to `dst` with POSIX rename semantics."""
        with self._lock:
            self._check_not_pinned(src)
            self._check_not_pinned(dst)
            src_parent, src_name = self._parent(src)
            node = self._lookup(src)
            dst_parent, dst_name = self._parent(dst)
            src_parts, dst_parts = self.split(src), self.split(dst)
            if src_parts == dst_parts:
                return
            if isinstance(node, _Dir) and dst_parts[: len(src_parts)] == src_parts:
                raise _err(ErrorCode.EINVAL, dst, "cannot move a directory into itself")
            target = dst_parent.children.get(dst_name)
            if target is not None:
                self._check_replace(node, target, dst)
                self._nodes -= 1
                if isinstance(target, _File):
                    self._used -= target.content.size
                    target.content.clear()
            del src_parent.children[src_name]
            dst_parent.children[dst_name] = node
            now = self._clock()
            node.ctime_ns = now
            for parent in (src_parent, dst_parent):
                parent.mtime_ns = parent.ctime_ns = now

    @staticmethod
    def _check_replace(node: _File | _Dir, target: _File | _Dir, dst: str) -> None:
        if isinstance(node, _Dir) and not isinstance(target, _Dir):
            raise _err(ErrorCode.ENOTDIR, dst, "not a directory")
        if isinstance(node, _File) and isinstance(target, _Dir):
            raise _err(ErrorCode.EISDIR, dst, "is a directory")
        if isinstance(target, _Dir) and target.children:
            raise _err(ErrorCode.ENOTEMPTY, dst, "directory not empty")
