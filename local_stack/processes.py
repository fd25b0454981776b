# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Start and stop the local stack's server processes (moto, and later the KMS front).

Each server is a separate process on 127.0.0.1, reached over real HTTP: boto3
talks to it exactly as it would talk to AWS, through `endpoint_url`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from local_stack.errors import ExternalError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0

# Credentials for the local stack only; moto accepts any, SigV4 is still computed.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local-stack-access-key",
    "AWS_SECRET_ACCESS_KEY": "local-stack-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    """Ask the kernel for a free TCP port on the loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerProcess:
    """A server we started: its pid and the URL it answers on."""

    pid: int
    url: str

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process group and wait for it to go."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(self.pid):
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        # Not our child (started by another process): probe with signal 0.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return waited == 0


def wait_http(url: str, pid: int, timeout: float = START_TIMEOUT_S) -> None:
    """Wait until `url` answers any HTTP status, or fail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise ExternalError(f"server for {url} exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we built
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise ExternalError(f"server for {url} did not answer within {timeout:.0f} s")


def spawn(argv: Sequence[str], url: str, log_path: str | None = None) -> ServerProcess:
    """Start `argv` in its own session and wait until `url` answers."""
    log = Path(log_path).open("ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    finally:
        if log_path and not isinstance(log, int):
            log.close()
    server = ServerProcess(pid=proc.pid, url=url)
    try:
        wait_http(url, proc.pid)
    except BaseException:
        server.stop()
        raise
    return server


def start_moto(port: int | None = None, log_path: str | None = None) -> ServerProcess:
    """Start moto's server (S3, KMS and the rest) on 127.0.0.1."""
    port = port or free_port()
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    server = spawn(argv, url + "/moto-api/", log_path)
    return ServerProcess(pid=server.pid, url=url)


@contextlib.contextmanager
def running_moto() -> Iterator[ServerProcess]:
    """Context manager: moto's server for the duration of the block."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()
