# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Replay: make the enclave's synced tree equal to the backing store (specs/sync.md §5.1).

`reconcile` runs after every (re)connection; `upload_file` retries one failed path
(§6.3). `SyncedFiles` records the files known to be in step, so a replay can skip them.
"""

from __future__ import annotations

import errno
import logging
import stat as st
import threading
from collections.abc import Callable

from user_runtime.sync.session import ENCLAVE_ERRORS, RemoteStat, SessionClient
from user_runtime.sync.store import OUTPUT, BackingStore, StoreEntry

__all__ = ["Classifier", "SyncedFiles", "reconcile", "upload_file"]

log = logging.getLogger(__name__)

REPLAY_CHUNK = 1024 * 1024

Classifier = Callable[[BaseException], "int | None"]
"""Maps a client exception to an errno, or None when the connection was lost."""


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
        except ENCLAVE_ERRORS as e:
            if classify(e) is None:
                raise
            log.warning("replay: cannot remove %s from the enclave: %s", path, e)
        remote.pop(path)
    uploaded = 0
    known = synced if synced is not None else SyncedFiles()
    for path, entry in local.items():
        try:
            uploaded += _restore(client, store, entry, remote.get(path), known)
        except ENCLAVE_ERRORS as e:
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
