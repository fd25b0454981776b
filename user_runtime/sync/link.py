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
import stat as st
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from user_runtime.rpc.client import PutFile
from user_runtime.sync.store import OUTPUT, BackingStore, StoreEntry

log = logging.getLogger(__name__)

T = TypeVar("T")
REPLAY_CHUNK = 1024 * 1024


class RemoteStat(Protocol):
    """What the enclave reports for one entry (specs/rpc-protocol.md §7.2)."""

    @property
    def mode(self) -> int:
        """Full `st_mode`."""

    @property
    def size(self) -> int:
        """Size in bytes."""

    @property
    def atime_ns(self) -> int:
        """Access time."""

    @property
    def mtime_ns(self) -> int:
        """Modification time."""

    @property
    def ctime_ns(self) -> int:
        """Change time."""

    @property
    def nlink(self) -> int:
        """Link count."""


class SessionClient(Protocol):
    """The enclave client methods the sync layer uses (a subset of `EnclaveClient`)."""

    def stat(self, path: str) -> RemoteStat:
        """Stat an entry."""

    def listdir(self, path: str) -> Sequence[tuple[str, RemoteStat]]:
        """List a folder with the status of each entry."""

    def mkdir(self, path: str, mode: int) -> None:
        """Create a folder."""

    def rmdir(self, path: str) -> None:
        """Remove an empty folder."""

    def unlink(self, path: str) -> None:
        """Remove a file."""

    def rename(self, src: str, dst: str) -> None:
        """Rename an entry."""

    def create(self, path: str, mode: int, *, truncate: bool, exclusive: bool) -> None:
        """Create a file (or truncate an existing one)."""

    def truncate(self, path: str, size: int) -> None:
        """Set a file's size."""

    def chmod(self, path: str, mode: int) -> None:
        """Set permission bits."""

    def utimens(self, path: str, atime_ns: int, mtime_ns: int) -> None:
        """Set times."""

    def read(self, path: str, offset: int, length: int) -> bytes:
        """Read a range."""

    def write_pipelined(
        self, path: str, offset: int, data: bytes | memoryview, *, key: str | None = None
    ) -> None:
        """Queue a write; its error surfaces on `flush(key or path)`."""

    def write_pipelined_from(
        self, path: str, offset: int, fd: int, length: int, *, key: str | None = None
    ) -> None:
        """Queue a write of `fd`'s bytes at `offset`; its error surfaces on `flush(key)`."""

    def call_pipelined(self, op: str, args: dict[str, Any], *, key: str) -> None:
        """Queue a bodiless request; its error surfaces on `flush(key)`."""

    def put(self, path: str, data: bytes | memoryview, mode: int = 0o644) -> int:
        """Make `path` a file holding exactly `data`, in one request."""

    def put_pipelined(
        self, path: str, data: bytes | memoryview, mode: int = 0o644, *, key: str | None = None
    ) -> None:
        """Queue a `put`; its error surfaces on `flush(key or path)`."""

    def puts_pipelined(self, files: Sequence[PutFile]) -> None:
        """Queue many `put`s in one request; each file's error surfaces on `flush(its key)`."""

    def puts_fits(self, count: int, size: int, path_bytes: int) -> bool:
        """Whether that many files, bytes and path bytes fit one `puts`."""

    def flush(self, key: str) -> None:
        """Wait for the writes under `key`; raise the first error."""

    def statfs(self) -> Mapping[str, int]:
        """The enclave's budget."""

    def close(self) -> None:
        """Close the connection."""

    @property
    def connected(self) -> bool:
        """Whether the connection is still up (the client notices a close at once)."""


class SyncedFiles:
    """Files known to be in step with the enclave: session path -> (size, store mtime_ns).

    Filled when a written file is closed without error and when the replay uploads
    one; kept across a clean unmount in the store's journal (specs/sync.md §5.1).
    A replay skips a file whose enclave size matches and whose store size and
    mtime equal the recorded ones, instead of asking the enclave for its times
    on every close.
    """

    def __init__(self, known: dict[str, tuple[int, int]] | None = None) -> None:
        self._lock = threading.Lock()
        self._known = dict(known or {})

    def mark(self, path: str, size: int, mtime_ns: int) -> None:
        """Record `path` as equal on both sides."""
        with self._lock:
            self._known[path] = (size, mtime_ns)

    def forget(self, path: str) -> None:
        """Drop `path`."""
        with self._lock:
            self._known.pop(path, None)

    def move(self, old: str, new: str) -> None:
        """Follow a rename of a file or a folder (its whole subtree)."""
        with self._lock:
            for path in [p for p in self._known if p == old or p.startswith(old + "/")]:
                self._known[new + path[len(old) :]] = self._known.pop(path)

    def matches(self, path: str, size: int, mtime_ns: int) -> bool:
        """Whether `path` was recorded with this size and store mtime."""
        with self._lock:
            return self._known.get(path) == (size, mtime_ns)

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """A copy, for the journal."""
        with self._lock:
            return dict(self._known)


