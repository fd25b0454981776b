# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The entrypoint's process: started in its view, its output pumped, its group killed.

`EntryProcess` is the part of `enclave.runner.runner.Runner` that owns the running process
(specs/threat-model.md §5 step 6): it starts `argv` through the view's launcher
(`enclave.runner.view`) or a prestarted interpreter (`enclave.runner.zygote`), streams what it
writes to the sink, ends it at the run's time limit or on cancel, and kills its whole group.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from enclave.runner import view as run_view
from enclave.runner.api import BundleFacts, RunSink
from enclave.runner.errors import RunCancelledError, RunSetupError
from enclave.runner.zygote import Zygote

_READ_CHUNK = 1 << 16
_DRAIN_SECONDS = 2.0


def generic_failure_message(status: int) -> bytes:
    """The one line the user gets instead of a withheld stderr when the entrypoint fails."""
    return (
        f"entrypoint failed with exit status {status}; "
        "its error output is withheld by the bundle's policy\n"
    ).encode()


class EntryProcess:
    """The running entrypoint of a `Runner`; `cancel()` may be called from any thread."""

    _lock: threading.Lock
    _cancel: threading.Event
    _proc: subprocess.Popen[bytes] | None
    _limit: float | None
    _timed_out: bool
    _python: str
    _run_env: dict[str, str]

    def cancel(self) -> None:
        """Cancel the current run: kill the entrypoint's whole process group."""
        self._cancel.set()
        with self._lock:
            self._kill_group()

    def _spawn_and_pump(
        self,
        view: dict[str, object],
        *,
        argv: list[str],
        facts: BundleFacts,
        sink: RunSink,
        zygote: Zygote | None = None,
    ) -> int:
        with self._lock:
            if self._cancel.is_set():
                raise RunCancelledError("run cancelled")
            try:
                if zygote is not None:
                    env = {**_entry_env(self._python), **self._run_env}
                    self._proc = zygote.go(view, env, argv)
                    report = zygote.report  # closed by zygote.discard()
                else:
                    self._proc, report = self._launch(view, argv)
            except OSError as exc:
                raise RunSetupError(f"cannot start the entrypoint: {exc.strerror}") from exc
        proc = self._proc
        try:
            try:
                _await_view(report)
            finally:
                if zygote is None:
                    os.close(report)
            self._pump(proc, facts, sink)
        finally:
            with self._lock:
                self._kill_group()
                proc.wait()
                self._proc = None
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        code = proc.returncode
        return 128 - code if code < 0 else code

    def _launch(
        self, view: dict[str, object], argv: list[str]
    ) -> tuple[subprocess.Popen[bytes], int]:
        """Start `argv` in its view through `view.py`'s launcher; return it and its report."""
        report, report_end = os.pipe()
        try:
            proc = subprocess.Popen(
                [
                    self._python,
                    "-B",
                    "-E",
                    "-s",
                    "-c",
                    run_view.launcher(),
                    run_view.dump({**view, "report": report_end}),
                    *argv,
                ],
                cwd="/",
                env={**_entry_env(self._python), **self._run_env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(report_end,),
            )
        except BaseException:
            os.close(report)
            raise
        finally:
            os.close(report_end)
        return proc, report

    def _pump(self, proc: subprocess.Popen[bytes], facts: BundleFacts, sink: RunSink) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        forward: dict[int, Callable[[bytes], None] | None] = {
            proc.stdout.fileno(): sink.stdout if facts.allow_stdout else None,
            proc.stderr.fileno(): sink.stderr if facts.allow_stderr else None,
        }
        deadline: float | None = None
        limit = None if self._limit is None else time.monotonic() + self._limit
        with selectors.DefaultSelector() as sel:
            for fd in forward:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                if limit is not None and not self._timed_out and time.monotonic() >= limit:
                    self._timed_out = True  # specs/threat-model.md §5.5: as a cancel
                if self._cancel.is_set() or self._timed_out:
                    with self._lock:
                        self._kill_group()
                for key, _ in sel.select(timeout=0.1):
                    data = os.read(key.fd, _READ_CHUNK)
                    if not data:
                        sel.unregister(key.fd)
                        continue
                    target = forward[key.fd]
                    if target is not None:
                        target(data)
                if deadline is None and _has_exited(proc.pid):
                    # The leader is a zombie, so its group id cannot be reused yet: kill any
                    # children it left, then drain what they wrote, for a bounded time.
                    with self._lock:
                        self._kill_group()
                    deadline = time.monotonic() + _DRAIN_SECONDS
                if deadline is not None and time.monotonic() > deadline:
                    break

    def _kill_group(self) -> None:
        """Kill the entrypoint's process group (caller holds `_lock`; leader not reaped)."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _await_view(report: int) -> None:
    """Wait until the run's view is built (end of file on `report`).

    Raises:
        RunSetupError: The view could not be built (its one line says why).
    """
    parts: list[bytes] = []
    while chunk := os.read(report, 4096):
        parts.append(chunk)
    if parts:
        reason = b"".join(parts).decode(errors="replace")
        raise RunSetupError(f"{reason} (specs/threat-model.md §5.3)")


#: System directories of the image the run sees read-only, when present.
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def system_dirs(python: str) -> list[str]:
    """The image's directories bound read-only into a run's view: system and interpreter."""
    prefixes = {sys.prefix, sys.base_prefix, str(Path(python).parent.parent)}
    prefixes.add(str(Path(python).resolve().parent.parent))
    found: list[str] = []
    for path in [*_SYSTEM, *sorted(prefixes, key=len)]:
        if path in {"", "/"} or not os.path.lexists(path):
            continue
        if any(path == d or path.startswith(d + "/") for d in found if not Path(d).is_symlink()):
            continue
        found.append(path)
    return found


def _entry_env(python: str) -> dict[str, str]:
    """The entrypoint's whole environment (specs/threat-model.md §5.2).

    `PATH` starts with the interpreter's own directory, so `python`, `python3` (and `pip`'s
    console scripts) there are the entrypoint's interpreter, with its packages.
    """
    return {
        "PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",  # noqa: S108 - the run's own tmpfs (enclave.runner.view)
        "TMPDIR": "/tmp",  # noqa: S108
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


def _has_exited(pid: int) -> bool:
    """Whether `pid` has exited, without reaping it (its pid and group id stay reserved)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def effective_timeout(requested: float | None, ceiling: int | None) -> float | None:
    """The run's time limit: the smaller of the user's and the manifest's (None: no limit)."""
    limits = [t for t in (requested, ceiling) if t is not None and t > 0]
    return min(limits) if limits else None
