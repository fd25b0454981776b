# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The mount itself: mfusepy's FUSE class tuned for sync, its options, `output/`'s watcher.

`serve` mounts a folder over `SyncOperations` (operations.py) and serves until unmounted
(specs/sync.md §7-8). The class here makes five of mfusepy's calls direct: see
`_fuse_class`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from user_runtime.sync.control import ControlServer
from user_runtime.sync.fastpath import FastPath
from user_runtime.sync.link import EnclaveLink
from user_runtime.sync.operations import IO_SIZE, Attrs, SyncOperations
from user_runtime.sync.session import SessionClient
from user_runtime.sync.store import OUTPUT, BackingStore, PathLimits

_log = logging.getLogger(__name__)
#: What `fuse_main` returns when its loop ended with an error, e.g. the signal of a stop.
_FUSE_LOOP_ENDED = 8


def load_fuse() -> Any:
    """Import mfusepy, preferring libfuse 3 (1 MiB writes) over libfuse 2 (128 KiB)."""
    if "FUSE_LIBRARY_PATH" not in os.environ and ctypes.util.find_library("fuse3"):
        os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy  # noqa: PLC0415 - after choosing the library above

    return mfusepy


@dataclass(frozen=True)
class MountOptions:
    """Kernel-facing options of the mount (specs/sync.md §8)."""

    # Entries and attributes are cached: outside output/ every change passes through
    # us; output/ changes behind the kernel's back (runs), so `OutputWatcher`
    # invalidates what changed there. Without fuse_invalidate_path (libfuse 2),
    # nothing is cached.
    attr_timeout: float = 1.0
    entry_timeout: float = 1.0
    output_poll: float = 0.25
    max_write_fuse2: int = 128 * 1024
    # libfuse's worker threads; each keeps its Python thread state (`_pinned`).
    threads: bool = True
    # getattr and fresh files' small writes in C (fastpath.py, §8.1) when it was built.
    compiled: bool = True


class OutputWatcher:
    """Polls the enclave's output/ and drops the kernel's cache of what changed."""

    def __init__(
        self, link: EnclaveLink, invalidate: Callable[[str], None], interval: float
    ) -> None:
        self._link = link
        self._invalidate = invalidate
        self._interval = interval
        self._stop = threading.Event()
        self._seen: dict[str, tuple[int, int, int]] = {}

    def _snapshot(self, client: SessionClient) -> dict[str, tuple[int, int, int]]:
        found: dict[str, tuple[int, int, int]] = {}
        todo = [OUTPUT]
        while todo:
            folder = todo.pop()
            for name, info in client.listdir(folder):
                sub = f"{folder}/{name}"
                found["/" + sub] = (info.mode, info.size, info.mtime_ns)
                if stat.S_ISDIR(info.mode):
                    todo.append(sub)
        return found

    def poll_once(self) -> list[str]:
        """Compare output/ with the last look; invalidate and return the changed paths."""
        now = self._link.call(self._snapshot)
        changed = sorted(
            {p for p in now.keys() | self._seen.keys() if now.get(p) != self._seen.get(p)}
        )
        self._seen = now
        parents = {p.rsplit("/", 1)[0] for p in changed}
        for path in [*changed, *sorted(parents)]:
            self._invalidate(path)
        return changed

    def start(self) -> None:
        """Poll on a daemon thread until `stop`."""

        def loop() -> None:
            while not self._stop.wait(self._interval):
                try:
                    self.poll_once()
                except OSError:
                    continue

        threading.Thread(target=loop, name="output-watch", daemon=True).start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()


_pinned = threading.local()
_UID, _GID = os.getuid(), os.getgid()


def _decode(fuse: Any, path: bytes | None) -> str | None:
    """A path libfuse passed, as mfusepy decodes it (None with nullpath_ok)."""
    return None if path is None else path.decode(fuse.encoding, fuse.errors)


def _raw_times(buf: Any) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """A `struct utimbuf` of timespecs as ((sec, nsec), (sec, nsec)); None for NULL (now)."""
    if not buf:
        return None
    a, m = buf.contents.actime, buf.contents.modtime
    return ((a.tv_sec, a.tv_nsec), (m.tv_sec, m.tv_nsec))


