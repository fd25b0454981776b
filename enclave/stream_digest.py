# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""SHA-256 of a session file, computed as its bytes arrive (specs/receipts.md §4.1).

The receipt names every input's digest; hashing them at run time would read every byte
again (a second pass over a GiB of data). Instead each session file carries the running
hash of its bytes, advanced by writes that continue where the hashed prefix ends (what a
copy, `put` or the sync replay does). Anything else (a write that overwrites or skips past
the hashed prefix, a shrinking truncate) drops the running hash; that file is hashed again
from its bytes when a run needs its digest (`SessionFs.file_digest`).

Large appends are hashed behind the writer (§4.1.1): the writer only records how far the
in-order prefix reaches and hands the file to its session's `DigestPipeline`, whose one
thread, on a core nothing else wants (SCHED_IDLE), takes the next chunk's range and a
descriptor of the file's memfd under the session lock and reads and hashes the bytes outside
every lock (hashlib and `preadv` release the GIL), so the SHA-256 takes the time the receive
path, the decrypt and the run leave. Each byte is still hashed once: whoever needs the digest
first (`result`) finishes what the thread has not reached yet.

Locks: the session filesystem's lock (held by every caller of `wrote`, `truncated`,
`reset`, `result` and `adopt`), then the pipeline's condition, in that order. The
pipeline's thread takes the session lock only to take a chunk, never while it reads or hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import deque
from typing import Any, Protocol

#: Appends of at most this many bytes are hashed in the write itself when nothing is pending
#: (a thread hand-off costs more than hashing them; small files stay simple).
INLINE_BYTES = 64 * 1024
#: What the pipeline's thread copies out of session memory per turn of the session lock.
CHUNK = 1 << 20


class Content(Protocol):
    """The bytes of one session file (`enclave.file_content.FileContent`)."""

    @property
    def size(self) -> int: ...  # noqa: D102

    def readinto(self, offset: int, out: memoryview) -> int: ...  # noqa: D102

    def reader(self) -> int | None: ...  # noqa: D102


