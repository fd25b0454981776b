# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 6 item 2: the enclave restarted under a mount and mid-copy; the sync killed with SIGKILL."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from user_runtime.sync import mounts

pytestmark = pytest.mark.fuse

MiB = 1024 * 1024


def _wait_for(predicate, what: str, limit: float = 60.0) -> None:
    # Polls until the state is reached; the limit only stops a hung test, it asserts no speed.
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _enclave_files(enclave) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with enclave.client() as c:

        def walk(path: str) -> None:
            for name, info in c.listdir(path):
                sub = f"{path}/{name}" if path else name
                if sub == "output":
                    continue
                if info.mode & 0o170000 == 0o040000:
                    files[sub + "/"] = b""
                    walk(sub)
                else:
                    files[sub] = c.read(sub, 0, 1 << 31)

        walk("")
    return files


def _host_files(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == "output" or rel.startswith("output/"):
            continue
        files[rel + "/" if path.is_dir() else rel] = b"" if path.is_dir() else path.read_bytes()
    return files


def _enclave_has(enclave, path: str, data: bytes) -> bool:
    try:
        with enclave.client() as c:
            return c.read(path, 0, len(data) + 1) == data
    except Exception:
        return False


def test_enclave_restart_while_mounted_is_replayed(sync_mount):
    f = sync_mount.folder
    (f / "dataset" / "d").mkdir()
    payload = os.urandom(MiB + 5)
    (f / "dataset" / "d" / "one.bin").write_bytes(payload)
    (f / "encrypted" / "app.bundle").write_bytes(b"ciphertext" * 1000)
    sync_mount.enclave.restart()  # a new, empty session filesystem
    _wait_for(lambda: _enclave_has(sync_mount.enclave, "dataset/d/one.bin", payload), "the replay")
    assert _enclave_files(sync_mount.enclave) == _host_files(f)
    (f / "model" / "after.bin").write_bytes(b"written after the restart")
    assert _enclave_files(sync_mount.enclave) == _host_files(f)


def test_enclave_restart_during_large_copy_completes_or_fails_then_resync_is_exact(
    sync_mount, tmp_path
):
    source = tmp_path / "big.src"
    block = os.urandom(MiB)
    with source.open("wb") as out:
        for i in range(192):
            out.write(block[:-1] + bytes([i]))
    target = sync_mount.folder / "dataset" / "big.bin"
    store_copy = sync_mount.store / "tree" / "dataset" / "big.bin"
    cp = subprocess.Popen(["cp", str(source), str(target)], stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(
            lambda: (
                (store_copy.exists() and store_copy.stat().st_size >= 32 * MiB)
                or cp.poll() is not None
            ),
            "the copy to start",
        )
        sync_mount.enclave.restart()
        _, err = cp.communicate(timeout=300)
    finally:
        if cp.poll() is None:
            cp.kill()
    want = hashlib.sha256(source.read_bytes()).hexdigest()
    if cp.returncode == 0:
        # completed after the reconnect: every byte is in the folder and in the enclave
        assert hashlib.sha256(target.read_bytes()).hexdigest() == want
        with sync_mount.enclave.client() as c:
            assert hashlib.sha256(c.read("dataset/big.bin", 0, 1 << 30)).hexdigest() == want
    else:
        assert "Input/output error" in err, err
    # a re-run of sync leaves the enclave holding exactly the host folder's content
    sync_mount.stop()
    assert mounts.mount_type(sync_mount.folder) is None
    sync_mount.enclave.restart()
    sync_mount.start()
    assert _enclave_files(sync_mount.enclave) == _host_files(sync_mount.folder)


def test_enclave_restart_during_small_file_copy_then_resync_is_exact(sync_mount, tmp_path):
    # Small files live only in the store until their close (one `put`, specs/sync.md §6):
    # a restart mid-copy must lose none of them, open or closed.
    source = tmp_path / "tree"
    for i in range(1500):
        folder = source / f"d{i % 15:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:04d}.csv").write_bytes(os.urandom(64 + i))
    stored = sync_mount.store / "tree" / "dataset" / "tree"
    cp = subprocess.Popen(
        ["cp", "-r", str(source), str(sync_mount.folder / "dataset")],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(
            lambda: (
                (stored.is_dir() and sum(1 for _ in stored.rglob("*.csv")) >= 300)
                or cp.poll() is not None
            ),
            "the copy to start",
        )
        sync_mount.enclave.restart()
        _, err = cp.communicate(timeout=300)
    finally:
        if cp.poll() is None:
            cp.kill()
    if cp.returncode == 0:
        assert _host_files(sync_mount.folder / "dataset" / "tree") == _host_files(source)
        assert _enclave_files(sync_mount.enclave) == _host_files(sync_mount.folder)
    else:
        assert "Input/output error" in err, err
    sync_mount.stop()
    sync_mount.enclave.restart()
    sync_mount.start()
    assert _enclave_files(sync_mount.enclave) == _host_files(sync_mount.folder)


def test_sigkilled_sync_leaves_a_stale_mount_the_next_sync_cleans(sync_mount):
    f = sync_mount.folder
    (f / "dataset" / "kept.csv").write_bytes(b"x,y\n1,2\n")
    os.kill(sync_mount.pid, signal.SIGKILL)
    _wait_for(lambda: not mounts.pid_alive(sync_mount.pids[-1]), "the daemon to die")
    with pytest.raises(OSError) as info:
        list(f.iterdir())
    assert info.value.errno in {errno.ENOTCONN, errno.ECONNABORTED}
    assert mounts.mount_type(f) is not None
    assert mounts.is_dead_mount(f)
    result = sync_mount.start()
    assert "cleaned a stale mount" in result.stderr
    assert (f / "dataset" / "kept.csv").read_bytes() == b"x,y\n1,2\n"
    assert _enclave_files(sync_mount.enclave) == _host_files(f)


def test_sync_stop_unmounts_and_a_new_sync_recreates_a_restarted_enclave(sync_mount):
    f = sync_mount.folder
    (f / "model" / "m.h5").write_bytes(os.urandom(300_000))
    (f / "dataset" / "empty").mkdir()
    before = _host_files(f)
    result = sync_mount.stop()
    assert result.stdout.startswith("stopped: ")
    assert mounts.mount_type(f) is None
    assert list(f.iterdir()) == []  # the files live in the store, not under the mount point
    assert mounts.read_state(f, sync_mount.state) is None
    sync_mount.enclave.restart()
    sync_mount.start()
    assert _host_files(f) == before
    assert _enclave_files(sync_mount.enclave) == before


def test_stale_enclave_content_is_removed_on_sync(sync_mount):
    with sync_mount.enclave.client() as c:  # something the host folder does not hold
        c.create("dataset/stray.bin")
        c.write("dataset/stray.bin", 0, b"stray")
        c.mkdir("model/straydir")
    sync_mount.stop()
    sync_mount.start()
    assert _enclave_files(sync_mount.enclave) == _host_files(sync_mount.folder)
    assert not (sync_mount.folder / "dataset" / "stray.bin").exists()


def test_unchanged_files_are_not_uploaded_again_after_a_clean_stop(sync_mount):
    f = sync_mount.folder
    (f / "dataset" / "same.bin").write_bytes(os.urandom(MiB))
    (f / "dataset" / "changed.bin").write_bytes(b"old")
    store = sync_mount.store / "tree" / "dataset"
    with sync_mount.enclave.client() as c:
        before = c.stat("dataset/same.bin")
    assert before.mtime_ns != (store / "same.bin").stat().st_mtime_ns  # the enclave's own time
    sync_mount.stop()
    (store / "changed.bin").write_bytes(b"new content")  # changed while not mounted
    sync_mount.start()
    with sync_mount.enclave.client() as c:
        assert c.stat("dataset/same.bin") == before  # untouched: not uploaded again
        assert c.read("dataset/changed.bin", 0, 100) == b"new content"
    assert _enclave_files(sync_mount.enclave) == _host_files(f)


def test_after_sigkill_the_next_sync_compares_conservatively(sync_mount):
    f = sync_mount.folder
    (f / "dataset" / "a.bin").write_bytes(os.urandom(MiB))
    os.kill(sync_mount.pid, signal.SIGKILL)
    _wait_for(lambda: not mounts.pid_alive(sync_mount.pids[-1]), "the daemon to die")
    sync_mount.start()
    # no journal survived the kill: the file was uploaded again, with the store's times
    with sync_mount.enclave.client() as c:
        mtime = c.stat("dataset/a.bin").mtime_ns
    assert mtime == (sync_mount.store / "tree" / "dataset" / "a.bin").stat().st_mtime_ns
    assert _enclave_files(sync_mount.enclave) == _host_files(f)


def test_sync_stop_leaves_no_traceback_in_the_log(sync_mount):
    # Issue 15 item 6: libfuse ends its loop on SIGTERM with status 8, which mfusepy raised as
    # a 45-line traceback into the daemon's log at every `sync --stop`.
    result = sync_mount.stop()
    assert result.stdout.startswith("stopped: ")
    log = sync_mount.log()
    assert "Traceback" not in log
    assert "RuntimeError" not in log
