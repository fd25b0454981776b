# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The replay queue: closed files whose enclave verdict is still to come (specs/sync.md §6.3).

A `close` returns once the file is in the backing store and its requests are
queued (`flush` does not wait for the enclave). The file is then *pending*
here until the enclave has answered every request of its handle. One thread,
the acker, collects those answers for many files in one link call: the
requests left in batches (`WriteQueue`), and the server answers one
connection's requests in order, so waiting for the oldest file's answers
reads the later ones too. An answer with an error makes the path *failed*:
the error reaches the user on the next operation on that path, on `fsync`,
in `user-runtime sync --status` and as a refused `run`; the store keeps the
user's bytes, and `retry_failed` (run by every `drain`, i.e. every `run`)
uploads them again, so the host folder and the enclave agree once the cause
is fixed (e.g. space freed).
"""

from __future__ import annotations

import collections
import errno
import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from user_runtime.sync.link import EnclaveLink
from user_runtime.sync.session import ENCLAVE_ERRORS, SessionClient

log = logging.getLogger(__name__)

#: Files closed but not yet answered by the enclave before `close` waits (back-pressure).
MAX_PENDING = 4096
#: Files whose answers the acker waits for in one link call.
ACK_BATCH = 256
#: How long a closed file may wait before the acker looks (it is not woken per file:
#: each wake would cost the writing thread the GIL).
ACK_DELAY = 0.02


@dataclass
class Pending:
    """One closed (or fsynced) file's requests under `key`, not yet answered."""

    key: str
    path: str  # session path
    size: int
    mtime_ns: int
    on_error: Callable[[int], None] | None = None
    error: int = 0
    done: bool = False


@dataclass
class ReplayStatus:
    """What `sync --status` and a `run` see: files still queued, paths refused."""

    pending: int
    failed: dict[str, int] = field(default_factory=dict)


