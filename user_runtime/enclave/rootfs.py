# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The image's own root filesystem for the local backend (specs/qemu-backend.md §8).

The customer ramdisk(s) of an EIF, unpacked once per image into the toolchain cache
(`<cache>/images/<PCR2 hex>/`: `rootfs/`, `cmd`, `env`, as the kernel unpacks them in the
enclave), then entered read-only by `enter`. PCR2 measures exactly these ramdisks, so
it names the tree. A tree appears only by `rename` of a complete temporary tree: a cached
entry is always whole; a crashed extraction leaves a `.tmp-*` directory that the next one
removes once its process is gone.

Unpacking refuses members that would land outside the tree (absolute or `..` names, a parent
that is not a directory the archive made) and never follows a link it made. Device nodes are
skipped (the launcher mounts its own `/dev`) and setuid/setgid bits dropped, so the host's
cache never holds a device or a set-id file; the cache's `images/` is `0700`.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from user_runtime.enclave.files import ImageContentError, ImageContents

if TYPE_CHECKING:
    from package_format.eif import CpioMember

IMAGES_DIR = "images"
_TMP = ".tmp-"
_MAX_LINKS = 40
#: Entries kept besides the one just unpacked and any in use (about 250 MB each for the
#: toolchain's rootfs); older ones are removed after each unpack.
KEEP = 2


@dataclass(frozen=True)
class ImageRoot:
    """An image's unpacked customer ramdisk.

    Attributes:
        path: The cache entry (`rootfs/`, `cmd`, `env` inside).
        extracted: Whether this call unpacked it (False: it was cached).
        seconds: How long finding or unpacking it took.
        lock: A descriptor holding a shared lock on the entry (eviction skips it).
    """

    path: Path
    extracted: bool
    seconds: float
    lock: int

    @property
    def rootfs(self) -> Path:
        """The tree the image's command runs in (its `/`)."""
        return self.path / "rootfs"


def cache_dir(environ: Mapping[str, str]) -> Path:
    """The toolchain's cache (specs/toolchain.md): $NB_CACHE_DIR, else XDG's, else ~/.cache."""
    xdg = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "/root")) / ".cache")
    return Path(environ.get("NB_CACHE_DIR") or Path(xdg) / "nitro-bundles")


def cache_key(image: ImageContents) -> str:
    """The cache entry's name: PCR2 (SHA-384 over the customer ramdisks), lowercase hex."""
    return image.pcrs[2].hex()


def interpreter_problem(image: ImageContents) -> str | None:
    """Why the image's own command cannot start in its own tree, or None when it can.

    The command's first word must resolve (links followed inside the tree, absolute ones from
    its root) to an executable regular file, as build-eif checks (enclave-image.md §5.3).
    """
    if not image.cmd:
        return "the image records no command"
    program = image.cmd[0]
    if not program.startswith("/"):
        return f"the image's command {program!r} is not an absolute path"
    entry = resolve(image.tree, program)
    if entry is None or not stat.S_ISREG(entry) or not entry & 0o111:
        return f"the image has no {program} (built without a --rootfs that provides it)"
    return None


def resolve(tree: Mapping[str, tuple[int, str]], path: str) -> int | None:
    """The st_mode of what `path` names in `tree`, links followed; None if missing or a loop."""
    parts = [p for p in path.split("/") if p not in {"", "."}]
    # Parents a member implies are directories, as the unpacker makes them.
    implied = {k[:i] for k in tree for i, c in enumerate(k) if c == "/"}
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        key = "/".join([*done, part])
        found = tree.get(key) or ((stat.S_IFDIR | 0o755, "") if key in implied else None)
        if found is None:
            return None
        mode, target = found
        if stat.S_ISLNK(mode):
            hops += 1
            if hops > _MAX_LINKS:
                return None
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in {"", "."}] + parts
            continue
        done.append(part)
    last = tree.get("/".join(done))
    return last[0] if last else stat.S_IFDIR | 0o755


def image_root(eif: Path, image: ImageContents, cache: Path) -> ImageRoot:
    """The unpacked tree of `eif` under `cache/images/`, unpacking it when not cached.

    The returned `lock` (a shared `flock` on the entry) keeps eviction away while it is
    open: the caller hands it to the process that runs in the tree, then closes its copy.

    Raises:
        ImageContentError: The EIF changed since it was read, is damaged, or holds an unsafe
            member.
        OSError: The cache cannot be written.
    """
    start = time.perf_counter()
    images = cache / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    images.chmod(0o700)
    entry = images / cache_key(image)
    lock = _lock_shared(entry)
    if lock is not None:
        return ImageRoot(entry, False, time.perf_counter() - start, lock)
    _remove_stale(images)
    tmp = images / f"{_TMP}{entry.name[:16]}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        tmp.mkdir(mode=0o700)
        _unpack(eif, image, tmp)
        _syncfs(tmp)
        try:
            tmp.rename(entry)
        except OSError:
            if not entry.is_dir():
                raise
            shutil.rmtree(tmp)  # another start unpacked the same image first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    lock = _lock_shared(entry)
    if lock is None:
        raise ImageContentError(f"{entry}: removed while it was being used")
    _evict(images, keep=entry.name)
    return ImageRoot(entry, True, time.perf_counter() - start, lock)


def _lock_shared(entry: Path) -> int | None:
    """A shared lock on `entry`, touched as just used; None when there is no such entry."""
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        same = entry.stat().st_ino == os.fstat(fd).st_ino  # not evicted meanwhile
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return None
    os.utime(fd)
    return fd


