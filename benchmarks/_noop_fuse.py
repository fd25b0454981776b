# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The cheapest FUSE filesystem mfusepy can serve: names and sizes in a dict, data discarded.

`bench_sync.py` copies its small-file tree into this beside the real mount, to show in the
same run how far the library the mount uses (libfuse 3 through mfusepy) can go at all
before any real work (backing store, enclave) is done. Mounted with exactly the sync
mount's options (`mount_kwargs`: worker threads, cached attributes and entries, no
negative caching, `default_permissions`), minus everything sync must do.

Usage: _noop_fuse.py MOUNTPOINT  (serves in the foreground until unmounted)
"""

from __future__ import annotations

import errno
import stat
import sys
import time
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from user_runtime.sync.fuse import MountOptions, load_fuse, mount_kwargs


def main() -> None:
    fuse = load_fuse()
    now = time.time_ns()

    class NoOps(fuse.Operations):  # type: ignore[misc,name-defined]
        use_ns = True

        def __init__(self) -> None:
            self.nodes: dict[str, list[int]] = {"/": [stat.S_IFDIR | 0o755, 0]}

        def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
            del fh
            node = self.nodes.get(path)
            if node is None:
                raise OSError(errno.ENOENT, path)
            times = {"st_atime": now, "st_mtime": now, "st_ctime": now}
            return {"st_mode": node[0], "st_size": node[1], "st_nlink": 1, **times}

        def mkdir(self, path: str, mode: int) -> int:
            self.nodes[path] = [stat.S_IFDIR | mode, 0]
            return 0

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            del fi
            self.nodes[path] = [stat.S_IFREG | mode, 0]
            return 0

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            del fh
            node = self.nodes[path]
            node[1] = max(node[1], offset + len(data))
            return len(data)

        def readdir(self, path: str, fh: int) -> list[str]:
            del fh
            prefix = path.rstrip("/") + "/"
            names = {p[len(prefix) :] for p in self.nodes if p.startswith(prefix) and p != prefix}
            return [".", "..", *(n for n in names if "/" not in n)]

    # The sync mount's own options (threads, caching, permissions), so the two pay the
    # same kernel round trips per file and differ only in the work done in them.
    options = mount_kwargs(fuse, MountOptions()) | {"fsname": "nb-noop", "subtype": "nbnoop"}
    fuse.FUSE(NoOps(), sys.argv[1], **options)


if __name__ == "__main__":
    main()