class ReplayQueue:
    """Pending files, their answers collected in batches by a thread of its own."""

    def __init__(
        self,
        link: EnclaveLink,
        *,
        send_all: Callable[[], None],
        send_queued: Callable[[], None],
        classify: Callable[[BaseException], int | None],
        upload: Callable[[SessionClient, str], None],
        limit: int | None = None,
    ) -> None:
        """Create the queue and start its acker.

        Args:
            link: The enclave link (answers are collected through it).
            send_all: Queues every open file not yet sent and hands everything
                to the connection (a `run` sees what was written before it).
            send_queued: Hands every held or queued request to the connection
                (`WriteQueue.drain`), so the acker never waits for an unsent one.
            classify: Maps an exception to an errno (None: the link was lost).
            upload: Uploads one store file again (`retry_failed`).
            limit: Pending files beyond which `add` waits (back-pressure); default
                `$NB_SYNC_MAX_PENDING`, else `MAX_PENDING`.
        """
        self._link = link
        self._send_all = send_all
        self._send_queued = send_queued
        self._classify = classify
        self._upload = upload
        self._limit = limit or int(os.environ.get("NB_SYNC_MAX_PENDING") or MAX_PENDING)
        self._cond = threading.Condition()
        self._pending: collections.deque[Pending] = collections.deque()
        self._busy = 0  # taken by the acker, not yet answered
        self._failed: dict[str, int] = {}
        self._reported: set[str] = set()
        self._stopped = False
        self._urgent = 0  # callers of `wait`/`drain`: the acker looks at once
        self._thread = threading.Thread(target=self._loop, name="replay-acks", daemon=True)
        self._thread.start()

    # -- the writer's side ---------------------------------------------------------------

    def add(self, item: Pending) -> None:
        """Queue a closed file; waits while `limit` files are pending (back-pressure)."""
        with self._cond:
            while len(self._pending) + self._busy >= self._limit and not self._stopped:
                self._cond.wait()
            self._pending.append(item)
            # The acker wakes at a batch's first file, then gathers for ACK_DELAY: one
            # wake per batch (a wake per file would cost the writer the GIL each time).
            if len(self._pending) in {1, ACK_BATCH}:
                self._cond.notify_all()

    def wait(self, item: Pending) -> int:
        """Wait for `item`'s answers (`fsync`); return its errno (0: the enclave has it)."""
        self._send_queued()
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                while not item.done and not self._stopped:
                    self._cond.wait()
            finally:
                self._urgent -= 1
            return item.error

    def failed_errno(self, path: str) -> int:
        """The errno of a failed path not yet reported to the user, then 0 (reported once)."""
        if not self._failed:  # the common case, without the lock
            return 0
        with self._cond:
            code = self._failed.get(path, 0)
            if not code or path in self._reported:
                return 0
            self._reported.add(path)
            return code

    def forget(self, path: str) -> None:
        """`path` (or a folder above it) was removed on both sides: nothing left to fix."""
        if self._failed:
            with self._cond:
                for key in [p for p in self._failed if p == path or p.startswith(path + "/")]:
                    self._failed.pop(key)
                    self._reported.discard(key)

    def is_failed(self, path: str) -> bool:
        """Whether the enclave refused `path` and it was not fixed since."""
        return bool(self._failed) and path in self._failed

    def fail(self, path: str, code: int) -> None:
        """Record a refusal for `path` (also used when a send itself failed)."""
        with self._cond:
            self._failed[path] = code
            self._reported.discard(path)
        log.warning("%s: the enclave refused it: %s", path, os.strerror(code))

    # -- run's side ----------------------------------------------------------------------

    def status(self) -> ReplayStatus:
        """Pending files and failed paths, now."""
        with self._cond:
            return ReplayStatus(len(self._pending) + self._busy, dict(self._failed))

    def drain(self, progress: Callable[[int], None] | None = None) -> ReplayStatus:
        """Wait until the enclave answered every pending file, retry failed paths, report.

        `progress(pending)` is called about every 0.5 s while waiting.
        """
        self._send_all()
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                while (self._pending or self._busy) and not self._stopped:
                    if not self._cond.wait(0.5) and progress is not None:
                        progress(len(self._pending) + self._busy)
            finally:
                self._urgent -= 1
        self.retry_failed()
        return self.status()

    def retry_failed(self) -> None:
        """Upload every failed path again from the store; those the enclave takes are fixed."""
        with self._cond:
            failed = sorted(self._failed)
        for path in failed:
            try:
                self._link.call(functools.partial(self._upload_one, path))
            except OSError as e:
                code = e.errno or errno.EIO
                if code == errno.ENOENT:  # gone from the store meanwhile: nothing to fix
                    self.forget(path)
                    continue
                with self._cond:
                    self._failed[path] = code
                continue
            self.forget(path)

    def _upload_one(self, path: str, client: SessionClient) -> None:
        self._upload(client, path)

    def stop(self) -> None:
        """Collect what is pending, then end the acker."""
        self._send_all()
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()

    # -- the acker -----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if not self._stopped and not self._urgent and len(self._pending) < ACK_BATCH:
                    self._cond.wait(ACK_DELAY)  # let a batch gather
                if not self._pending:
                    if self._stopped:
                        return
                    continue
                batch = [self._pending.popleft() for _ in range(min(ACK_BATCH, len(self._pending)))]
                self._busy = len(batch)
            self._settle(batch)

    def _settle(self, batch: list[Pending]) -> None:
        try:
            self._send_queued()  # their requests may still be held for a batch
            self._link.call(lambda c: self._answers(c, batch))
        except OSError as e:
            # The enclave stayed away (EIO after the link gave up): the store keeps the
            # files and the next replay uploads them; until then they count as failed.
            for item in batch:
                if not item.done:
                    self._verdict(item, e.errno or errno.EIO)
        finally:
            with self._cond:
                self._busy = 0
                self._cond.notify_all()

    def _answers(self, client: SessionClient, batch: list[Pending]) -> None:
        # Retried as a whole on a new connection after a replay: what was answered keeps
        # its verdict; a key the new connection never saw returns at once (the replay
        # uploaded the store's bytes).
        for item in batch:
            if item.done:
                continue
            try:
                client.flush(item.key)
            except ENCLAVE_ERRORS as e:
                code = self._classify(e)
                if code is None:
                    raise
                self._verdict(item, code)
                continue
            self._verdict(item, 0)

    def _verdict(self, item: Pending, code: int) -> None:
        if code:
            self.fail(item.path, code)
            if item.on_error is not None:
                item.on_error(code)
        else:
            self._link.synced.mark(item.path, item.size, item.mtime_ns)
            if self._failed:
                self.forget(item.path)
        with self._cond:
            item.error, item.done = code, True
            if item.on_error is not None or code:
                self._cond.notify_all()