def _fill_stat(buf: Any, attrs: Attrs) -> None:
    """Write `attrs` into libfuse's `struct stat` (mfusepy's `c_stat`)."""
    mode, size, nlink, atime, mtime, ctime = attrs
    ctypes.memset(buf, 0, ctypes.sizeof(buf.contents))
    st = buf.contents
    st.st_mode, st.st_size, st.st_nlink = mode, size, nlink
    st.st_uid, st.st_gid = _UID, _GID
    st.st_blksize, st.st_blocks = IO_SIZE, (size + 511) // 512
    st.st_atimespec.tv_sec, st.st_atimespec.tv_nsec = divmod(atime, 1_000_000_000)
    st.st_mtimespec.tv_sec, st.st_mtimespec.tv_nsec = divmod(mtime, 1_000_000_000)
    st.st_ctimespec.tv_sec, st.st_ctimespec.tv_nsec = divmod(ctime, 1_000_000_000)


def _direct_io(path: str, flags: int) -> bool:
    """Whether a descriptor bypasses the kernel's page cache (specs/sync.md §8).

    output/: reads always reach the enclave. Write-only: the writer's pages go to the
    daemon without a page-cache copy nobody could read through this descriptor.
    """
    return path.startswith(f"/{OUTPUT}/") or flags & os.O_ACCMODE == os.O_WRONLY


