# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The host-side copy of what the user syncs into the enclave (specs/sync.md §3).

The store holds the user's own files and the owner's ciphertext exactly as they
were written through the mount, never anything the enclave decrypted. It lets a
later `sync` (or the reconnect of a running one) re-create the enclave's
session filesystem after the enclave restarted.

Layout: `<store>/store.json` (marker and version) and `<store>/tree/` (the
mirrored tree). The enclave-owned `output/` folder is not stored: results are
produced inside the enclave and read from it.
"""

# Every operation is one os.* call on a str path: pathlib would add an object per call.
# ruff: noqa: PTH101, PTH102, PTH104, PTH106, PTH108, PTH208
from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from user_runtime.errors import InputError

STORE_VERSION = 1
MARKER = "store.json"
JOURNAL = "synced.json"
TREE = "tree"
# specs/sync.md §3.1: the top-level folders every new store starts with.
DEFAULT_FOLDERS = ("encrypted", "dataset", "model")
# specs/sync.md §2: the enclave-owned folder, served from the enclave only.
OUTPUT = "output"


class StoreError(InputError):
    """The backing store folder is missing, foreign or unusable."""


@dataclass(frozen=True)
class PathLimits:
    """Limits on the paths the kernel hands us (specs/sync.md §4)."""

    max_name_bytes: int = 255
    max_path_bytes: int = 4095
    max_depth: int = 64


def split_path(path: str, limits: PathLimits | None = None) -> tuple[str, ...]:
    """Split a mount-relative path (`/a/b`) into checked components.

    The kernel resolves `.` and `..` itself; anything that still names them,
    holds a NUL, an empty component or an over-long name is refused here so no
    request can leave the tree.

    Args:
        path: the path FUSE passed, starting with `/`.
        limits: the length limits; the defaults match Linux.

    Returns:
        The components; `()` for the root.

    Raises:
        OSError: `ENAMETOOLONG` for over-long names or paths, `EINVAL` otherwise.
    """
    lim = limits or PathLimits()
    if not path.startswith("/") or "\0" in path:
        raise OSError(errno.EINVAL, "bad path")
    if len(path.encode("utf-8", "surrogateescape")) > lim.max_path_bytes:
        raise OSError(errno.ENAMETOOLONG, "path too long")
    if path == "/":
        return ()
    parts = tuple(path[1:].split("/"))
    if len(parts) > lim.max_depth:
        raise OSError(errno.ENAMETOOLONG, "path too deep")
    for part in parts:
        if part in {"", ".", ".."}:
            raise OSError(errno.EINVAL, "bad path component")
        if len(part.encode("utf-8", "surrogateescape")) > lim.max_name_bytes:
            raise OSError(errno.ENAMETOOLONG, "name too long")
    return parts


class PathSplitter:
    """`split_path` with a memory of recent answers (FUSE asks about one path several times).

    `cp` of a small file costs about six callbacks on its one path; checking it once
    saves ~4 us on each of the others. Only checked paths are kept, at most `size`.
    """

    def __init__(self, limits: PathLimits | None = None, size: int = 4096) -> None:
        self._limits = limits or PathLimits()
        self._size = size
        self._known: dict[str, tuple[str, ...]] = {}

    def __call__(self, path: str) -> tuple[str, ...]:
        """`split_path(path)`: the components, or the same OSError."""
        parts = self._known.get(path)
        if parts is None:
            parts = split_path(path, self._limits)
            if len(self._known) >= self._size:
                self._known.clear()
            self._known[path] = parts
        return parts


def is_output(parts: tuple[str, ...]) -> bool:
    """Whether the components name `output/` or something inside it."""
    return bool(parts) and parts[0] == OUTPUT


@dataclass(frozen=True)
class StoreEntry:
    """One entry of the stored tree, as the replay walks it."""

    path: str  # "/a/b", as FUSE and the enclave name it
    is_dir: bool
    mode: int  # permission bits only
    size: int
    atime_ns: int
    mtime_ns: int


class BackingStore:
    """A confined host folder that mirrors the synced tree (not the output)."""

    def __init__(self, root: Path, limits: PathLimits | None = None) -> None:
        self.root = root
        self.tree = root / TREE
        self._tree_text = str(self.tree)
        self.limits = limits or PathLimits()
        self._split = PathSplitter(self.limits)

    @classmethod
    def open_or_create(cls, root: Path, folder: Path) -> BackingStore:
        """Open the store at `root`, creating it (mode 0700) when absent.

        Args:
            root: the store folder.
            folder: the mount folder it belongs to (recorded in the marker).

        Returns:
            The store.

        Raises:
            StoreError: `root` exists but is not a store of ours.
        """
        marker = root / MARKER
        if root.exists():
            try:
                meta = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise StoreError(f"{root}: not a sync store (no readable {MARKER})") from e
            if not isinstance(meta, dict) or meta.get("version") != STORE_VERSION:
                raise StoreError(f"{root}: unsupported sync store version")
            if not (root / TREE).is_dir():
                raise StoreError(f"{root}: sync store has no {TREE}/ folder")
            return cls(root)
        root.mkdir(mode=0o700, parents=True)
        (root / TREE).mkdir(mode=0o755)
        for name in DEFAULT_FOLDERS:
            (root / TREE / name).mkdir(mode=0o755)
        tmp = root / f".{MARKER}.tmp"
        tmp.write_text(
            json.dumps({"version": STORE_VERSION, "folder": str(folder)}) + "\n", encoding="utf-8"
        )
        tmp.replace(marker)
        return cls(root)

    # -- journal of files in step with the enclave (specs/sync.md §5.1) ------------------

    def take_journal(self) -> dict[str, tuple[int, int]]:
        """Read and delete the journal a clean unmount left (a crash leaves none)."""
        path = self.root / JOURNAL
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            path.unlink()
            entries = raw["synced"]
            return {str(k): (int(v[0]), int(v[1])) for k, v in entries.items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            path.unlink(missing_ok=True)
            return {}

    def save_journal(self, synced: dict[str, tuple[int, int]]) -> None:
        """Write the journal atomically."""
        tmp = self.root / f".{JOURNAL}.tmp"
        tmp.write_text(json.dumps({"synced": synced}, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self.root / JOURNAL)

    # -- paths ---------------------------------------------------------------------------

    def host_path(self, path: str) -> str:
        """Map a mount path to its file in the store, refusing `output/`.

        Raises:
            OSError: the path is malformed, too long, or inside `output/`.
        """
        parts = self._split(path)
        if is_output(parts):
            raise OSError(errno.EINVAL, "output/ is not stored")
        # split_path checked every component: the path appends as it is.
        return self._tree_text + path if parts else self._tree_text

    # -- operations (each raises OSError with the errno the kernel should see) -----------

    def lstat(self, path: str) -> os.stat_result:
        """Stat an entry without following links."""
        return os.lstat(self.host_path(path))

    def listdir(self, path: str) -> list[str]:
        """List a stored folder."""
        return os.listdir(self.host_path(path))

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        """Open (or create) a stored file for reading and writing; returns a descriptor."""
        host = self.host_path(path)
        access = os.O_RDWR
        extra = flags & (os.O_CREAT | os.O_EXCL | os.O_TRUNC)
        fd = os.open(host, access | extra | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o7777)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EISDIR, "not a regular file")
        return fd

    def mkdir(self, path: str, mode: int) -> None:
        """Create a folder."""
        os.mkdir(self.host_path(path), mode & 0o7777)

    def rmdir(self, path: str) -> None:
        """Remove an empty folder."""
        os.rmdir(self.host_path(path))

    def unlink(self, path: str) -> None:
        """Remove a file."""
        host = self.host_path(path)
        if stat.S_ISDIR(os.lstat(host).st_mode):
            raise OSError(errno.EISDIR, "is a directory")
        os.unlink(host)

    def rename(self, old: str, new: str) -> None:
        """Rename an entry (replacing a file or an empty folder, as POSIX does)."""
        os.rename(self.host_path(old), self.host_path(new))

    def truncate(self, path: str, length: int) -> None:
        """Set a file's length."""
        os.truncate(self.host_path(path), length)

    def chmod(self, path: str, mode: int) -> None:
        """Set permission bits."""
        os.chmod(self.host_path(path), mode & 0o7777, follow_symlinks=False)

    def utimens(self, path: str, atime_ns: int, mtime_ns: int) -> None:
        """Set access and modification times."""
        os.utime(self.host_path(path), ns=(atime_ns, mtime_ns), follow_symlinks=False)

    def exists(self, path: str) -> bool:
        """Whether the path names a stored entry."""
        try:
            self.lstat(path)
        except OSError:
            return False
        return True

    # -- replay --------------------------------------------------------------------------

    def walk(self) -> Iterator[StoreEntry]:
        """Yield every stored entry, parents before children, in a stable order.

        Entries that are neither files nor folders (which only a person editing
        the store by hand could create) are skipped.
        """
        yield from self._walk(str(self.tree), ())

    def _walk(self, host: str, parts: tuple[str, ...]) -> Iterator[StoreEntry]:
        with os.scandir(host) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            sub = (*parts, entry.name)
            if not parts and entry.name == OUTPUT:
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                yield StoreEntry(
                    "/" + "/".join(sub),
                    True,
                    st.st_mode & 0o7777,
                    0,
                    st.st_atime_ns,
                    st.st_mtime_ns,
                )
                yield from self._walk(entry.path, sub)
            elif stat.S_ISREG(st.st_mode):
                yield StoreEntry(
                    "/" + "/".join(sub),
                    False,
                    st.st_mode & 0o7777,
                    st.st_size,
                    st.st_atime_ns,
                    st.st_mtime_ns,
                )

    def read_chunks(self, path: str, chunk: int) -> Iterator[tuple[int, bytes]]:
        """Yield `(offset, bytes)` chunks of a stored file, for the replay upload."""
        fd = os.open(self.host_path(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            offset = 0
            while True:
                data = os.pread(fd, chunk, offset)
                if not data:
                    return
                yield offset, data
                offset += len(data)
        finally:
            os.close(fd)


def default_store_dir(folder: Path) -> Path:
    """Where the store of `folder` lives unless told otherwise: `../.NAME.nb-store`.

    A sibling keeps the store on the same filesystem as the user's folder and
    visible to them, outside the mount (specs/sync.md §3).
    """
    folder = folder.resolve()
    return folder.parent / f".{folder.name}.nb-store"
