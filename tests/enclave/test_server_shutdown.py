# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""SIGTERM mid-run: the run is cancelled and its runner returns (and wipes) before exit."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from user_runtime.rpc.client import ConnectionLostError, EnclaveClient, RemoteError

SERVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from enclave.runner.api import RunResult
    from enclave.server import EnclaveServer
    from enclave.sessionfs import SessionFs
    from enclave.transport import SocketServer, listen_unix, serve_until_signal

    marker = Path(sys.argv[2])

    class Runner:
        def run(self, request, session, sink, cancel):
            marker.write_text("plaintext")
            try:
                sink.stdout(b"started\\n")
                cancel.wait()
                time.sleep(0.2)  # a runner that takes a moment to stop
                return RunResult(0)
            finally:
                marker.write_text("wiped")

    serve_until_signal(SocketServer(EnclaveServer(SessionFs(), Runner()), listen_unix(Path(sys.argv[1]))))
    """
)


def test_sigterm_mid_run_waits_for_the_runner_to_wipe(tmp_path: Path) -> None:
    sock = tmp_path / "enclave.sock"
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(sock), str(marker)], stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        client = EnclaveClient.connect(f"unix:{sock}")
        events = client.start_run("encrypted/app", "main", []).events()
        assert next(events).data == b"started\n"
        assert marker.read_text() == "plaintext"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        # either the CANCELLED reply or the closed connection reaches the client
        with contextlib.suppress(ConnectionLostError, RemoteError):
            list(events)
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in err
    assert marker.read_text() == "wiped"
