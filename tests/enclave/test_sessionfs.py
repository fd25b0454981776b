# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The session filesystem: operations, POSIX errors, budget, confinement, export/import."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from enclave.sessionfs import TOP_LEVEL, SessionFs, SessionFsError, SessionLimits
from package_format.rpc import ErrorCode

NOW = 1_767_225_600_000_000_000


def make_fs(**limits: int) -> SessionFs:
    return SessionFs(SessionLimits(**limits), clock=lambda: NOW)


def code_of(call: Callable[[], object]) -> int:
    with pytest.raises(SessionFsError) as info:
        call()
    return int(info.value.code)


def test_top_level_folders_exist_at_start() -> None:
    fs = make_fs()
    assert [name for name, _ in fs.listdir("")] == sorted(TOP_LEVEL)


def test_write_read_extend_and_gap() -> None:
    fs = make_fs()
    fs.create("dataset/f")
    fs.write("dataset/f", 0, b"abc")
    fs.write("dataset/f", 1, b"XY")
    fs.write("dataset/f", 6, b"Z")  # a gap is zero-filled
    assert fs.read("dataset/f", 0, 100) == b"aXY\0\0\0Z"
    fs.write("dataset/f", 5, b"1234")  # overlaps the end
    assert fs.read("dataset/f", 0, 100) == b"aXY\0\x001234"
    assert fs.statfs()["used_bytes"] == 9
    assert fs.write("dataset/f", 1000, b"") == 0
    assert fs.stat("dataset/f").size == 9


def test_truncate_grow_and_shrink_track_budget() -> None:
    fs = make_fs(budget_bytes=100)
    fs.create("model/m")
    fs.truncate("model/m", 60)
    assert fs.read("model/m", 0, 100) == bytes(60)
    assert code_of(lambda: fs.truncate("model/m", 101)) == errno.ENOSPC
    fs.truncate("model/m", 10)
    assert fs.statfs()["free_bytes"] == 90


def test_budget_exhausted_is_enospc_and_nothing_written() -> None:
    fs = make_fs(budget_bytes=10)
    fs.create("dataset/a")
    fs.write("dataset/a", 0, b"12345678")
    assert code_of(lambda: fs.write("dataset/a", 8, b"abc")) == errno.ENOSPC
    assert fs.read("dataset/a", 0, 100) == b"12345678"
    fs.write("dataset/a", 0, b"abcdefgh")  # overwriting within the file needs no budget
    fs.unlink("dataset/a")
    assert fs.statfs()["used_bytes"] == 0


def test_too_many_nodes_is_enospc() -> None:
    fs = make_fs(max_nodes=len(TOP_LEVEL) + 2)
    fs.create("dataset/a")
    assert code_of(lambda: fs.mkdir("dataset/b")) == errno.ENOSPC


def test_create_truncates_unless_told_not_to() -> None:
    fs = make_fs()
    fs.create("dataset/a")
    fs.write("dataset/a", 0, b"data")
    fs.create("dataset/a", truncate=False)
    assert fs.stat("dataset/a").size == 4
    fs.create("dataset/a")
    assert fs.stat("dataset/a").size == 0
    assert code_of(lambda: fs.create("dataset/a", exclusive=True)) == errno.EEXIST
    assert code_of(lambda: fs.create("dataset")) == errno.EISDIR