class LinkLostError(Exception):
    """Internal: the connection to the enclave dropped during a call."""


Classifier = Callable[[BaseException], "int | None"]
"""Maps a client exception to an errno, or None when the connection was lost."""


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
                with contextlib.suppress(Exception):
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
                    except Exception as e:
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
                with contextlib.suppress(Exception):
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
                except Exception as e:
                    if client is not None:
                        with contextlib.suppress(Exception):
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


def _remote_tree(client: SessionClient, path: str, into: dict[str, RemoteStat]) -> None:
    for name, info in client.listdir(path.lstrip("/")):
        sub = f"{path.rstrip('/')}/{name}"
        if sub == f"/{OUTPUT}":
            continue
        into[sub] = info
        if st.S_ISDIR(info.mode):
            _remote_tree(client, sub, into)


def reconcile(
    client: SessionClient,
    store: BackingStore,
    classify: Classifier,
    synced: SyncedFiles | None = None,
) -> int:
    """Make the enclave's tree (outside `output/`) equal to the store; return files uploaded.

    Entries the store lacks are removed (deepest first); folders are created;
    files are uploaded again unless the enclave's copy has the same size and
    either the same mtime or a `synced` record matching the store file; modes
    and times are copied. A file that does not fit the enclave's budget is left
    partial there and logged: the store keeps it whole (specs/sync.md §5.2).
    """
    remote: dict[str, RemoteStat] = {}
    _remote_tree(client, "/", remote)
    local = {entry.path: entry for entry in store.walk()}
    for path in sorted(remote, key=lambda p: p.count("/"), reverse=True):
        entry = local.get(path)
        is_dir = st.S_ISDIR(remote[path].mode)
        if entry is not None and entry.is_dir == is_dir:
            continue
        try:
            client.rmdir(path[1:]) if is_dir else client.unlink(path[1:])
        except Exception as e:
            if classify(e) is None:
                raise
            log.warning("replay: cannot remove %s from the enclave: %s", path, e)
        remote.pop(path)
    uploaded = 0
    known = synced if synced is not None else SyncedFiles()
    for path, entry in local.items():
        try:
            uploaded += _restore(client, store, entry, remote.get(path), known)
        except Exception as e:
            if classify(e) is None:
                raise
            log.warning("replay: %s not restored in the enclave: %s", path, e)
    return uploaded


def _restore(
    client: SessionClient,
    store: BackingStore,
    entry: StoreEntry,
    have: RemoteStat | None,
    known: SyncedFiles,
) -> int:
    sp = entry.path[1:]
    same_mode = have is not None and have.mode & 0o7777 == entry.mode
    if entry.is_dir:
        if have is None:
            client.mkdir(sp, entry.mode)
        elif not same_mode:
            client.chmod(sp, entry.mode)
        return 0
    same_time = have is not None and have.mtime_ns == entry.mtime_ns
    if (
        have is not None
        and have.size == entry.size
        and (same_time or known.matches(sp, entry.size, entry.mtime_ns))
    ):
        if not same_mode:
            client.chmod(sp, entry.mode)
        return 0
    client.create(sp, entry.mode, truncate=True, exclusive=False)
    for offset, data in store.read_chunks(entry.path, REPLAY_CHUNK):
        client.write_pipelined(sp, offset, data)
    client.flush(sp)
    client.chmod(sp, entry.mode)
    client.utimens(sp, entry.atime_ns, entry.mtime_ns)
    known.mark(sp, entry.size, entry.mtime_ns)
    return 1


def upload_file(
    client: SessionClient, store: BackingStore, session_path: str, known: SyncedFiles
) -> None:
    """Upload one store file into the enclave again (a failed path's retry, sync.md §6.3).

    Raises:
        FileNotFoundError: The store no longer holds it.
    """
    path = "/" + session_path
    info = store.lstat(path)
    if not st.S_ISREG(info.st_mode):
        raise FileNotFoundError(errno.ENOENT, "not a file in the store", path)
    entry = StoreEntry(
        path, False, info.st_mode & 0o7777, info.st_size, info.st_atime_ns, info.st_mtime_ns
    )
    _restore(client, store, entry, None, known)