def _fuse_class(fuse: Any) -> Any:
    class _SyncFUSE(fuse.FUSE):  # type: ignore[misc]
        """mfusepy's FUSE with five calls made direct (specs/sync.md §8).

        utimens gets raw (sec, nsec) pairs so UTIME_NOW/UTIME_OMIT survive;
        create skips mfusepy's per-call signature inspection; create and open
        choose direct I/O (`_direct_io`); write
        borrows libfuse's buffer; getattr fills the struct from a tuple.
        """

        def utimens_fuse_2(self, path: bytes | None, buf: Any) -> int:
            return int(self.operations.utimens(_decode(self, path), _raw_times(buf)))

        def getattr_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
            del fip
            return self.getattr_fuse_2(path, buf)

        def getattr_fuse_2(self, path: bytes | None, buf: Any) -> int:
            # The struct filled from a tuple, not through mfusepy's dict (3 of a small
            # file's ~7 callbacks are getattr).
            _fill_stat(buf, self.operations.attrs(_decode(self, path) or ""))  # "": EINVAL
            return 0

        def create(self, path: bytes, mode: int, fip: Any) -> int:
            fi = fip.contents
            name = path.decode(self.encoding, self.errors)
            fi.fh = self.operations.create(name, mode, fi.flags)
            fi.direct_io = _direct_io(name, fi.flags)
            return 0

        def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
            # A ctypes callback on a thread Python did not start creates and frees
            # a thread state per call; one unmatched PyGILState_Ensure keeps it
            # for the thread's life (small files: ~1.6x fewer CPU cycles per call).
            if not getattr(_pinned, "done", False):
                _pinned.done = True
                ctypes.pythonapi.PyGILState_Ensure()
            return super()._wrapper(func, *args, **kwargs)

        def write(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
            # libfuse's buffer, borrowed for this call: the write queue copies it
            # only if it keeps it (no ctypes.string_at copy first).
            address = ctypes.cast(buf, ctypes.c_void_p).value or 0
            view = memoryview((ctypes.c_char * size).from_address(address)).cast("B")
            name = _decode(self, path)
            return int(self.operations.write(name, view, offset, fip.contents.fh))

        def open(self, path: bytes, fip: Any) -> int:
            fi = fip.contents
            name = path.decode(self.encoding, self.errors)
            fi.fh = self.operations.open(name, fi.flags)
            fi.direct_io = _direct_io(name, fi.flags)
            return 0

    return _SyncFUSE


def _invalidator(fuse: Any) -> Callable[[str], None] | None:
    """`fuse_invalidate_path` bound to the running filesystem, if libfuse has it."""
    lib = fuse._libfuse  # noqa: SLF001 - mfusepy exposes no wrapper for it
    function = getattr(lib, "fuse_invalidate_path", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    function.restype = ctypes.c_int
    handle = lib.fuse_get_context().contents.fuse

    def invalidate(path: str) -> None:
        function(handle, path.encode("utf-8", "surrogateescape"))

    return invalidate


def _can_invalidate(fuse: Any) -> bool:
    return hasattr(fuse._libfuse, "fuse_invalidate_path")  # noqa: SLF001


def mount_kwargs(fuse: Any, opts: MountOptions) -> dict[str, Any]:
    """The libfuse options of the sync mount (specs/sync.md §8), as mfusepy takes them.

    `bench_sync.py`'s no-op filesystem mounts with these too, so its ceiling is
    measured under the same kernel round trips as the mount.
    """
    timeouts = (opts.attr_timeout, opts.entry_timeout) if _can_invalidate(fuse) else (0.0, 0.0)
    kwargs: dict[str, Any] = {
        "foreground": True,
        "nothreads": not opts.threads,
        "fsname": "nitro-bundles-sync",
        "subtype": "nbsync",
        "default_permissions": True,
        "hard_remove": True,
        "attr_timeout": timeouts[0],
        "entry_timeout": timeouts[1],
        # output/ gains entries behind the kernel's back and fuse_invalidate_path
        # cannot drop a negative entry: no negative caching (cp -r does not need it:
        # its O_EXCL create looks the name up afresh anyway).
        "negative_timeout": 0,
    }
    if fuse.fuse_version_major == 2:
        kwargs |= {"big_writes": True, "max_write": opts.max_write_fuse2, "nonempty": True}
    return kwargs


def serve(
    folder: str,
    store: BackingStore,
    link: EnclaveLink,
    on_ready: Callable[[], None] | None = None,
    *,
    options: MountOptions | None = None,
    control: Path | None = None,
) -> None:
    """Mount `folder` and serve until it is unmounted (SIGTERM/SIGINT unmount it).

    The link must already be started (connected and replayed). With `control`, the
    replay queue answers `run` and `sync --status` on that socket (sync.md §6.4).
    """
    opts = options or MountOptions()
    fuse = load_fuse()
    can_invalidate = _can_invalidate(fuse)
    kwargs = mount_kwargs(fuse, opts)
    ops = SyncOperations(store, link, on_ready)
    watchers: list[OutputWatcher] = []

    def on_init() -> None:
        invalidate = _invalidator(fuse) if can_invalidate else None
        if invalidate is not None:
            watcher = OutputWatcher(link, invalidate, opts.output_poll)
            with contextlib.suppress(OSError):
                watcher.poll_once()
            watcher.start()
            watchers.append(watcher)

    ops.on_init = on_init
    fast = _fast_path(fuse, store) if opts.compiled else None
    if fast is not None:
        ops.use_fast_path(fast)
    counters = None if fast is None else fast.counters
    server = None if control is None else ControlServer(control, ops.replay, counters)
    try:
        with fast.installed_in(fuse, ops.inline_bytes) if fast else contextlib.nullcontext():
            _fuse_class(fuse)(ops, folder, **kwargs)
    except RuntimeError as exc:
        # libfuse's fuse_main returns 8 when its loop ended with an error, and a loop ended
        # by SIGTERM (`sync --stop`) or SIGINT reports the signal as one: that is our normal
        # way out, not a crash, so it gets one log line instead of mfusepy's traceback.
        # Errors libfuse meets on its own are already on stderr (the log).
        if exc.args != (_FUSE_LOOP_ENDED,):
            raise
        _log.info("%s: unmounted", folder)
    finally:
        if server is not None:
            server.close()
        for watcher in watchers:
            watcher.stop()
        if fast is not None:
            fast.close()


def _fast_path(fuse: Any, store: BackingStore) -> FastPath | None:
    """The compiled hot path for this store (libfuse 3 only: the signatures differ in 2)."""
    if fuse.fuse_version_major != 3:
        return None
    # Python checks a path twice (the operations' splitter, then the store's): the
    # stricter of both limits.
    mine, theirs = PathLimits(), store.limits
    limits = PathLimits(
        min(mine.max_name_bytes, theirs.max_name_bytes),
        min(mine.max_path_bytes, theirs.max_path_bytes),
        min(mine.max_depth, theirs.max_depth),
    )
    return FastPath.load(str(store.tree), limits, IO_SIZE)
