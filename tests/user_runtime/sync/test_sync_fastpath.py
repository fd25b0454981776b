# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The mount's compiled hot path (specs/sync.md §8.1): C answers as Python would, or asks it.

The unit tests call `_fastpath.c`'s functions directly with ctypes (no FUSE), each against
`SyncOperations`' own answer for the same store; the mount tests check that a real daemon
uses it, and that a mount without it behaves the same.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from user_runtime.sync import fastpath
from user_runtime.sync.fuse import _fill_stat, load_fuse
from user_runtime.sync.operations import IO_SIZE, SyncOperations
from user_runtime.sync.store import BackingStore, PathLimits

GETATTR = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p)
WRITE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64, ctypes.c_void_p
)
INLINE = 64 * 1024
FH_OFFSET = 16  # where a test's fake fuse_file_info keeps fh


class _NoLink:
    """No enclave: `output/` paths, which only Python answers, get EIO here."""

    synced = None

    def call(self, fn):
        raise OSError(errno.EIO, "no enclave in this test")


@pytest.fixture
def store(tmp_path: Path) -> BackingStore:
    backing = BackingStore.open_or_create(tmp_path / "store", tmp_path / "folder")
    tree = backing.tree
    (tree / "dataset" / "sub").mkdir(parents=True, exist_ok=True)
    (tree / "dataset" / "a.csv").write_bytes(b"x" * 1000)
    (tree / "dataset" / "empty").write_bytes(b"")
    os.mkfifo(tree / "dataset" / "fifo")
    (tree / "dataset" / "link").symlink_to("a.csv")
    return backing


class _Lib:
    """The library configured over one store, with recording Python callbacks behind it."""

    def __init__(self, store: BackingStore, ops: SyncOperations) -> None:
        path = fastpath.library_path()
        assert path is not None, "the compiled hot path was not built (make setup builds it)"
        self.lib = ctypes.CDLL(str(path))
        fastpath._declare(self.lib)
        self.asked: list[bytes] = []
        self.writes_asked: list[tuple[int, int]] = []

        def python_getattr(path: bytes | None, buf: int, fi: int) -> int:
            self.asked.append(path or b"")
            try:
                attrs = ops.attrs((path or b"").decode("utf-8", "surrogateescape"))
            except OSError as e:
                return -(e.errno or errno.EIO)
            _fill_stat(ctypes.cast(buf, ctypes.POINTER(self.c_stat)), attrs)
            return 0

        def python_write(path: bytes, buf: int, size: int, offset: int, fi: int) -> int:
            self.writes_asked.append((offset, size))
            return -errno.EROFS  # recognisable: Python answered

        fuse = load_fuse()
        self.c_stat = fuse.c_stat
        self.getattr_cb, self.write_cb = GETATTR(python_getattr), WRITE(python_write)
        self.tree_fd = os.open(store.tree, os.O_RDONLY | os.O_DIRECTORY)
        lim = PathLimits()
        cast = ctypes.cast
        assert self.lib.nb_fast_configure(
            self.tree_fd, cast(self.getattr_cb, ctypes.c_void_p), b"output", IO_SIZE,
            lim.max_name_bytes, lim.max_path_bytes, lim.max_depth,
        ) == 0  # fmt: skip
        assert (
            self.lib.nb_fast_configure_write(
                cast(self.write_cb, ctypes.c_void_p), FH_OFFSET, INLINE
            )
            == 0
        )
        self.lib.nb_fast_getattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.nb_fast_write.argtypes = [
            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int64, ctypes.c_void_p,
        ]  # fmt: skip

    def getattr(self, path: bytes) -> tuple[int, bytes]:
        buf = self.c_stat()
        rc = self.lib.nb_fast_getattr(path, ctypes.byref(buf), None)
        return rc, bytes(buf)

    def write(self, fh: int, data: bytes, offset: int) -> int:
        info = ctypes.create_string_buffer(64)
        ctypes.c_uint64.from_buffer(info, FH_OFFSET).value = fh
        return int(self.lib.nb_fast_write(b"/x", data, len(data), offset, info))

    def close(self) -> None:
        os.close(self.tree_fd)


@pytest.fixture
def lib(store: BackingStore) -> Iterator[_Lib]:
    ops = SyncOperations(store, _NoLink())  # type: ignore[arg-type]
    loaded = _Lib(store, ops)
    yield loaded
    loaded.close()
    ops._writes.stop()


def _python_answer(lib: _Lib, path: bytes) -> tuple[int, bytes]:
    buf = lib.c_stat()
    rc = lib.getattr_cb(path, ctypes.addressof(buf), None)
    return rc, bytes(buf)


def test_compiled_hot_path_is_built():
    # `make setup` builds it (setup.py); without it every mount runs the slower Python path.
    assert fastpath.library_path() is not None


@pytest.mark.parametrize(
    "path",
    [b"/", b"/dataset", b"/dataset/sub", b"/dataset/a.csv", b"/dataset/empty"],
)
def test_getattr_of_store_entries_equals_python_without_asking_it(lib, path):
    answer = lib.getattr(path)
    assert answer[0] == 0
    assert answer == _python_answer(lib, path)
    assert lib.asked == [path]  # only our own call above


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (b"/missing", errno.ENOENT),
        (b"/dataset/a.csv/below", errno.ENOTDIR),
        (b"/dataset/fifo", errno.ENOENT),  # not a file or folder: not there for the mount
        (b"/dataset/link", errno.ENOENT),  # a link in the store is never followed
    ],
)
def test_getattr_errors_equal_python_without_asking_it(lib, path, code):
    assert lib.getattr(path)[0] == -code
    assert _python_answer(lib, path)[0] == -code
    assert lib.asked == [path]


