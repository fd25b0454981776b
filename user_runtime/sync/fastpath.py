# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The mount's compiled hot path (`_fastpath.c`), loaded with ctypes (specs/sync.md §8.1).

C answers getattr of store paths and the writes of a `fresh` file that stay within a `put`;
every other case reaches the Python callbacks behind it, which stay the reference. Built with
the package (setup.py, an optional extension): without it, or when libfuse is not version 3,
Python answers everything, with the same results and fewer files per second.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from user_runtime.sync.store import OUTPUT, PathLimits

_log = logging.getLogger(__name__)

#: Set NB_SYNC_FASTPATH=0 to answer every callback in Python (bench_sync compares both).
ENV_SWITCH = "NB_SYNC_FASTPATH"
# The library's state is global (libfuse's high-level callbacks carry no pointer of ours):
# one mount per process may use it. The sync daemon serves exactly one.
_claimed = threading.Lock()


def library_path() -> Path | None:
    """Where the built extension is, if it was built."""
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_fastpath{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _declare(lib: ctypes.CDLL) -> None:
    long, ptr = ctypes.c_long, ctypes.c_void_p
    lib.nb_fast_configure.argtypes = [ctypes.c_int, ptr, ctypes.c_char_p, long, long, long, long]
    lib.nb_fast_configure.restype = ctypes.c_int
    lib.nb_fast_configure_write.argtypes = [ptr, long, long]
    lib.nb_fast_configure_write.restype = ctypes.c_int
    lib.nb_fast_register.argtypes = [ctypes.c_uint64, ctypes.c_int]
    lib.nb_fast_register.restype = ctypes.c_int
    lib.nb_fast_unregister.argtypes = [ctypes.c_uint64]
    lib.nb_fast_unregister.restype = None
    lib.nb_fast_hold.restype = lib.nb_fast_release.restype = None
    lib.nb_fast_answered.restype = lib.nb_fast_written.restype = long


class FastPath:
    """The loaded library, bound to one mount's backing store."""

    def __init__(self, lib: ctypes.CDLL, tree_fd: int, limits: PathLimits, io_size: int) -> None:
        self._lib = lib
        self._tree_fd = tree_fd
        self._limits = limits
        self._io_size = io_size
        self._keep: list[object] = []
        _declare(lib)
        self._register = lib.nb_fast_register
        self._unregister = lib.nb_fast_unregister
        self._hold = lib.nb_fast_hold
        self._release = lib.nb_fast_release

    @classmethod
    def load(cls, tree: str, limits: PathLimits, io_size: int) -> FastPath | None:
        """The fast path for the store tree at `tree`, or None (and why, in the log)."""
        if os.environ.get(ENV_SWITCH, "1") == "0":
            return None
        path = library_path()
        if path is None:
            _log.info("sync: the compiled hot path was not built; Python answers")
            return None
        if not _claimed.acquire(blocking=False):
            _log.info("sync: the compiled hot path serves another mount; Python answers")
            return None
        try:
            lib = ctypes.CDLL(str(path))
            fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            _claimed.release()
            _log.info("sync: cannot load %s (%s); Python answers", path, e)
            return None
        return cls(lib, fd, limits, io_size)

    # -- what Python tells C -------------------------------------------------------------

    def hold(self) -> None:
        """A store write was queued: sizes are Python's until `release`."""
        self._hold()

    def release(self) -> None:
        """A queued store write is done."""
        self._release()

    def register(self, fh: int, fd: int) -> bool:
        """C answers the fresh handle's small writes into `fd`; False if it cannot."""
        return bool(self._register(fh, fd))

    def unregister(self, fh: int) -> None:
        """C stops answering `fh`'s writes; returns after any write in progress."""
        self._unregister(fh)

    # -- counters (tests, benchmarks) ----------------------------------------------------

    def answered(self) -> int:
        """How many getattr calls C answered."""
        return int(self._lib.nb_fast_answered())

    def written(self) -> int:
        """How many writes C answered."""
        return int(self._lib.nb_fast_written())

    def counters(self) -> dict[str, Any]:
        """`sync --status`'s `hot_path` (control.py)."""
        return {"compiled": True, "getattr": self.answered(), "writes": self.written()}

    # -- installing into libfuse's operations --------------------------------------------

    def install(self, ops: Any, fh_offset: int, inline_bytes: int) -> None:
        """Point getattr and write at C, each with Python's callback behind it."""
        getattr_py, write_py = ops.getattr, ops.write
        # The struct owns the Python callbacks' thunks; keep every object it holds alive
        # once its fields point elsewhere.
        self._keep += [dict(getattr(ops, "_objects", None) or {}), getattr_py, write_py]
        lim = self._limits
        rc = self._lib.nb_fast_configure(
            self._tree_fd,
            ctypes.cast(getattr_py, ctypes.c_void_p).value,
            OUTPUT.encode(),
            self._io_size,
            lim.max_name_bytes,
            lim.max_path_bytes,
            lim.max_depth,
        ) or self._lib.nb_fast_configure_write(
            ctypes.cast(write_py, ctypes.c_void_p).value, fh_offset, inline_bytes
        )
        if rc != 0:
            raise OSError(-rc, "cannot configure the compiled hot path")
        ops.getattr = ctypes.cast(self._lib.nb_fast_getattr, type(getattr_py))
        ops.write = ctypes.cast(self._lib.nb_fast_write, type(write_py))

    @contextlib.contextmanager
    def installed_in(self, fuse: Any, inline_bytes: int) -> Iterator[None]:
        """Within: mfusepy's `fuse_main_real` installs this before libfuse starts."""
        original = fuse.fuse_main_real
        fh_offset = fuse.fuse_file_info.fh.offset

        def main(argc: int, argv: Any, ops_p: Any, size: int, ctx: Any) -> int:
            self.install(ops_p.contents, fh_offset, inline_bytes)
            return int(original(argc, argv, ops_p, size, ctx))

        fuse.fuse_main_real = main
        try:
            yield
        finally:
            fuse.fuse_main_real = original

    def close(self) -> None:
        """Close the store descriptor and free the library for another mount (after unmount)."""
        os.close(self._tree_fd)
        _claimed.release()
