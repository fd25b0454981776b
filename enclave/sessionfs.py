# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The session filesystem: the tree the user syncs into, held in enclave RAM.

The enclave has no disk, so files are held in RAM (`enclave.file_content`: a
`bytearray` while small, a memfd once large) in a dict tree, under a
memory budget (ENOSPC past it). Paths are validated, never normalised: a path
is relative, its components are separated by exactly one `/`, and `.`, `..`,
empty components, NUL and over-long names are refused (specs/rpc-protocol.md
§8). There are no symlinks, hard links or special files, and no operation
makes one. Every method is thread-safe (one lock).
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import io
import os
import stat as st
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from enclave.errors import InputError
from enclave.file_content import FileContent
from enclave.mapped_source import MappedReader
from enclave.stream_digest import DigestPipeline, StreamDigest
from package_format.rpc.codes import ErrorCode

TOP_LEVEL = ("encrypted", "dataset", "model", "output")
ENTRY_OVERHEAD = 128  # bytes: CBOR of [name, stat] beyond the name (stat map <= 113)
_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SessionLimits:
    """Limits on what the session filesystem holds (specs/rpc-protocol.md §8.3)."""

    budget_bytes: int = 2 * 1024**3
    """Total bytes of file content; writes past it fail with ENOSPC."""
    max_nodes: int = 200_000
    """Files plus directories; creating more fails with ENOSPC."""
    max_name: int = 255
    """Longest path component in UTF-8 bytes (ENAMETOOLONG)."""
    max_path: int = 4096
    """Longest path in UTF-8 bytes (ENAMETOOLONG)."""