def _evict(images: Path, keep: str) -> None:
    """Remove all but the `KEEP` most recently used entries, skipping any in use (locked)."""
    entries = [d for d in images.iterdir() if not d.name.startswith(".") and d.name != keep]
    entries.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        fd = os.open(old, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # an enclave runs in it
        doomed = images / f"{_TMP}evict-{os.getpid()}-{time.monotonic_ns()}"
        old.rename(doomed)  # gone from its name at once; removed below
        os.close(fd)
        shutil.rmtree(doomed, ignore_errors=True)


def _remove_stale(images: Path) -> None:
    for child in images.iterdir():
        if not child.name.startswith(_TMP):
            continue
        try:
            pid = int(child.name.split("-")[-2])
        except (ValueError, IndexError):
            continue
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(child, ignore_errors=True)


def _syncfs(path: Path) -> None:
    # The rename publishes the tree: its data must be on disk before (one syncfs, not an
    # fsync per file).
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ctypes.CDLL(None, use_errno=True).syncfs(fd)
    finally:
        os.close(fd)


def _unpack(eif: Path, image: ImageContents, dest: Path) -> None:
    from package_format.eif import iter_cpio, read_eif  # noqa: PLC0415
    from package_format.eif.reader import SectionReader  # noqa: PLC0415
    from package_format.errors import PackageFormatError  # noqa: PLC0415

    unpacker = _Unpacker(dest)
    try:
        with eif.open("rb") as f:
            parsed = read_eif(f)
            parsed.verify()
            if parsed.measurements.pcr2 != image.pcrs[2]:
                raise ImageContentError(f"{eif}: the image changed while it was read")
            for section in parsed.ramdisks()[1:]:
                stream = SectionReader(f, section)
                for member in iter_cpio(stream, want=_no_data, sink=unpacker.open_member):
                    unpacker.finish(member)
    except PackageFormatError as exc:
        raise ImageContentError(f"{eif}: {exc}") from exc
    finally:
        unpacker.close()
    unpacker.apply_dir_modes()


def _no_data(_name: str) -> bool:
    return False


class _Unpacker:
    """Writes cpio members under `dest`, as the kernel unpacks an initramfs (later wins)."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.dirs: dict[str, tuple[int, int, int]] = {"": (0o755, 0, 0)}  # perm, uid, gid
        self.fd: int | None = None
        self.member: CpioMember | None = None
        self.owner = os.geteuid() == 0

    def _target(self, name: str) -> tuple[str, Path]:
        rel = name.strip("/")
        parts = rel.split("/")
        if name.startswith("/") or rel in {"", "."} or any(p in {"", ".", ".."} for p in parts):
            raise ImageContentError(f"the image's ramdisk has an unsafe member name {name!r}")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in self.dirs:
                if os.path.lexists(self.dest / parent):
                    raise ImageContentError(f"the image's ramdisk puts {name!r} under a non-dir")
                (self.dest / parent).mkdir(mode=0o700)
                self.dirs[parent] = (0o755, 0, 0)
        return rel, self.dest / rel

    def _clear(self, rel: str, path: Path, *, keep_dir: bool) -> None:
        if rel in self.dirs:
            if keep_dir:
                return
            shutil.rmtree(path)
            for d in [d for d in self.dirs if d == rel or d.startswith(rel + "/")]:
                del self.dirs[d]
        elif os.path.lexists(path):
            path.unlink()

    def open_member(self, member: CpioMember) -> Callable[[bytes], object] | None:
        """`iter_cpio`'s sink: create a regular file and return its writer."""
        if not member.is_file:
            return None
        rel, path = self._target(member.name)
        self._clear(rel, path, keep_dir=False)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.fd, self.member = fd, member

        def write(chunk: bytes) -> None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]

        return write

    def finish(self, m: CpioMember) -> None:
        """Complete a member once its data has been read (files) or create it (the rest)."""
        perm = stat.S_IMODE(m.mode) & ~(stat.S_ISUID | stat.S_ISGID)
        if m.is_file and self.fd is not None:
            if self.owner:
                os.fchown(self.fd, m.uid, m.gid)
            os.fchmod(self.fd, perm)
            os.utime(self.fd, (m.mtime, m.mtime))
            os.close(self.fd)
            self.fd = None
            return
        rel, path = self._target(m.name)
        if m.is_dir:
            self._clear(rel, path, keep_dir=True)
            if rel not in self.dirs:
                path.mkdir(mode=0o700)
            self.dirs[rel] = (perm, m.uid, m.gid)
        elif m.is_symlink:
            self._clear(rel, path, keep_dir=False)
            path.symlink_to((m.data or b"").decode(errors="surrogateescape"))
            if self.owner:
                os.lchown(path, m.uid, m.gid)
        elif stat.S_ISFIFO(m.mode):
            self._clear(rel, path, keep_dir=False)
            os.mkfifo(path, perm)
        # device nodes and sockets: skipped (module docstring)

    def close(self) -> None:
        """Close a file left open by a failed read."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def apply_dir_modes(self) -> None:
        """Give each directory its own mode, deepest first (they were 0700 while written)."""
        for rel in sorted(self.dirs, key=lambda d: -d.count("/")):
            if rel:
                perm, uid, gid = self.dirs[rel]
                if self.owner:
                    os.chown(self.dest / rel, uid, gid)
                (self.dest / rel).chmod(perm)
        self.dest.chmod(0o755)
