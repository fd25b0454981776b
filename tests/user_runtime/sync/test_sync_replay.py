# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 16: close does not wait for the enclave; refusals come back later (specs/sync.md §6.3-6.4)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from user_runtime.sync import control as sync_control
from user_runtime.sync import mounts

pytestmark = pytest.mark.fuse

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[3]


def _status(sync_mount, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "user_runtime", "sync", "--status", "-d", str(sync_mount.folder),
         "--state-dir", str(sync_mount.state), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _fill(sync_mount, leave: int) -> Path:
    f = sync_mount.folder / "dataset"
    with sync_mount.enclave.client() as c:
        free = c.statfs()["free_bytes"]
    (f / "filler.bin").write_bytes(b"f" * (free - leave))
    return f / "filler.bin"


@pytest.mark.parametrize("sync_enclave", [8 * MiB], indirect=True)
def test_refused_file_closes_then_reports_on_next_operation_status_and_run(sync_mount):
    filler = _fill(sync_mount, 10 * 1024)
    small = sync_mount.folder / "dataset" / "small.csv"
    small.write_bytes(b"s" * 20 * 1024)  # close returns: the file is in the store
    final = sync_mount.settle()  # what `run` does first: wait for the enclave's answers
    assert final["failed"] == {"dataset/small.csv": "ENOSPC"}
    status = _status(sync_mount)
    assert status.returncode == 1
    assert "failed: dataset/small.csv (ENOSPC)" in status.stdout
    as_json = _status(sync_mount, "--json")  # cli.md §1.2: one object, exit 1, one stderr line
    assert as_json.returncode == 1
    answer = json.loads(as_json.stdout)
    assert answer.pop("hot_path")["compiled"] is True  # sync.md §8.1
    assert answer == {
        "folder": str(sync_mount.folder), "pending": 0, "failed": {"dataset/small.csv": "ENOSPC"}
    }  # fmt: skip
    assert as_json.stderr.strip().splitlines() == [
        "user-runtime: the enclave refused 1 file(s): dataset/small.csv (ENOSPC)"
    ]
    with pytest.raises(sync_control.SyncNotInStepError, match=r"dataset/small.csv \(ENOSPC\)"):
        sync_control.wait_for_sync(sync_mount.enclave.address, sync_mount.state)
    with pytest.raises(OSError) as info:  # the next operation on the path says it, once
        os.open(small, os.O_RDONLY)
    assert info.value.errno == errno.ENOSPC
    assert small.read_bytes() == b"s" * 20 * 1024  # the host folder keeps the user's bytes
    filler.unlink()  # the fix: space freed; the next drain (every `run`) uploads it again
    assert sync_mount.settle()["failed"] == {}
    with sync_mount.enclave.client() as c:
        assert c.read("dataset/small.csv", 0, MiB) == b"s" * 20 * 1024
    assert _status(sync_mount).returncode == 0
    healthy = _status(sync_mount, "--json")
    assert (healthy.returncode, json.loads(healthy.stdout)["failed"]) == (0, {})


@pytest.mark.parametrize("sync_enclave", [8 * MiB], indirect=True)
def test_fsync_waits_for_the_enclave_and_returns_its_refusal(sync_mount):
    _fill(sync_mount, 10 * 1024)
    fd = os.open(sync_mount.folder / "dataset" / "small.csv", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"s" * 20 * 1024)
        with pytest.raises(OSError) as info:
            os.fsync(fd)
        assert info.value.errno == errno.ENOSPC
    finally:
        with pytest.raises(OSError):  # the handle keeps its error
            os.close(fd)


@pytest.mark.parametrize("sync_enclave", [8 * MiB], indirect=True)
def test_removing_a_refused_file_makes_both_sides_agree(sync_mount):
    _fill(sync_mount, 10 * 1024)
    big = sync_mount.folder / "dataset" / "big.bin"
    big.write_bytes(os.urandom(2 * MiB))  # large writes are pipelined; close does not wait
    assert sync_mount.settle()["failed"] == {"dataset/big.bin": "ENOSPC"}
    big.unlink()
    assert sync_mount.settle()["failed"] == {}
    with sync_mount.enclave.client() as c:
        assert "big.bin" not in [name for name, _ in c.listdir("dataset")]
    assert not big.exists()


def test_drain_sees_every_file_closed_before_it(sync_mount, tmp_path):
    src = tmp_path / "src"
    for d in range(10):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(100):
            (src / f"d{d}" / f"f{i}.csv").write_bytes(f"{d},{i}\n".encode())
    subprocess.run(["cp", "-r", str(src), str(sync_mount.folder / "dataset")], check=True)
    sync_control.wait_for_sync(sync_mount.enclave.address, sync_mount.state)
    with sync_mount.enclave.client(settle=False) as c:  # no extra wait: what `run` sees
        for d in range(10):
            names = sorted(name for name, _ in c.listdir(f"dataset/src/d{d}"))
            assert names == sorted(f"f{i}.csv" for i in range(100))
        assert c.read("dataset/src/d7/f42.csv", 0, 100) == b"7,42\n"


def _pending(sync_mount) -> int:
    path = mounts.control_path(sync_mount.folder, sync_mount.state)
    return int(sync_control.ask(path, "status")["pending"])


def test_enclave_killed_while_the_replay_queue_is_full_then_holds_exactly_the_host_folder(
    sync_mount, tmp_path, monkeypatch
):
    from test_sync_faults import _enclave_files, _host_files, _wait_for

    sync_mount.stop()
    monkeypatch.setenv("NB_SYNC_MAX_PENDING", "32")  # a small queue, read by the daemon
    sync_mount.start()
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"f{i:03d}.csv").write_bytes(os.urandom(1000))
    (sync_mount.folder / "dataset" / "src").mkdir()  # a mkdir waits for the enclave
    assert sync_mount.enclave.proc is not None
    os.kill(sync_mount.enclave.proc.pid, signal.SIGSTOP)  # answers stop: the queue fills
    files = sorted(str(p) for p in src.iterdir())
    cp = subprocess.Popen(["cp", *files, str(sync_mount.folder / "dataset" / "src")])
    try:
        _wait_for(lambda: _pending(sync_mount) >= 32, "a full replay queue")
        assert cp.poll() is None  # back-pressure: the writer waits
        sync_mount.enclave.restart()  # SIGKILL, then a new, empty enclave
        assert cp.wait(timeout=120) == 0
    finally:
        if cp.poll() is None:
            cp.kill()
    sync_mount.settle()
    host = _host_files(sync_mount.folder)
    assert len([p for p in host if p.startswith("dataset/src/f")]) == 200
    assert _enclave_files(sync_mount.enclave) == host


def test_status_of_a_folder_not_synced_is_one_usage_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "user_runtime", "sync", "--status", "-d", str(tmp_path / "f"),
         "--state-dir", str(tmp_path / "state")],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"user-runtime: usage: {tmp_path / 'f'}: not synced"
    ]


def test_run_without_a_sync_of_its_enclave_does_not_wait(tmp_path):
    (tmp_path / "sync").mkdir()
    sync_control.wait_for_sync("unix:/nowhere.sock", tmp_path)  # returns: nothing to wait for
    assert mounts.mount_of_enclave("unix:/nowhere.sock", tmp_path) is None