class SessionFsError(InputError):
    """A session filesystem operation failed; `code` is the POSIX errno to report."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StatInfo:
    """What `stat` reports: full `st_mode` (type and permission bits), size and times."""

    mode: int
    size: int
    nlink: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int

    @property
    def is_dir(self) -> bool:
        """Whether this is a directory."""
        return st.S_ISDIR(self.mode)

    def to_wire(self) -> dict[str, int]:
        """Return the map sent in replies (specs/rpc-protocol.md §7.2)."""
        return {
            "mode": self.mode,
            "size": self.size,
            "nlink": self.nlink,
            "atime_ns": self.atime_ns,
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
        }


@dataclass
class _Node:
    mode: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int


@dataclass
class _File(_Node):
    content: FileContent = field(default_factory=FileContent)
    digest: StreamDigest = field(default_factory=StreamDigest)  # specs/receipts.md §4.1


@dataclass
class _Dir(_Node):
    children: dict[str, _File | _Dir] = field(default_factory=dict)


def _err(code: ErrorCode, path: str, what: str) -> SessionFsError:
    return SessionFsError(code, f"{path or '/'}: {what}")


class SessionFs:
    """The in-RAM tree with its budget; see the module docstring."""

    def __init__(
        self,
        limits: SessionLimits | None = None,
        clock: Callable[[], int] = time.time_ns,
        *,
        digests: bool = True,
    ) -> None:
        self.limits = limits or SessionLimits()
        self._digests = digests  # False: no running hashes (a server without receipts)
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

    # -- for the runner ----------------------------------------------------

    def file_digest(self, path: str) -> tuple[bytes, int]:
        """Return a file's SHA-256 and size (specs/receipts.md §4.1).

        The running hash when the file was written as one stream; otherwise its bytes are
        read once, under the lock, and the result kept for later appends.
        """
        with self._lock:
            return self._digest_of(self._file(path))

    @staticmethod
    def _digest_of(node: _File) -> tuple[bytes, int]:
        size = node.content.size
        known = node.digest.result(size)
        if known is not None:
            return known, size
        hashed = hashlib.sha256()
        buffer = bytearray(_READ_CHUNK)
        offset = 0
        while offset < size:
            count = node.content.readinto(offset, memoryview(buffer))
            if count <= 0:
                break
            hashed.update(memoryview(buffer)[:count])
            offset += count
        node.digest.adopt(hashed.copy(), size)
        return hashed.digest(), size

    def open_read(self, path: str) -> BinaryIO:
        """Open a file (e.g. `encrypted/<name>`) as a buffered readable stream.

        Each read copies under the lock, so the stream never pins the file.
        """
        with self._lock:
            self._file(path)
        return io.BufferedReader(_SessionReader(self, path), _READ_CHUNK)

    def open_mapped(self, path: str) -> MappedReader | None:
        """Seal a large file's bytes and map them (None: not in a memfd, use `open_read`).

        The file stays usable: a later write continues in a copy, while the mapping keeps
        the sealed bytes exactly as they were (enclave.file_content).
        """
        with self._lock:
            content = self._file(path).content
            fd = content.seal()
            if fd is None:
                return None
            return MappedReader(fd, content.size)

    def export_tree(
        self, subdir: str, dest_dir: Path, digests: dict[str, tuple[bytes, int]] | None = None
    ) -> int:
        """Write the files under `subdir` into the real directory `dest_dir`.

        `dest_dir` is created if missing; existing files are overwritten and
        links at file names in it are not followed. Returns the number of files.
        `digests`, when given, receives each file's session path -> (SHA-256, size) of the
        very bytes copied (specs/receipts.md §4.1).
        """
        dest_dir.mkdir(parents=True, exist_ok=True)
        count = 0
        for rel, is_dir, mode in self._walk(subdir):
            target = dest_dir.joinpath(*rel)
            if is_dir:
                if target.is_symlink():  # never write through a link in the destination
                    raise OSError(errno.ELOOP, "refusing to follow a symlink", str(target))
                target.mkdir(mode=0o700, exist_ok=True)
                continue
            session_path = "/".join((subdir, *rel)) if subdir else "/".join(rel)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(target, flags, mode & 0o777)
            try:
                with self._lock:  # one consistent copy; the kernel moves large files
                    node = self._file(session_path)
                    node.content.copy_to(fd)
                    if digests is not None:
                        digests[session_path] = self._digest_of(node)
            finally:
                os.close(fd)
            count += 1
        return count

    def clear_tree(self, subdir: str) -> None:
        """Remove everything under `subdir` (kept itself), deepest first."""
        for rel, is_dir, _mode in reversed(list(self._walk(subdir))):
            path = "/".join((subdir, *rel))
            if is_dir:
                self.rmdir(path)
            else:
                self.unlink(path)

    def _walk(self, subdir: str) -> Iterator[tuple[tuple[str, ...], bool, int]]:
        with self._lock:
            top = self._lookup(subdir)
            if not isinstance(top, _Dir):
                raise _err(ErrorCode.ENOTDIR, subdir, "not a directory")
            entries: list[tuple[tuple[str, ...], bool, int]] = []
            stack: list[tuple[tuple[str, ...], _Dir]] = [((), top)]
            while stack:
                rel, node = stack.pop()
                for name, child in sorted(node.children.items()):
                    entries.append(((*rel, name), isinstance(child, _Dir), child.mode))
                    if isinstance(child, _Dir):
                        stack.append(((*rel, name), child))
        entries.sort()
        yield from entries

    def import_tree(self, src_dir: Path, subdir: str) -> int:
        """Copy the regular files and directories under `src_dir` into `subdir`.

        Symlinks and special files are skipped (never followed); existing files
        are replaced. Returns the number of files imported.

        Raises:
            SessionFsError: a name is invalid, or the budget is exhausted
                (files already imported stay).
        """
        count = 0
        for root, dirs, files in os.walk(src_dir, followlinks=False):
            rel = Path(root).relative_to(src_dir).parts
            base = "/".join((subdir, *rel)) if subdir else "/".join(rel)
            for name in sorted(dirs):
                if (Path(root) / name).is_symlink():
                    continue
                path = f"{base}/{name}" if base else name
                try:
                    self.mkdir(path, 0o755)
                except SessionFsError as e:
                    if e.code is not ErrorCode.EEXIST:
                        raise
            for name in sorted(files):
                count += self._import_file(Path(root) / name, f"{base}/{name}" if base else name)
        return count

    def _import_file(self, source: Path, path: str) -> int:
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return 0  # a symlink (ELOOP) or unreadable: skipped
        with os.fdopen(fd, "rb") as src:
            info = os.fstat(src.fileno())
            if not st.S_ISREG(info.st_mode):
                return 0
            self.create(path, info.st_mode & 0o777, truncate=True)
            offset = 0
            while chunk := src.read(_READ_CHUNK):
                self.write(path, offset, chunk)
                offset += len(chunk)
        return 1


class _SessionReader(io.RawIOBase):
    def __init__(self, fs: SessionFs, path: str) -> None:
        self._fs = fs
        self._path = path
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self._fs.readinto(self._path, self._pos, memoryview(buffer).cast("B"))
        self._pos += count
        return count
