# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Process helpers of the enclave backends: recognise, wait for and end their processes.

A pid is signalled only after its command line shows it is still ours (a reused pid is never
signalled); a process group is sent SIGTERM, then SIGKILL after `STOP_GRACE` seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from user_runtime.enclave.record import KMS_SOCKET_NAME, StartOptions
from user_runtime.errors import ExternalError, UsageError

START_TIMEOUT = 60.0
STOP_GRACE = 5.0


class EnclaveStartError(ExternalError):
    """The enclave process did not come up (its log's last line says why)."""


def _wait_ready(proc: subprocess.Popen[bytes], sock: Path, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EnclaveStartError(f"the enclave exited at start: {_last_line(log)}")
        if sock.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(sock))
                except OSError:
                    pass
                else:
                    return
        time.sleep(0.05)
    raise EnclaveStartError(f"the enclave did not listen within {START_TIMEOUT:.0f} s")


def _is_our_process(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rpartition(")")[2].split()[:1] == ["Z"]
    return not zombie and marker.encode() in cmdline


def _terminate_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-pgid, os.WNOHANG)[0] > 0:
            pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_pgid_of(p) == pgid for p in _pids())


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _pgid_of(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[2]) if len(fields) > 2 and fields[0] != "Z" else None


def _last_line(log: Path) -> str:
    try:
        return _last_text_line(log.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return "no log"


def _last_text_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _start_relay(
    opts: StartOptions,
    env: Mapping[str, str],
    stack: Mapping[str, Any],
    sock: Path | None = None,
) -> tuple[int | None, str | None]:
    from urllib.parse import urlsplit  # noqa: PLC0415

    url = opts.kms_endpoint or env.get("AWS_ENDPOINT_URL_KMS") or stack.get("kms_url")
    if not url:
        return None, None
    parts = urlsplit(str(url))
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"kms endpoint {url!r}: the local enclave relays plain http only")
    sock = sock or opts.state_dir / KMS_SOCKET_NAME
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    argv = [sys.executable, "-m", "user_runtime.enclave.relay", str(sock), parts.hostname]
    argv.append(str(parts.port or 80))
    relay = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not sock.exists():
        if relay.poll() is not None or time.monotonic() > deadline:
            _terminate_group(relay.pid)
            raise EnclaveStartError("the kms relay did not start")
        time.sleep(0.02)
    return relay.pid, f"unix:{sock}"
