# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`enclave-server serve`: usage errors, bad paths, a real process served and stopped."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enclave._cli import main
from user_runtime.rpc.client import EnclaveClient, RemoteError

SCRIPT = Path(sys.executable).parent / "enclave-server"


def wait_for_socket(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)


def test_serve_needs_exactly_one_listener(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["serve"]) == 2
    assert main(["serve", "--unix", str(tmp_path / "s"), "--vsock", "5005"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err.count("enclave-server: usage: give exactly one of --unix PATH or --vsock PORT")
        == 2
    )


def test_serve_bad_memory_budget_is_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["serve", "--unix", str(tmp_path / "s"), "--memory-budget", "lots"]) == 2
    captured = capsys.readouterr()
    assert "expected a size such as 512M or 2G" in captured.err
    assert not (tmp_path / "s").exists()


def test_serve_on_a_regular_file_fails_cleanly_in_subprocess(tmp_path: Path) -> None:
    victim = tmp_path / "not-a-socket"
    victim.write_text("keep me")
    proc = subprocess.run(
        [SCRIPT, "serve", "--unix", str(victim)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == f"enclave-server: error: {victim}: exists and is not a socket\n"
    assert "Traceback" not in proc.stderr
    assert victim.read_text() == "keep me"


def test_serve_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    sock = tmp_path / "enclave.sock"
    proc = subprocess.Popen(
        [SCRIPT, "serve", "--unix", str(sock), "--memory-budget", "1M"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_socket(sock, proc)
        assert sock.stat().st_mode & 0o777 == 0o600
        with EnclaveClient.connect(f"unix:{sock}") as client:
            client.create("dataset/f")
            with pytest.raises(RemoteError) as full:
                client.write("dataset/f", 0, b"x" * (2 * 1024 * 1024))
            assert full.value.errno == errno.ENOSPC
            assert client.statfs()["total_bytes"] == 1024 * 1024
            with pytest.raises(RemoteError) as refused:
                client.run("encrypted/app.bundle", "main", [])
            assert refused.value.name == "NOT_ALLOWED"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out == b""
    assert err.decode().startswith(f"enclave-server: listening on unix:{sock}\n")
    assert b"Traceback" not in err
