# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Fixtures for the sync tests: a real enclave server process and a real FUSE mount."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from user_runtime.sync import mounts

REPO = Path(__file__).resolve().parents[2]

# A session-fs server with a chosen budget, as the enclave runs it (H5's server and
# transport), without a runner: the sync tests only need the filesystem.
_SERVER = """
import sys
from pathlib import Path
from enclave.runner.interface import UnavailableRunner
from enclave.server import EnclaveServer
from enclave.sessionfs import SessionFs, SessionLimits
from enclave.transport import SocketServer, listen_unix
fs = SessionFs(SessionLimits(budget_bytes=int(sys.argv[2])))
server = SocketServer(EnclaveServer(fs, UnavailableRunner()), listen_unix(Path(sys.argv[1])))
print("listening", flush=True)
server.serve_forever()
"""


@dataclass
class EnclaveProc:
    sock: Path
    budget: int
    proc: subprocess.Popen[bytes] | None = None
    # Set by `sync_mount`: a look into the enclave first waits for the mount's replay
    # queue (close returns before the enclave has the file, specs/sync.md §6.3).
    settle: Callable[[], object] | None = None

    @property
    def address(self) -> str:
        return f"unix:{self.sock}"

    def start(self) -> None:
        self.sock.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(self.sock), str(self.budget)],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"listening\n"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def client(self, *, settle: bool = True):
        from user_runtime.rpc.client import EnclaveClient

        if settle and self.settle is not None:
            self.settle()
        return EnclaveClient.connect(self.address)


@pytest.fixture
def sync_enclave(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EnclaveProc]:
    """An enclave server; parametrize indirectly with a budget in bytes to change it."""
    proc = EnclaveProc(tmp_path / "enclave.sock", getattr(request, "param", 512 * 1024 * 1024))
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def _cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "user_runtime", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@dataclass
class SyncMount:
    folder: Path
    store: Path
    state: Path
    enclave: EnclaveProc
    pids: list[int] = field(default_factory=list)

    def start(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = _cli(
            "sync",
            "-d",
            str(self.folder),
            "--enclave",
            self.enclave.address,
            "--store",
            str(self.store),
            "--state-dir",
            str(self.state),
            check=check,
        )
        state = mounts.read_state(self.folder, self.state)
        if state is not None:
            self.pids.append(state.pid)
        return result

    def stop(self) -> subprocess.CompletedProcess[str]:
        return _cli("sync", "--stop", "-d", str(self.folder), "--state-dir", str(self.state))

    @property
    def pid(self) -> int:
        state = mounts.read_state(self.folder, self.state)
        assert state is not None
        return state.pid

    def log(self) -> str:
        path = mounts.log_path(self.folder, self.state)
        return path.read_text() if path.exists() else ""

    def settle(self) -> dict[str, object]:
        """Wait until the daemon's replay queue is empty; its final status ({} if not up)."""
        from user_runtime.sync import control as sync_control

        try:
            return sync_control.ask(mounts.control_path(self.folder, self.state), "drain")
        except sync_control.SyncControlError:
            return {}


@pytest.fixture
def fuse_ok() -> None:
    if not Path("/dev/fuse").exists() or os.geteuid() != 0:
        pytest.skip("needs /dev/fuse and root")


@pytest.fixture
def sync_mount(tmp_path: Path, sync_enclave: EnclaveProc, fuse_ok: None) -> Iterator[SyncMount]:
    mount = SyncMount(
        tmp_path / "synced_folder", tmp_path / "store", tmp_path / "state", sync_enclave
    )
    mount.start()
    sync_enclave.settle = mount.settle
    try:
        yield mount
    finally:
        if mounts.mount_type(mount.folder) is not None or mounts.read_state(
            mount.folder, mount.state
        ):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "user_runtime",
                    "sync",
                    "--stop",
                    "-d",
                    str(mount.folder),
                    "--state-dir",
                    str(mount.state),
                ],
                cwd=REPO,
                capture_output=True,
                timeout=60,
                check=False,
            )
        for pid in mount.pids:
            if mounts.pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while mounts.mount_type(mount.folder) is not None and time.monotonic() < deadline:
            mounts.unmount(mount.folder)
