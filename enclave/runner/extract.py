# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Decrypting a payload into the private directory with two threads (specs/bundle-format.md §7.3).

The caller's thread reads the sealed segments in order, a few per batch, into a small pool of
buffers; two workers open each batch's segments into their own plaintext buffer (AES-GCM
releases the GIL) and only then `pwrite` the authenticated bytes at their offsets in the files
(files are concatenated in the payload, so one segment may feed several files and one file
several segments). Unauthenticated plaintext never reaches a file. The errors are those of the
sequential reader: the failure at the lowest segment index wins (a truncation or trailing bytes
count as the index reading stopped at), after every earlier segment was checked. On any failure
the files written so far are zeroed and removed before the error propagates.

Measured here: writing into tmpfs costs about three times the AES-GCM work, and tmpfs takes
one writer per file at a time, so the workers overlap one batch's decryption with another's
write. Mapping the files and decrypting into the mapping is slower on this machine (page
faults on fresh tmpfs pages cost more than `write`'s copy). Allocating the pages is a good
part of that cost, so the runner has the tree laid out and pre-sized (`PreparedTree`, from the
signed file table) while the key release runs, and the workers then write into it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from enclave.plaintext import wipe_tree
from package_format.bundle.limits import TAG_SIZE
from package_format.bundle.manifest import FileEntry
from package_format.bundle.reader import PayloadFile
from package_format.bundle.segments import FileSpans, PayloadSegments, SealedBatch
from package_format.errors import IntegrityError

WORKERS = 2
#: Plaintext bytes a batch aims at (two 1 MiB segments: the buffers stay in the core's cache).
BATCH_BYTES = 2 << 20
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_FD_CACHE = 32


class _Slot:
    """One batch's buffers: sealed input and plaintext output."""

    def __init__(self, segments: int, segment_size: int) -> None:
        self.sealed = memoryview(bytearray(segments * (segment_size + TAG_SIZE)))
        self.plain = memoryview(bytearray(segments * segment_size))


class _Failure:
    """The failure at the lowest segment index seen so far (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.index: int | None = None
        self.error: BaseException | None = None
        self.set = threading.Event()

    def report(self, index: int, error: BaseException) -> None:
        with self._lock:
            if self.index is None or index < self.index:
                self.index, self.error = index, error
        self.set.set()


class _Writer:
    """A worker's open files (a few, most recent first) and its `pwrite` loop."""

    def __init__(self, paths: Sequence[Path | None]) -> None:
        self._paths = paths
        self._fds: dict[int, int] = {}

    def write(self, file: int, offset: int, data: memoryview) -> None:
        fd = self._fds.pop(file, None)
        if fd is None:
            path = self._paths[file]
            assert path is not None
            fd = os.open(path, _OPEN_FLAGS)
            if len(self._fds) >= _FD_CACHE:
                os.close(self._fds.pop(next(iter(self._fds))))
        self._fds[file] = fd
        while data:
            n = os.pwrite(fd, data, offset)
            data, offset = data[n:], offset + n

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def create_tree(
    dest: Path, files: Sequence[FileEntry], created: list[Path], *, presize: bool = False
) -> list[Path | None]:
    """Create every directory and file of the file table under `dest`.

    Files get their final mode at once (`0700` when executable, else `0600`); directories
    `0700`. With `presize`, each file is given its size from the (signed) file table at once,
    its pages allocated (`posix_fallocate`, else `ftruncate`), so the decryption later writes
    into memory that is already there. Appends what it creates to `created` (parents first),
    so a caller can remove exactly that. Returns each entry's path (None for directories).

    Raises:
        OSError: A file exists already, an entry cannot be created, or (ENOSPC) the files do
            not fit in the file system.
    """
    out: list[Path | None] = []
    ready: set[str] = set()
    for entry in files:
        parts = entry.path.split("/")
        dirs = parts if entry.kind == "dir" else parts[:-1]
        for depth in range(1, len(dirs) + 1):
            rel = "/".join(dirs[:depth])
            if rel not in ready:
                _make_dir(dest.joinpath(*dirs[:depth]), created)
                ready.add(rel)
        if entry.kind == "dir":
            out.append(None)
            continue
        target = dest.joinpath(*parts)
        fd = os.open(target, _FILE_FLAGS, 0o600)
        created.append(target)
        try:
            os.fchmod(fd, 0o700 if entry.mode & 0o100 else 0o600)  # exact, whatever the umask
            if presize and entry.size > 0:
                _presize(fd, entry.size)
        finally:
            os.close(fd)
        out.append(target)
    return out


def _presize(fd: int, size: int) -> None:
    # The size first: a tmpfs mounted `huge=within_size` (the local enclave's) then backs the
    # whole file with huge pages as fallocate allocates them; the pages' zeroing is deferred
    # until written, so this costs a few ms per GiB there.
    os.ftruncate(fd, size)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise


class PreparedTree:
    """The file table's tree, created (and pre-sized) under `dest` before the data key is known.

    `extract_parallel` then writes into it; `discard()` removes it unwritten. Made only from
    a file table whose signature verified (specs/threat-model.md §5).
    """

    def __init__(self, dest: Path, files: Sequence[FileEntry]) -> None:
        """Create the tree.

        Raises:
            OSError: As `create_tree`; what was made is removed first.
        """
        self.dest = dest
        self.files = files
        self.created: list[Path] = []
        try:
            self.paths = create_tree(dest, files, self.created, presize=True)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove the tree; its files hold no plaintext yet, so they are only unlinked."""
        for path in reversed(self.created):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
        self.created = []


def _make_dir(path: Path, created: list[Path]) -> None:
    try:
        path.mkdir(mode=0o700)
        created.append(path)
    except FileExistsError:
        if path.is_symlink() or not path.is_dir():
            raise


def extract_parallel(
    segments: PayloadSegments,
    files: Sequence[FileEntry],
    dest: Path,
    workers: int | None = None,
    prepared: PreparedTree | None = None,
) -> None:
    """Decrypt the whole payload into `dest` (existing, private); wipe what was made on failure.

    `prepared`, when given, is the tree `PreparedTree(dest, files)` made already (pre-sized);
    otherwise the tree is created here.

    Raises:
        package_format.errors.IntegrityError: The errors `BundleReader.iter_files` raises.
        OSError: A file could not be created or written.
    """
    created: list[Path] = prepared.created if prepared is not None else []
    try:
        paths = prepared.paths if prepared is not None else create_tree(dest, files, created)
        _decrypt(segments, FileSpans(files), paths, workers or WORKERS)
    except BaseException:
        for path in reversed(created):  # children before their directories
            wipe_tree(path)
        raise


def extract_in_order(items: Iterator[PayloadFile], dest: Path) -> None:
    """Write the files of `BundleReader.iter_files` under `dest` one after the other.

    For bundles of many small files, where opening files costs more than a second worker
    saves; same files, modes, errors and wiping as `extract_parallel`.

    Raises:
        package_format.errors.IntegrityError: The errors `BundleReader.iter_files` raises.
        OSError: A file could not be created or written.
    """
    created: list[Path] = []
    ready: set[str] = set()
    try:
        for item in items:
            parts = item.path.split("/")
            dirs = parts if item.kind == "dir" else parts[:-1]
            for depth in range(1, len(dirs) + 1):
                rel = "/".join(dirs[:depth])
                if rel not in ready:
                    _make_dir(dest.joinpath(*dirs[:depth]), created)
                    ready.add(rel)
            if item.kind == "dir":
                continue
            target = dest.joinpath(*parts)
            fd = os.open(target, _FILE_FLAGS, 0o600)
            created.append(target)
            try:
                os.fchmod(fd, 0o700 if item.mode & 0o100 else 0o600)
                for chunk in item.chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
    except BaseException:
        for path in reversed(created):
            wipe_tree(path)
        raise


def _decrypt(
    segments: PayloadSegments, spans: FileSpans, paths: Sequence[Path | None], workers: int
) -> None:
    run = _Run(segments, spans, paths)
    threads = [threading.Thread(target=run.work, daemon=True) for _ in range(workers - 1)]
    for t in threads:
        t.start()
    try:
        run.work()  # the caller's thread is one of the workers
    finally:
        run.stop = True
        for t in threads:
            t.join()
    if run.failure.error is not None:
        raise run.failure.error


class _Run:
    """What the workers share: the payload (read under a lock), the files, the first failure.

    Each worker reads its next batch, then opens and writes it while the others do the same
    with theirs; its buffers are its own, so they stay in its core's cache.
    """

    def __init__(
        self, segments: PayloadSegments, spans: FileSpans, paths: Sequence[Path | None]
    ) -> None:
        self.segments = segments
        self.spans = spans
        self.paths = paths
        self.per_batch = min(max(1, BATCH_BYTES // segments.segment_size), segments.count)
        self.lock = threading.Lock()
        self.done = False
        self.stop = False
        self.failure = _Failure()

    def work(self) -> None:
        """A worker: read a batch, open its segments, write them; until the end or a failure."""
        seg = self.segments.segment_size
        slot = _Slot(self.per_batch, seg)
        writer = _Writer(self.paths)
        try:
            while (batch := self._next(slot)) is not None:
                try:
                    self._one_batch(writer, slot, batch)
                except BaseException as exc:  # noqa: BLE001 - reported; the caller re-raises it
                    self.failure.report(batch.first, exc)
        except BaseException as exc:  # noqa: BLE001 - a worker's failure, re-raised by the caller
            self.failure.report(-1, exc)  # the stream itself failed: nothing else matters
        finally:
            writer.close()

    def _next(self, slot: _Slot) -> SealedBatch | None:
        with self.lock:
            if self.done or self.stop or self.failure.set.is_set():
                return None
            batch = self.segments.read_batch(slot.sealed, self.per_batch)
            if batch.error is not None:
                self.failure.report(batch.first + len(batch.sealed), batch.error)
            self.done = batch.done
            return batch

    def _one_batch(self, writer: _Writer, slot: _Slot, batch: SealedBatch) -> None:
        seg = self.segments.segment_size
        size = 0
        for j, sealed in enumerate(batch.sealed):
            index = batch.first + j
            failed = self.failure.index
            if failed is not None and index >= failed:
                return  # a lower index failed already: this one cannot change the outcome
            n = len(sealed) - TAG_SIZE
            try:
                self.segments.open_into(index, sealed, slot.plain[j * seg : j * seg + n])
            except IntegrityError as exc:
                self.failure.report(index, exc)
                return  # nothing of this batch is written
            size += n
        for span in self.spans.spans(batch.first * seg, size):
            data = slot.plain[span.offset : span.offset + span.size]
            writer.write(span.file, span.file_offset, data)
