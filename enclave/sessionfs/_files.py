# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Whole files and trees: digests, streams, export and import (the runner's `SessionFiles`)."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat as st
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, cast

from enclave.mapped_source import MappedReader
from enclave.sessionfs._nodes import (
    _READ_CHUNK,
    SessionFsError,
    _Dir,
    _err,
    _File,
)
from enclave.sessionfs._tree import SessionTree
from package_format.rpc.codes import ErrorCode

#: A file at least this large is copied out beside its digest's catch-up (`_copy_and_digest`).
_PARALLEL_BYTES = 8 << 20


class SessionFs(SessionTree):
    """The in-RAM tree with its budget; see the package docstring."""

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

    @classmethod
    def _copy_and_digest(cls, node: _File, fd: int) -> tuple[bytes, int]:
        """Copy a file to `fd` and take its digest (lock held), the two side by side.

        What the digest pipeline has not hashed yet is hashed here (specs/receipts.md
        §4.1.1); for a large file the copy runs on a second thread meanwhile, as both
        release the GIL (the kernel copies, hashlib hashes), so the run waits for the
        longer of the two, not their sum.
        """
        if node.content.size < _PARALLEL_BYTES:
            node.content.copy_to(fd)
            return cls._digest_of(node)
        failed: list[BaseException] = []

        def copy() -> None:
            try:
                node.content.copy_to(fd)
            except BaseException as exc:  # noqa: BLE001 - handed to the exporting thread
                failed.append(exc)

        copier = threading.Thread(target=copy, name="nb-export", daemon=True)
        copier.start()
        try:
            return cls._digest_of(node)
        finally:
            copier.join()
            if failed:
                raise failed[0]

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
                    if digests is None:
                        node.content.copy_to(fd)
                    else:
                        digests[session_path] = self._copy_and_digest(node, fd)
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

    # The runner's `SessionFiles` (enclave.runner.api), specs/rpc-protocol.md §8.4.
    def open_file(self, path: str) -> IO[bytes]:
        """Open a session file for reading: a large one sealed and mapped (no copies)."""
        mapped = self.open_mapped(path)
        return cast("IO[bytes]", mapped) if mapped is not None else self.open_read(path)

    def export_dir(self, name: str, dest: Path) -> None:
        """Write session directory `name` into `dest` (missing: nothing to export)."""
        try:
            self.export_tree(name, dest)
        except SessionFsError as exc:
            if exc.code is not ErrorCode.ENOENT:
                raise

    def clear_dir(self, name: str) -> None:
        """Empty session directory `name` (kept)."""
        self.clear_tree(name)

    def import_dir(self, src: Path, name: str) -> list[str]:
        """Copy the files under `src` into session directory `name`; list them."""
        listed = sorted(
            f"{name}/{p.relative_to(src).as_posix()}"
            for p in src.rglob("*")
            if p.is_file() and not p.is_symlink()
        )
        self.import_tree(src, name)
        return listed


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