@pytest.mark.parametrize(
    "path",
    [
        b"/output",  # the enclave's: only Python asks it
        b"/output/result.csv",
        b"/dataset//a.csv",
        b"/dataset/./a.csv",
        b"/dataset/../../etc/passwd",
        b"dataset",
        b"/" + b"n" * 256,
        b"/d" * 65,
        b"/" + b"/".join([b"n" * 250] * 17),  # 4,267 bytes, 17 deep
    ],
)
def test_getattr_leaves_enclave_and_refused_paths_to_python(lib, path):
    assert lib.getattr(path)[0] < 0  # Python's answer: EIO here for output/, else its check's
    assert lib.asked == [path]


def test_getattr_leaves_sizes_to_python_while_a_store_write_is_queued(lib):
    lib.lib.nb_fast_hold()
    lib.getattr(b"/dataset/a.csv")
    assert lib.asked == [b"/dataset/a.csv"]
    lib.lib.nb_fast_release()
    lib.getattr(b"/dataset/a.csv")
    assert lib.asked == [b"/dataset/a.csv"]  # answered in C again


def test_write_of_a_registered_fresh_handle_lands_in_its_store_file(lib, tmp_path):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert lib.lib.nb_fast_register(7, fd) == 1
        assert lib.write(7, b"hello ", 0) == 6
        assert lib.write(7, b"world", 6) == 5
        assert lib.writes_asked == []
        assert os.pread(fd, 100, 0) == b"hello world"
    finally:
        lib.lib.nb_fast_unregister(7)
        os.close(fd)


def test_write_after_unregister_goes_to_python(lib, tmp_path):
    # Python unregisters a handle before it reads the file to send it: a later write
    # must not reach the store behind its back.
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        lib.lib.nb_fast_register(8, fd)
        lib.lib.nb_fast_unregister(8)
        assert lib.write(8, b"late", 0) == -errno.EROFS
        assert lib.writes_asked == [(0, 4)]
        assert os.fstat(fd).st_size == 0
    finally:
        os.close(fd)


@pytest.mark.parametrize(("offset", "size"), [(0, INLINE + 1), (INLINE - 3, 4), (INLINE, 1)])
def test_write_beyond_a_put_goes_to_python(lib, tmp_path, offset, size):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        lib.lib.nb_fast_register(9, fd)
        assert lib.write(9, b"y" * size, offset) == -errno.EROFS
        assert lib.writes_asked == [(offset, size)]
        assert os.fstat(fd).st_size == 0
    finally:
        lib.lib.nb_fast_unregister(9)
        os.close(fd)


def test_write_of_an_unknown_handle_goes_to_python(lib):
    assert lib.write(12345, b"z", 0) == -errno.EROFS
    assert lib.writes_asked == [(0, 1)]


def test_a_taken_slot_leaves_the_second_handle_to_python(lib, tmp_path):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert lib.lib.nb_fast_register(1, fd) == 1
        assert lib.lib.nb_fast_register(1 + 4096, fd) == 0
        assert lib.write(1 + 4096, b"q", 0) == -errno.EROFS
        lib.lib.nb_fast_unregister(1 + 4096)  # not its slot: the first keeps it
        assert lib.write(1, b"p", 0) == 1
    finally:
        lib.lib.nb_fast_unregister(1)
        os.close(fd)


def _status_json(sync_mount) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "user_runtime", "sync", "--status", "--json",
         "-d", str(sync_mount.folder), "--state-dir", str(sync_mount.state)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


@pytest.mark.fuse
def test_mount_answers_small_files_in_c_and_the_enclave_holds_them(sync_mount):
    folder = sync_mount.folder / "dataset" / "many"
    folder.mkdir()
    for i in range(50):
        (folder / f"f{i:02d}.csv").write_bytes(f"{i},{i * i}\n".encode() * 10)
    sync_mount.settle()
    hot = _status_json(sync_mount)["hot_path"]
    assert isinstance(hot, dict)
    assert hot["compiled"] is True
    assert hot["writes"] >= 50
    assert hot["getattr"] >= 50
    with sync_mount.enclave.client() as c:
        for i in range(50):
            assert (
                c.read(f"dataset/many/f{i:02d}.csv", 0, 1 << 20) == f"{i},{i * i}\n".encode() * 10
            )
    st = (folder / "f07.csv").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_size, st.st_uid) == (0o644, 50, os.getuid())


@pytest.mark.fuse
def test_fresh_file_written_on_after_another_open_keeps_every_byte(sync_mount):
    # The second open sends the file (Python unregisters it from C first); the first
    # descriptor's next write must then take Python's path, not land only in the store.
    path = sync_mount.folder / "dataset" / "grow.txt"
    with path.open("wb", buffering=0) as out:
        out.write(b"first ")
        with path.open("rb") as reader:
            assert reader.read() == b"first "
        out.write(b"second")
    sync_mount.settle()
    with sync_mount.enclave.client() as c:
        assert c.read("dataset/grow.txt", 0, 100) == b"first second"


@pytest.mark.fuse
def test_mount_without_the_compiled_path_says_so_and_syncs_the_same(sync_mount, monkeypatch):
    sync_mount.stop()
    monkeypatch.setenv(fastpath.ENV_SWITCH, "0")
    sync_mount.start()
    (sync_mount.folder / "dataset" / "p.csv").write_bytes(b"1,2\n")
    sync_mount.settle()
    assert _status_json(sync_mount)["hot_path"] == {"compiled": False}
    with sync_mount.enclave.client() as c:
        assert c.read("dataset/p.csv", 0, 100) == b"1,2\n"
