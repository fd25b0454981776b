# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Faults mid-run (issue 5 item 3): enclave killed, client killed, Ctrl-C, socket cut mid-frame.

The server runs as its own process (in a PID namespace when the kernel allows, as the local
launcher runs it); the client is the real console script. Waits are bounded guards against
hangs, never timing assertions.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "enclave"))
from test_runner_kit import make_bundle  # noqa: E402

from user_runtime.rpc.client import EnclaveClient, RemoteError  # noqa: E402
from user_runtime.run_upload import upload  # noqa: E402

SLOW = b"import time\nprint('started', flush=True)\ntime.sleep(600)\n# SECRET-SOURCE-91b2\n"
GUARD = 60  # seconds: a hang guard only


def _isolating_prefix() -> list[str]:
    if os.geteuid() == 0 and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "--pid", "--fork", "--kill-child", "true"], check=False)
        if probe.returncode == 0:
            return ["unshare", "--pid", "--fork", "--kill-child", "--"]
    return []


def _entrypoints_of(ram: Path) -> list[int]:
    """Pids whose command line names a file in a run directory under `ram` (entrypoints)."""
    marker = f"{ram}/run-".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes():
                    state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
                    if state != "Z":
                        found.append(int(proc.name))
            except OSError:
                continue
    return found


def _wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path):
    sock, ram = tmp_path / "enclave.sock", tmp_path / "ram"
    ram.mkdir()
    argv = [*_isolating_prefix(), sys.executable, str(HERE / "test_run_server.py")]
    proc = subprocess.Popen(
        [*argv, str(sock), str(ram)], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"listening\n"
    bundle = tmp_path / "slow.nb"
    bundle.write_bytes(make_bundle({"main.py": SLOW}))
    with EnclaveClient.connect(f"unix:{sock}") as client:
        upload(client, bundle, "encrypted/slow.nb")
    try:
        yield proc, sock, ram, bundle
    finally:
        for pid in _entrypoints_of(ram):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _start_cli(sock: Path, *extra: str) -> subprocess.Popen[bytes]:
    cli = subprocess.Popen(
        [sys.executable, "-m", "user_runtime", "run", "-f", "slow.nb", "-s", "main.py", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NB_ENCLAVE_ADDRESS": f"unix:{sock}"},
    )
    assert cli.stdout is not None
    assert cli.stdout.readline() == b"started\n"
    return cli


def _one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_enclave_killed_mid_run_gives_one_line(server) -> None:
    proc, sock, _ram, bundle = server
    before = bundle.read_bytes()
    cli = _start_cli(sock)
    os.killpg(proc.pid, signal.SIGKILL)
    _out, err = cli.communicate(timeout=GUARD)
    assert cli.returncode == 1
    assert _one_line(err).startswith("user-runtime: error: ")
    assert bundle.read_bytes() == before


def test_ctrl_c_cancels_the_run_in_the_enclave(server) -> None:
    _proc, sock, ram, _bundle = server
    cli = _start_cli(sock)
    assert _entrypoints_of(ram)
    cli.send_signal(signal.SIGINT)
    _out, err = cli.communicate(timeout=GUARD)
    assert cli.returncode == 130
    assert b"cancel" in err
    assert b"Traceback" not in err
    _wait_until(lambda: not _entrypoints_of(ram), "the entrypoint to be killed")
    _wait_until(lambda: not any(ram.iterdir()), "the plaintext to be wiped")
    assert _run_completes(sock)


def test_client_killed_mid_run_frees_the_enclave(server) -> None:
    _proc, sock, ram, _bundle = server
    cli = _start_cli(sock)
    cli.kill()
    cli.wait()
    _wait_until(lambda: not _entrypoints_of(ram), "the orphaned run to be cancelled")
    _wait_until(lambda: not any(ram.iterdir()), "the plaintext to be wiped")
    assert _run_completes(sock)


def _run_completes(sock: Path) -> bool:
    """A new run starts (not BUSY) and is cancelled cleanly."""
    with EnclaveClient.connect(f"unix:{sock}") as client:
        handle = client.start_run("encrypted/slow.nb", "main.py", [])
        events = handle.events()
        first = next(events)
        handle.cancel()
        with pytest.raises(RemoteError, match="CANCELLED"):
            list(events)
    return first.data.startswith(b"started")


def test_socket_closed_mid_frame_gives_one_line(tmp_path: Path) -> None:
    sock = tmp_path / "half.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen(1)

    def half_frame() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"\x00\x00")  # two bytes of a four-byte length prefix
        conn.close()

    thread = threading.Thread(target=half_frame, daemon=True)
    thread.start()
    proc = subprocess.run(
        [sys.executable, "-m", "user_runtime", "run", "-f", "x.nb", "-s", "main.py"],
        capture_output=True,
        timeout=GUARD,
        env={**os.environ, "NB_ENCLAVE_ADDRESS": f"unix:{sock}"},
        check=False,
    )
    thread.join(timeout=GUARD)
    listener.close()
    assert proc.returncode == 1
    assert _one_line(proc.stderr).startswith("user-runtime: error: ")
