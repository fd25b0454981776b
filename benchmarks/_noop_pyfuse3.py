# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
# ruff: noqa: ARG002 - pyfuse3 fixes the callbacks' signatures; a no-op ignores most arguments
"""`_noop_fuse.py`'s twin on pyfuse3 (libfuse 3's low-level API, trio): the same dict, no data.

`bench_sync.py --pyfuse3-python PY` copies its small-file tree into this as well, to show
what moving the mount to pyfuse3 could gain at best (specs/sync.md §12): inodes instead of
paths, `create` answered with the entry's attributes (no `getattr` after it), one
trio task per request. PY is an interpreter with pyfuse3 installed (it needs
`libfuse3-dev` to build, so the project's environment does not carry it).

Usage: PY _noop_pyfuse3.py MOUNTPOINT  (serves in the foreground until unmounted)
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from typing import Any

import pyfuse3  # type: ignore[import-not-found]
import trio  # type: ignore[import-not-found]


class NoOps(pyfuse3.Operations):  # type: ignore[misc]
    """Inodes with a mode and a size; writes only grow the size."""

    def __init__(self) -> None:
        super().__init__()
        self.now = time.time_ns()
        self.nodes: dict[int, list[int]] = {pyfuse3.ROOT_INODE: [stat.S_IFDIR | 0o755, 0]}
        self.names: dict[tuple[int, bytes], int] = {}
        self.next_inode: int = pyfuse3.ROOT_INODE + 1

    def _attrs(self, inode: int) -> Any:
        mode, size = self.nodes[inode]
        entry = pyfuse3.EntryAttributes()
        entry.st_ino, entry.st_mode, entry.st_size, entry.st_nlink = inode, mode, size, 1
        entry.st_uid, entry.st_gid = os.getuid(), os.getgid()
        entry.st_atime_ns = entry.st_mtime_ns = entry.st_ctime_ns = self.now
        entry.attr_timeout = entry.entry_timeout = 1.0  # as the sync mount's
        return entry

    def _new(self, parent: int, name: bytes, mode: int) -> int:
        inode, self.next_inode = self.next_inode, self.next_inode + 1
        self.nodes[inode] = [mode, 0]
        self.names[(parent, name)] = inode
        return inode

    async def getattr(self, inode: int, ctx: Any = None) -> Any:
        return self._attrs(inode)

    async def lookup(self, parent: int, name: bytes, ctx: Any = None) -> Any:
        inode = self.names.get((parent, name))
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attrs(inode)

    async def mkdir(self, parent: int, name: bytes, mode: int, ctx: Any) -> Any:
        return self._attrs(self._new(parent, name, stat.S_IFDIR | mode))

    async def create(self, parent: int, name: bytes, mode: int, flags: int, ctx: Any) -> Any:
        inode = self._new(parent, name, stat.S_IFREG | mode)
        return pyfuse3.FileInfo(fh=inode), self._attrs(inode)

    async def open(self, inode: int, flags: int, ctx: Any) -> Any:
        return pyfuse3.FileInfo(fh=inode)

    async def write(self, fh: int, offset: int, buf: bytes) -> int:
        node = self.nodes[fh]
        node[1] = max(node[1], offset + len(buf))
        return len(buf)

    async def opendir(self, inode: int, ctx: Any) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        return


def main() -> None:
    options = set(pyfuse3.default_options) | {"fsname=nb-noop3", "default_permissions"}
    pyfuse3.init(NoOps(), sys.argv[1], options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
