# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
# ruff: noqa: INP001 - a module of the toolchain/build.py script, not of a package
"""Running a component's build: its output to a log file, progress lines to the terminal.

Used by toolchain/build.py (specs/toolchain.md §2); Python 3 standard library only.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

HEARTBEAT_S = 60.0
# Child processes running now, killed if the run is interrupted.
RUNNING: set[subprocess.Popen[bytes]] = set()
RUNNING_LOCK = threading.Lock()
_PRINT_LOCK = threading.Lock()


class ToolchainError(Exception):
    """A component could not be built; the message is one line for the terminal."""


class Progress:
    """Progress lines on the terminal, each with the run's elapsed time."""

    def __init__(self) -> None:
        """Start the clock."""
        self.start = time.monotonic()

    def elapsed(self) -> str:
        """Elapsed time as M:SS."""
        s = int(time.monotonic() - self.start)
        return f"{s // 60}:{s % 60:02d}"

    def line(self, text: str) -> None:
        """Print one progress line on stderr, whole (two threads may print at once)."""
        with _PRINT_LOCK:
            sys.stderr.write(f"[toolchain {self.elapsed()}] {text}\n")
            sys.stderr.flush()


def run_logged(cmd: list[str], log: Path, name: str, progress: Progress) -> None:
    """Run `cmd` with all its output appended to `log`; echo its `[name]` lines.

    Prints a heartbeat line every minute of silence so a long compile shows it is alive.

    Args:
        cmd: The command.
        log: The log file.
        name: The component (its scripts prefix their progress lines with `[name]`).
        progress: Where progress lines go.

    Raises:
        ToolchainError: The command failed; the message names the component and the log.
    """
    started = time.monotonic()
    with log.open("ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with RUNNING_LOCK:
            RUNNING.add(proc)
        assert proc.stdout is not None
        last = time.monotonic()
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            try:
                for raw in _lines(proc, sel):
                    out.write(raw)
                    text = raw.decode(errors="replace").rstrip()
                    if text.startswith(f"[{name}]"):
                        progress.line(text)
                        last = time.monotonic()
                    elif time.monotonic() - last >= HEARTBEAT_S:
                        minutes = (time.monotonic() - started) / 60
                        progress.line(f"{name}: still building ({minutes:.0f} min)")
                        last = time.monotonic()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                with RUNNING_LOCK:
                    RUNNING.discard(proc)
        code = proc.wait()
    if code != 0:
        msg = f"{name} failed (exit {code}); see {log}"
        raise ToolchainError(msg)


def _lines(proc: subprocess.Popen[bytes], sel: selectors.BaseSelector) -> Iterator[bytes]:
    """Yield output lines; yield b"" once a second of silence (for heartbeats)."""
    assert proc.stdout is not None
    buf = b""
    while True:
        if not sel.select(timeout=1.0):
            yield b""
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            if buf:
                yield buf
            return
        buf += chunk
        *whole, buf = buf.split(b"\n")
        for line in whole:
            yield line + b"\n"