@pytest.mark.parametrize(
    ("setup", "call", "expected"),
    [
        ([], lambda fs: fs.stat("dataset/none"), errno.ENOENT),
        (["f:dataset/f"], lambda fs: fs.stat("dataset/f/x"), errno.ENOTDIR),
        (["f:dataset/f"], lambda fs: fs.listdir("dataset/f"), errno.ENOTDIR),
        ([], lambda fs: fs.mkdir("dataset"), errno.EEXIST),
        ([], lambda fs: fs.mkdir("dataset/a/b"), errno.ENOENT),
        (["d:dataset/d", "f:dataset/d/f"], lambda fs: fs.rmdir("dataset/d"), errno.ENOTEMPTY),
        (["f:dataset/f"], lambda fs: fs.rmdir("dataset/f"), errno.ENOTDIR),
        ([], lambda fs: fs.rmdir("model"), errno.EBUSY),
        ([], lambda fs: fs.rmdir(""), errno.EBUSY),
        ([], lambda fs: fs.unlink("dataset"), errno.EISDIR),
        ([], lambda fs: fs.unlink("dataset/none"), errno.ENOENT),
        ([], lambda fs: fs.read("dataset", 0, 1), errno.EISDIR),
        ([], lambda fs: fs.write("dataset", 0, b"x"), errno.EISDIR),
        ([], lambda fs: fs.write("dataset/none", 0, b"x"), errno.ENOENT),
        ([], lambda fs: fs.rename("output", "dataset/o"), errno.EBUSY),
        (["f:dataset/f"], lambda fs: fs.rename("dataset/f", "output"), errno.EBUSY),
        (["d:dataset/d"], lambda fs: fs.rename("dataset/d", "dataset/d/e"), errno.EINVAL),
        (
            ["d:dataset/d", "f:dataset/f"],
            lambda fs: fs.rename("dataset/d", "dataset/f"),
            errno.ENOTDIR,
        ),
        (
            ["d:dataset/d", "f:dataset/f"],
            lambda fs: fs.rename("dataset/f", "dataset/d"),
            errno.EISDIR,
        ),
        (
            ["d:dataset/d", "d:dataset/e", "f:dataset/e/x"],
            lambda fs: fs.rename("dataset/d", "dataset/e"),
            errno.ENOTEMPTY,
        ),
    ],
    ids=[
        "stat-missing",
        "stat-through-file",
        "listdir-file",
        "mkdir-exists",
        "mkdir-no-parent",
        "rmdir-not-empty",
        "rmdir-file",
        "rmdir-top-level",
        "rmdir-root",
        "unlink-dir",
        "unlink-missing",
        "read-dir",
        "write-dir",
        "write-missing",
        "rename-top-level",
        "rename-onto-top-level",
        "rename-into-itself",
        "rename-dir-onto-file",
        "rename-file-onto-dir",
        "rename-onto-non-empty-dir",
    ],
)
def test_posix_errors(setup: list[str], call: Callable[[SessionFs], object], expected: int) -> None:
    fs = make_fs()
    for item in setup:
        kind, path = item.split(":", 1)
        fs.mkdir(path) if kind == "d" else fs.create(path)
    assert code_of(lambda: call(fs)) == expected


def test_rename_replaces_file_and_frees_budget() -> None:
    fs = make_fs()
    for name, data in (("a", b"new"), ("b", b"old-content")):
        fs.create(f"dataset/{name}")
        fs.write(f"dataset/{name}", 0, data)
    fs.rename("dataset/a", "dataset/b")
    assert fs.read("dataset/b", 0, 100) == b"new"
    assert [n for n, _ in fs.listdir("dataset")] == ["b"]
    assert fs.statfs()["used_bytes"] == 3
    fs.mkdir("dataset/d")
    fs.mkdir("model/empty")
    fs.rename("dataset/d", "model/empty")  # a directory replaces an empty one
    assert [n for n, _ in fs.listdir("model")] == ["empty"]


def test_chmod_utimens_and_stat_mode() -> None:
    fs = make_fs()
    fs.create("dataset/f", 0o600)
    fs.chmod("dataset/f", 0o100751)
    fs.utimens("dataset/f", 5, 7)
    info = fs.stat("dataset/f")
    assert (info.mode, info.atime_ns, info.mtime_ns, info.ctime_ns) == (0o100751, 5, 7, NOW)
    assert fs.stat("dataset").nlink == 2


