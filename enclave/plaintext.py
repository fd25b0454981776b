# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The private RAM directory a run decrypts into, and its wiping (specs/threat-model.md §4).

The directory lives under a RAM-backed base the launcher gives (a tmpfs such as `/dev/shm`
locally; the enclave's own RAM root filesystem on Nitro). It is created `0700`, outside the
session filesystem, so no RPC request can name it. `wipe_tree` overwrites every regular file
with zeros, unlinks it and removes every directory, whatever the run did to the tree; it never
follows symlinks and keeps going past errors, so one odd file cannot leave the rest behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType
from typing import Self

from enclave.errors import ExternalError

_WIPE_CHUNK = 1 << 20
_ZEROS = bytes(_WIPE_CHUNK)


class WorkDirError(ExternalError):
    """The private RAM directory could not be created or wiped."""


class PrivateDir:
    """A fresh `0700` directory under `base`, wiped on `close()` or when its `with` block ends.

    Attributes:
        path: The directory; it exists until `close()`.
    """

    def __init__(self, base: Path, prefix: str = "run-") -> None:
        """Create the directory.

        Raises:
            WorkDirError: `base` is missing or the directory cannot be created.
        """
        name = prefix + secrets.token_hex(8)
        path = base / name
        try:
            path.mkdir(mode=0o700)
            path.chmod(0o700)  # the umask cannot widen it, but may narrow it; be exact
        except OSError as exc:
            raise WorkDirError(f"{base}: cannot create a private work directory: {exc}") from exc
        self.path = path
        self._closed = False

    def close(self) -> None:
        """Wipe and remove the directory (idempotent).

        Raises:
            WorkDirError: Something could not be removed (the rest was still wiped).
        """
        if self._closed:
            return
        self._closed = True
        left = wipe_tree(self.path)
        if left:
            raise WorkDirError(f"{self.path}: {len(left)} entries could not be wiped")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def wipe_file(path: Path) -> None:
    """Overwrite a regular file with zeros in place, flush it to the file system, unlink it.

    Raises:
        OSError: The file could not be opened, written or unlinked.
    """
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        done = 0
        while done < size:
            n = os.write(fd, _ZEROS[: min(_WIPE_CHUNK, size - done)])
            done += n
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()


def wipe_tree(root: Path) -> list[Path]:
    """Wipe every file under `root` and remove `root`; return what could not be removed.

    Directories are made writable and searchable first (an entrypoint may have chmod-ed them),
    symlinks and special files are unlinked without being followed, regular files are zeroed
    before they are unlinked. Errors do not stop the walk.
    """
    left: list[Path] = []
    try:
        st = root.lstat()
    except FileNotFoundError:
        return left
    except OSError:
        return [root]
    if not stat.S_ISDIR(st.st_mode):
        _remove_one(root, st, left)
        return left
    with contextlib.suppress(OSError):
        root.chmod(0o700)
    try:
        entries = list(os.scandir(root))
    except OSError:
        entries = []
    for entry in entries:
        child = Path(entry.path)
        try:
            child_st = child.lstat()
        except OSError:
            left.append(child)
            continue
        if stat.S_ISDIR(child_st.st_mode):
            left.extend(wipe_tree(child))
        else:
            _remove_one(child, child_st, left)
    try:
        root.rmdir()
    except OSError:
        left.append(root)
    return left


def _remove_one(path: Path, st: os.stat_result, left: list[Path]) -> None:
    try:
        if stat.S_ISREG(st.st_mode):
            if not st.st_mode & stat.S_IWUSR:
                path.chmod(0o600)
            wipe_file(path)
        else:
            path.unlink()
    except OSError:
        try:
            path.unlink()
        except OSError:
            left.append(path)
