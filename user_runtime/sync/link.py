# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The sync daemon's link to the enclave: reconnect with backoff and replay (specs/sync.md §5).

`EnclaveLink.call(fn)` runs `fn(client)` under a shared lock. When the
connection is lost, one caller reconnects under the exclusive lock, replays
the backing store into the enclave (`reconcile`), and every caller retries on
the new connection. Because each forwarded operation is applied to the store
before (writes) or together with (namespace changes) its forwarding, and the
replay makes the enclave equal to the store, nothing written through the mount
is lost when the enclave restarts: it either reaches the new enclave or the
caller gets `EIO`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from user_runtime.sync.reconcile import Classifier, SyncedFiles, reconcile
from user_runtime.sync.session import ENCLAVE_ERRORS, SessionClient
from user_runtime.sync.store import BackingStore

__all__ = ["EnclaveLink", "LinkLostError", "RetryPolicy"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class LinkLostError(Exception):
    """Internal: the connection to the enclave dropped during a call."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a lost enclave is retried before operations fail with EIO."""

    first_delay: float = 0.05
    max_delay: float = 1.0
    give_up_after: float = 30.0


class _SharedExclusiveLock:
    """Readers share, one writer excludes them; readers do not wait for queued writers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class EnclaveLink:
    """A reconnecting, replaying connection to the enclave's session filesystem."""

    def __init__(
        self,
        connect: Callable[[], SessionClient],
        store: BackingStore,
        classify: Classifier,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._store = store
        self._classify = classify
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._lock = _SharedExclusiveLock()
        self._client: SessionClient | None = None
        self._generation = 0
        self._gave_up = False
        self._closed = threading.Event()
        self.replays = 0
        self.synced = SyncedFiles()

    @property
    def generation(self) -> int:
        """How many connections have been made so far."""
        return self._generation

    def start(self, give_up_after: float = 5.0) -> None:
        """Connect and replay the store once; raise `OSError(EIO)` when the enclave is away."""
        self._recover(self._generation, first=True, budget=give_up_after)

    def watch(self, interval: float = 0.2) -> threading.Thread:
        """Reconnect and replay as soon as the enclave goes away, not at the next use.

        Without this, an enclave restarted while nobody touches the mount would
        stay empty until the next file operation (and a `run` would miss files).
        """

        def loop() -> None:
            quiet = False
            while not self._closed.wait(interval):
                client, generation = self._client, self._generation
                if client is not None and client.connected:
                    quiet = False
                    continue
                try:
                    self._recover(generation)
                except OSError as e:
                    if not quiet:
                        log.warning("enclave unreachable, still trying: %s", e)
                    quiet = True

        thread = threading.Thread(target=loop, name="enclave-watch", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Drop the connection and stop watching."""
        self._closed.set()
        with self._lock.exclusive():
            if self._client is not None:
                with contextlib.suppress(*ENCLAVE_ERRORS):
                    self._client.close()
            self._client = None

    def call(self, fn: Callable[[SessionClient], T]) -> T:
        """Run `fn(client)`, reconnecting and retrying once when the link drops.

        Raises:
            OSError: with the enclave's errno, or `EIO` when it cannot be reached.
        """
        for _attempt in range(3):
            with self._lock.shared():
                client, generation = self._client, self._generation
                if client is not None:
                    try:
                        return fn(client)
                    except ENCLAVE_ERRORS as e:
                        code = self._classify(e)
                        if code is not None:
                            raise OSError(code, str(e) or errno.errorcode.get(code, "")) from e
                        log.warning("lost the enclave: %s", e)
            self._recover(generation)
        raise OSError(errno.EIO, "enclave connection keeps dropping")

    def _recover(
        self, generation: int, *, first: bool = False, budget: float | None = None
    ) -> None:
        with self._lock.exclusive():
            if self._client is not None and self._generation != generation:
                return  # another caller already reconnected
            if self._client is not None:
                with contextlib.suppress(*ENCLAVE_ERRORS):
                    self._client.close()
                self._client = None
            if budget is None:
                budget = 0.0 if self._gave_up else self._policy.give_up_after
            deadline = self._clock() + budget
            delay = self._policy.first_delay
            while True:
                client = None
                try:
                    client = self._connect()
                    reconcile(client, self._store, self._classify, self.synced)
                except ENCLAVE_ERRORS as e:
                    if client is not None:
                        with contextlib.suppress(*ENCLAVE_ERRORS):
                            client.close()
                    if client is not None and self._classify(e) is not None:
                        raise OSError(errno.EIO, f"replay into the enclave failed: {e}") from e
                    if self._clock() >= deadline:
                        self._gave_up = True
                        raise OSError(errno.EIO, f"enclave unreachable: {e}") from e
                    self._sleep(delay)
                    delay = min(delay * 2, self._policy.max_delay)
                    continue
                break
            self._client = client
            self._generation += 1
            self._gave_up = False
            if not first:
                self.replays += 1
                log.warning("reconnected to the enclave and replayed the store")