# One test per path attack, for every operation that takes a path.
PATH_OPS: dict[str, Callable[[SessionFs, str], object]] = {
    "stat": lambda fs, p: fs.stat(p),
    "listdir": lambda fs, p: fs.listdir(p),
    "mkdir": lambda fs, p: fs.mkdir(p),
    "rmdir": lambda fs, p: fs.rmdir(p),
    "unlink": lambda fs, p: fs.unlink(p),
    "rename-src": lambda fs, p: fs.rename(p, "dataset/x"),
    "rename-dst": lambda fs, p: fs.rename("dataset/victim", p),
    "create": lambda fs, p: fs.create(p),
    "truncate": lambda fs, p: fs.truncate(p, 0),
    "chmod": lambda fs, p: fs.chmod(p, 0o777),
    "utimens": lambda fs, p: fs.utimens(p, 0, 0),
    "read": lambda fs, p: fs.read(p, 0, 10),
    "write": lambda fs, p: fs.write(p, 0, b"x"),
    "fsync": lambda fs, p: fs.fsync(p),
    "open_read": lambda fs, p: fs.open_read(p),
}


def _attack(path: str, expected: int, op: str) -> None:
    fs = make_fs()
    fs.create("dataset/victim")
    fs.write("dataset/victim", 0, b"keep")
    fs.mkdir("dataset/sub")
    before = fs.listdir("dataset")
    assert code_of(lambda: PATH_OPS[op](fs, path)) == expected
    assert fs.listdir("dataset") == before
    assert fs.read("dataset/victim", 0, 10) == b"keep"


@pytest.mark.parametrize("op", PATH_OPS)
def test_dotdot_path_rejected(op: str) -> None:
    _attack("dataset/sub/../victim", errno.EINVAL, op)
    _attack("../etc/passwd", errno.EINVAL, op)
    _attack("dataset/..", errno.EINVAL, op)


@pytest.mark.parametrize("op", PATH_OPS)
def test_double_slash_path_rejected(op: str) -> None:
    _attack("dataset//victim", errno.EINVAL, op)
    _attack("dataset/victim/", errno.EINVAL, op)
    _attack("dataset/./victim", errno.EINVAL, op)


@pytest.mark.parametrize("op", PATH_OPS)
def test_absolute_path_rejected(op: str) -> None:
    _attack("/etc/passwd", errno.EINVAL, op)
    _attack("/dataset/victim", errno.EINVAL, op)
    _attack("//dataset/victim", errno.EINVAL, op)


@pytest.mark.parametrize("op", PATH_OPS)
def test_nul_in_path_rejected(op: str) -> None:
    _attack("dataset/victim\0.txt", errno.EINVAL, op)


@pytest.mark.parametrize("op", PATH_OPS)
def test_too_long_name_rejected(op: str) -> None:
    _attack("dataset/" + "n" * 256, errno.ENAMETOOLONG, op)
    _attack("dataset/" + "/".join(["d" * 200] * 21), errno.ENAMETOOLONG, op)
    _attack("dataset/" + "é" * 128, errno.ENAMETOOLONG, op)  # 256 bytes in UTF-8


def test_lone_surrogate_path_rejected() -> None:
    fs = make_fs()
    assert code_of(lambda: fs.create("dataset/\udcff")) == errno.EINVAL


def test_name_of_255_bytes_allowed() -> None:
    fs = make_fs()
    fs.create("dataset/" + "n" * 255)
    assert fs.stat("dataset/" + "n" * 255).size == 0


def test_open_read_streams_without_pinning_the_file() -> None:
    fs = make_fs()
    data = os.urandom(3 * 1024 * 1024 + 5)
    fs.create("encrypted/app.bundle")
    fs.write("encrypted/app.bundle", 0, data)
    with fs.open_read("encrypted/app.bundle") as stream:
        head = stream.read(10)
        fs.write("encrypted/app.bundle", len(data), b"more")  # resizing still works
        rest = stream.read()
    assert head + rest == data + b"more"


def test_export_tree_writes_real_files(tmp_path: Path) -> None:
    fs = make_fs()
    fs.mkdir("dataset/sub")
    fs.create("dataset/sub/a.csv", 0o640)
    fs.write("dataset/sub/a.csv", 0, b"1,2\n")
    fs.create("dataset/top.txt")
    dest = tmp_path / "export" / "dataset"
    assert fs.export_tree("dataset", dest) == 2
    assert (dest / "sub" / "a.csv").read_bytes() == b"1,2\n"
    assert (dest / "sub" / "a.csv").stat().st_mode & 0o777 == 0o640
    assert (dest / "top.txt").read_bytes() == b""


