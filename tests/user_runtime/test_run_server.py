# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A real enclave server (session fs, runner, RPC) with a fake KMS step, for `run` tests.

Used two ways: `serve_in_thread(...)` in-process, or `python test_run_server.py SOCK RAM`
as a separate process that fault tests kill. Not a test module (it has no tests).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "enclave"))

from test_runner_kit import FakeKeyRelease, owner_key  # noqa: E402

from enclave.runner.bundle import open_bundle  # noqa: E402
from enclave.runner.runner import Runner, RunnerConfig  # noqa: E402
from enclave.server import EnclaveServer  # noqa: E402
from enclave.sessionfs import SessionFs  # noqa: E402
from enclave.transport import SocketServer, listen_unix, serve_until_signal  # noqa: E402


def build(sock: Path, ram: Path) -> tuple[SocketServer, SessionFs]:
    fs = SessionFs()
    runner = Runner(RunnerConfig((owner_key(),), ram), open_bundle, FakeKeyRelease())
    return SocketServer(EnclaveServer(fs, runner), listen_unix(sock)), fs


def serve_in_thread(sock: Path, ram: Path) -> tuple[SocketServer, SessionFs, threading.Thread]:
    server, fs = build(sock, ram)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, fs, thread


if __name__ == "__main__":
    server, _ = build(Path(sys.argv[1]), Path(sys.argv[2]))
    print("listening", flush=True)
    serve_until_signal(server)