class StreamDigest:
    """The running SHA-256 of one file's prefix, or nothing (dropped, or switched off).

    `_length` is how far the in-order prefix reaches; `_hashed` how much of it is in
    `_hash` (less while the pipeline's thread is behind). Without a pipeline every append
    is hashed in the write, as before (§4.1).
    """

    __slots__ = ("_busy", "_content", "_gen", "_hash", "_hashed", "_length", "_on", "_pipeline")

    def __init__(
        self,
        *,
        on: bool = True,
        content: Content | None = None,
        pipeline: DigestPipeline | None = None,
    ) -> None:
        self._on = on
        self._content = content
        self._pipeline = pipeline if content is not None else None
        self._hash: Any = hashlib.sha256() if on else None
        self._length = 0
        self._hashed = 0
        self._gen = 0  # changes whenever `_hash` is replaced or dropped
        self._busy = False  # the pipeline's thread is hashing a chunk of this file

    def _guard(self) -> threading.Condition | _NoLock:
        return self._pipeline.cond if self._pipeline is not None else _NO_LOCK

    def wrote(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Account for `data` written at `offset` (§4.1: only appends to the prefix count)."""
        with self._guard():
            if self._hash is None:
                return
            if offset != self._length:
                self._drop()  # a random write: hashed again when needed
                return
            size = memoryview(data).nbytes
            if self._pipeline is None or (self._hashed == self._length and size <= INLINE_BYTES):
                self._hash.update(data)
                self._hashed += size
                self._length += size
                return
            self._length += size
            self._pipeline.submit(self)

    def truncated(self, size: int) -> None:
        """Account for a truncate to `size` (growing keeps the prefix; the zeros are not hashed)."""
        if size == 0:
            self.reset()
            return
        with self._guard():
            if size < self._length:
                self._drop()

    def reset(self) -> None:
        """The file is empty again."""
        with self._guard():
            self._gen += 1
            self._hash = hashlib.sha256() if self._on else None
            self._length = self._hashed = 0

    def result(self, size: int) -> bytes | None:
        """SHA-256 of the file when the prefix is the whole file of `size` bytes, else None.

        Finishes what the pipeline has not hashed yet (the caller holds the session lock,
        so no write moves the bytes meanwhile).
        """
        with self._guard():
            self._settle()
            if self._hash is None or self._length != size:
                return None
            if self._hashed == size:
                return bytes(self._hash.digest())
            gen, start, hashed = self._gen, self._hashed, self._hash
            self._busy = True  # the pipeline's thread leaves this file alone meanwhile
        done = False
        try:
            self._catch_up(hashed, start, size)
            done = True
        finally:
            with self._guard():
                self._busy = False
                if self._gen == gen:
                    if done:
                        self._hashed = size
                    else:
                        self._drop()
                self._wake()
        return bytes(hashed.digest())

    def adopt(self, hashed: Any, size: int) -> None:
        """Keep a hash computed from the file's `size` bytes (after a re-read), so appends go on."""
        if self._on:
            with self._guard():
                self._gen += 1
                self._hash, self._length, self._hashed = hashed, size, size

    # -- with the pipeline's condition held --------------------------------------------------

    def _drop(self) -> None:
        self._gen += 1
        self._hash = None

    def _settle(self) -> None:
        """Wait until no other thread has a chunk of this file in hand."""
        if self._pipeline is not None:
            while self._busy:
                self._pipeline.cond.wait()

    def _wake(self) -> None:
        if self._pipeline is not None:
            self._pipeline.cond.notify_all()

    def _catch_up(self, hashed: Any, start: int, end: int) -> None:
        assert self._content is not None
        buffer = memoryview(bytearray(min(CHUNK, end - start)))
        offset = start
        while offset < end:
            count = self._content.readinto(offset, buffer[: min(CHUNK, end - offset)])
            if count <= 0:
                raise OSError("session file shorter than its hashed prefix")
            hashed.update(buffer[:count])
            offset += count

    def _take(self, out: memoryview) -> _Job | None:
        """The next unhashed chunk (session lock held); None: nothing to do.

        From a memfd only a descriptor and a range are taken here; the bytes are read
        after the lock is released (`_Job.fill`). That is safe because the range lies in
        the in-order prefix, and every change to bytes there (an overwrite, a shrinking
        truncate, a truncate to 0) changes `_gen` in the same hold of the session lock,
        so a chunk read while they changed is never counted (`_done`). A `bytearray` (a
        small file) is copied here, under the lock, as it has no descriptor.
        """
        if self._hash is None or self._busy or self._hashed >= self._length:
            return None
        assert self._content is not None
        want = min(out.nbytes, self._length - self._hashed)
        fd = self._content.reader()
        if fd is None:
            want = self._content.readinto(self._hashed, out[:want])
            if want <= 0:
                self._drop()  # the file was removed under us: nobody will ask
                return None
        self._busy = True
        return _Job(self, self._hash, self._gen, self._hashed, want, fd)

    def _done(self, gen: int, count: int) -> None:
        """The pipeline hashed `count` more bytes (-1: it could not read them)."""
        self._busy = False
        if gen == self._gen:
            if count < 0:
                self._drop()
            else:
                self._hashed += count


class _Job:
    """One chunk of one file for the pipeline's thread."""

    __slots__ = ("count", "digest", "fd", "gen", "hashed", "offset")

    def __init__(  # noqa: PLR0917 - the chunk's parts
        self, digest: StreamDigest, hashed: Any, gen: int, offset: int, count: int, fd: int | None
    ) -> None:
        self.digest, self.hashed, self.gen = digest, hashed, gen
        self.offset, self.count, self.fd = offset, count, fd

    def fill(self, out: memoryview) -> bool:
        """Read the chunk into `out` (no lock held) unless `_take` copied it; False: short."""
        if self.fd is None:
            return True
        done = 0
        try:
            while done < self.count:
                got = os.preadv(self.fd, [out[done : self.count]], self.offset + done)
                if got <= 0:
                    break
                done += got
        except OSError:
            return False
        finally:
            os.close(self.fd)
        return done == self.count


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def _yield_to_others() -> None:
    """Run the calling thread only on a core nothing else wants (SCHED_IDLE, §4.1.1).

    The hash is not on anyone's path until a run asks for a digest, and then the asker
    hashes what is left itself at its own priority; meanwhile the receive path, the
    decrypt and the run keep the cores they need. Where the policy is missing, nothing.
    """
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None:
        return
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: this thread (Linux)


class DigestPipeline:
    """Hashes a session's large appends on one thread beside the writers (§4.1.1).

    The thread starts when there is work and ends when there is none, so an idle session
    (and every test's throwaway filesystem) holds no thread.
    """

    def __init__(self, session_lock: threading.Lock) -> None:
        self._session_lock = session_lock
        self.cond = threading.Condition()
        self._queue: deque[StreamDigest] = deque()
        self._queued: set[int] = set()
        self._running = False

    def digest(self, content: Content) -> StreamDigest:
        """A new file's running hash, hashed behind its writes by this pipeline."""
        return StreamDigest(content=content, pipeline=self)

    def submit(self, digest: StreamDigest) -> None:
        """`digest` has bytes to hash (session lock and condition held)."""
        if id(digest) in self._queued:
            return
        self._queued.add(id(digest))
        self._queue.append(digest)
        if not self._running:
            self._running = True
            threading.Thread(target=self._work, name="nb-digest", daemon=True).start()

    def _work(self) -> None:
        _yield_to_others()
        buffer = memoryview(bytearray(CHUNK))
        while True:
            with self._session_lock, self.cond:
                job = self._next(buffer)
                if job is None:
                    self._running = False
                    return
            # Outside every lock: the read (of a memfd) and the hash release the GIL too.
            count = job.count if job.fill(buffer) else -1
            if count > 0:
                job.hashed.update(buffer[:count])
            with self.cond:
                job.digest._done(job.gen, count)  # noqa: SLF001 - the pipeline's half of the digest
                self.cond.notify_all()

    def _next(self, buffer: memoryview) -> _Job | None:
        while self._queue:
            digest = self._queue[0]
            job = digest._take(buffer)  # noqa: SLF001
            if job is not None:
                return job
            self._queue.popleft()
            self._queued.discard(id(digest))
        return None