def test_export_tree_does_not_follow_symlink_in_destination(tmp_path: Path) -> None:
    fs = make_fs()
    fs.create("model/m")
    fs.write("model/m", 0, b"weights")
    outside = tmp_path / "outside"
    outside.write_bytes(b"untouched")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "m").symlink_to(outside)
    with pytest.raises(OSError) as info:
        fs.export_tree("model", dest)
    assert info.value.errno == errno.ELOOP
    assert outside.read_bytes() == b"untouched"


def test_import_tree_skips_symlinks_and_replaces_files(tmp_path: Path) -> None:
    fs = make_fs()
    fs.create("output/result.txt")
    fs.write("output/result.txt", 0, b"stale and longer")
    src = tmp_path / "out"
    (src / "plots").mkdir(parents=True)
    (src / "result.txt").write_bytes(b"fresh")
    (src / "plots" / "p.png").write_bytes(b"png")
    secret = tmp_path / "plaintext.py"
    secret.write_bytes(b"owner source")
    (src / "leak.py").symlink_to(secret)
    (src / "leakdir").symlink_to(tmp_path)
    assert fs.import_tree(src, "output") == 2
    assert fs.read("output/result.txt", 0, 100) == b"fresh"
    assert fs.read("output/plots/p.png", 0, 100) == b"png"
    names = [n for n, _ in fs.listdir("output")]
    assert names == ["plots", "result.txt"]


def test_import_tree_over_budget_is_enospc(tmp_path: Path) -> None:
    fs = make_fs(budget_bytes=10)
    src = tmp_path / "out"
    src.mkdir()
    (src / "big").write_bytes(b"x" * 11)
    assert code_of(lambda: fs.import_tree(src, "output")) == ErrorCode.ENOSPC


def test_listdir_page_resumes_after_a_name() -> None:
    fs = make_fs()
    for name in ("a", "b", "c", "d"):
        fs.create(f"model/{name}")
    first, more = fs.listdir_page("model", "", 300)
    assert ([n for n, _ in first], more) == (["a", "b"], True)
    rest, more = fs.listdir_page("model", "b", 10_000)
    assert ([n for n, _ in rest], more) == (["c", "d"], False)
    one, more = fs.listdir_page("model", "", 1)  # at least one entry per page
    assert ([n for n, _ in one], more) == (["a"], True)


def test_export_tree_does_not_follow_directory_symlink_in_destination(tmp_path: Path) -> None:
    fs = make_fs()
    fs.mkdir("dataset/sub")
    fs.create("dataset/sub/f")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(OSError) as info:
        fs.export_tree("dataset", dest)
    assert info.value.errno == errno.ELOOP
    assert list(outside.iterdir()) == []


def test_open_read_of_a_large_file_returns_every_byte() -> None:
    fs = SessionFs()
    data = os.urandom(3 * 1024 * 1024 + 5)  # past the memfd threshold, not a chunk multiple
    fs.create("encrypted/big.nb")
    fs.write("encrypted/big.nb", 0, data)
    with fs.open_read("encrypted/big.nb") as stream:
        head = stream.read(7)
        out = bytearray(2 * 1024 * 1024)
        got = stream.readinto(out)
        rest = stream.read()
    assert head + bytes(out[:got]) + rest == data


def test_clear_tree_removes_everything_below_and_keeps_the_folder() -> None:
    fs = SessionFs()
    fs.mkdir("output/a")
    fs.mkdir("output/a/b")
    for path in ("output/x", "output/a/y", "output/a/b/z"):
        fs.create(path)
        fs.write(path, 0, b"data")
    fs.create("dataset/keep")
    fs.clear_tree("output")
    assert fs.listdir("output") == []
    assert [name for name, _ in fs.listdir("dataset")] == ["keep"]
