# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A Python entrypoint's interpreter, started before the run it serves (specs/threat-model.md §5.2).

Starting `python` costs 25-40 ms here, about a quarter of a small entrypoint's run. The
runner therefore starts the next run's interpreter as soon as the previous run is over
(killed, reaped and wiped): `python -B -E -s -u -c BOOTSTRAP FD`, cwd `/`, with the
entrypoint's environment but for `HOME` and `TMPDIR` (the next run's private directory does
not exist yet), in its own session, stdin `/dev/null`, stdout and stderr piped to the runner.
It imports a fixed list of standard-library modules (`PRELOAD`), then waits on the read
end of a pipe (FD) and holds nothing else. When the run comes,
`go(view, env, argv)` writes the run's view (`enclave.runner.view`), its environment (`HOME`,
`TMPDIR`, the run's variables), the program path and the arguments into the pipe and closes
it; the bootstrap enters the view, sets the variables, sets `sys.argv` and `sys.path[0]` as
`python SCRIPT ARGS` would and executes the script as `__main__` (uncaught exceptions
print the script's frames only, exit status 1).
An interpreter serves exactly one run: it is killed with its process group when the run
ends, and an unused one is killed when the runner closes or cannot use it. Nothing of a run
exists when the next run's interpreter starts, so none can reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
from collections.abc import Mapping, Sequence

from enclave.runner import view as run_view

#: Standard-library modules the waiting interpreter imports before its run: what Python ML
#: scripts load anyway (numpy alone pulls in most), ~50 ms of a small script's run here.
#: Fixed, standard library only: no owner code, nothing chosen by or left from any run. Left
#: out on purpose: what scripts monkeypatch before first import (threading, socket, ssl,
#: select, signal, asyncio, subprocess, multiprocessing: gevent/eventlet need them unloaded).
PRELOAD = (
    "abc", "argparse", "ast", "collections", "contextlib", "copy", "csv", "dataclasses",
    "datetime", "decimal", "enum", "fractions", "functools", "inspect", "itertools", "json",
    "math", "numbers", "operator", "pathlib", "platform", "re", "string", "struct",
    "textwrap", "types", "typing", "warnings", "weakref",
)  # fmt: skip

BOOTSTRAP = """\
def _nb_preload(fd, names, ready, parts):
    # Stops as soon as the run arrives: a run never waits for the rest of the list.
    import importlib, os
    os.set_blocking(fd, False)
    try:
        for name in names:
            try:
                parts.append(os.read(fd, 65536))
                return
            except BlockingIOError:
                pass
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        os.write(ready, b"r")
    finally:
        os.close(ready)
        os.set_blocking(fd, True)
def _nb_run():
    fd = int(sys.argv[1])
    parts = []
    _nb_preload(fd, sys.argv[3].split(","), int(sys.argv[2]), parts)
    while not parts or parts[-1]:
        parts.append(os.read(fd, 65536))
    os.close(fd)
    data = b"".join(parts)
    if not data:
        return
    fields = [os.fsdecode(a) for a in data.split(b"\\0")]
    enter(json.loads(fields[0]))
    os.environ.update(json.loads(fields[1]))
    argv = fields[2:]

    def hook(kind, value, tb, show=sys.__excepthook__):
        while tb is not None and (tb.tb_frame.f_code.co_filename == "<string>"
                                  or tb.tb_frame.f_code.co_filename.endswith("runpy.py")):
            tb = tb.tb_next
        show(kind, value.with_traceback(tb), tb)

    sys.excepthook = hook
    if argv[0] == "-m":
        # python -m MODULE ARGS, with the app's root first on sys.path (runner: module).
        import runpy
        sys.path[0] = argv[1]
        sys.argv = [argv[2], *argv[3:]]
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
        return
    path = argv[0]
    with open(path, "rb") as f:
        source = f.read()
    sys.argv = argv
    sys.path[0] = os.path.dirname(path)
    from importlib.machinery import SourceFileLoader
    main = sys.modules["__main__"].__dict__
    builtins = main["__builtins__"]
    main.clear()
    main.update(
        __name__="__main__", __doc__=None, __package__=None, __spec__=None, __file__=path,
        __cached__=None, __builtins__=builtins, __loader__=SourceFileLoader("__main__", path),
    )
    exec(compile(source, path, "exec", dont_inherit=True), main)
_nb_run()
"""


#: `python -c RUN_MODULE APP MODULE ARGS`: `python -m MODULE ARGS` with APP first on sys.path
#: (a module entrypoint without a pre-started interpreter).
RUN_MODULE = (
    "import runpy, sys; sys.path[0] = sys.argv[1]; mod = sys.argv[2]; "
    "sys.argv = [mod, *sys.argv[3:]]; runpy.run_module(mod, run_name='__main__', alter_sys=True)"
)


class Zygote:
    """One pre-started interpreter for one Python entrypoint run.

    Attributes:
        proc: The interpreter's process (leader of its own process group).
    """

    def __init__(self, python: str, env: Mapping[str, str]) -> None:
        """Start the interpreter (environment `env` but `HOME`, `TMPDIR`), waiting for `go`.

        Raises:
            OSError: The interpreter cannot be started.
        """
        read_end, self._control = os.pipe()
        self._ready, ready_end = os.pipe()
        #: Read end of the pipe `view.enter` reports on (end of file: the script starts).
        self.report, self._report_end = os.pipe()
        try:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                [
                    python,
                    "-B",
                    "-E",
                    "-s",
                    "-u",
                    "-c",
                    run_view.source() + BOOTSTRAP,
                    str(read_end),
                    str(ready_end),
                    ",".join(PRELOAD),
                ],
                cwd="/",
                env={k: v for k, v in env.items() if k not in ("HOME", "TMPDIR")},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(read_end, ready_end, self._report_end),
            )
        except BaseException:
            for fd in (self._control, self._ready, self.report):
                os.close(fd)
            raise
        finally:
            os.close(read_end)
            os.close(ready_end)
            os.close(self._report_end)
        self._sent = False

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the interpreter has imported all of `PRELOAD`; False on timeout.

        A run does not need this (the interpreter stops preloading when its run comes).
        """
        if self._ready < 0:
            return False
        readable, _, _ = select.select([self._ready], [], [], timeout)
        return bool(readable) and os.read(self._ready, 1) == b"r"

    def usable(self) -> bool:
        """Whether the interpreter still waits for its run."""
        return not self._sent and self.proc.poll() is None

    def go(
        self, view: Mapping[str, object], env: Mapping[str, str], argv: Sequence[str]
    ) -> subprocess.Popen[bytes]:
        """Hand the interpreter its view (`view.py`), environment and argv; return its process.

        `env` holds `HOME`, `TMPDIR` and the run's own variables; the interpreter adds them to
        the environment it was started with.

        Raises:
            OSError: The interpreter went away before it got them (e.g. `BrokenPipeError`).
        """
        self._sent = True
        spec = {**view, "report": self._report_end}
        fields = [run_view.dump(spec), json.dumps(dict(env)), *argv]
        data = memoryview(b"\0".join(os.fsencode(a) for a in fields))
        try:
            while data:
                data = data[os.write(self._control, data) :]
        finally:
            os.close(self._control)
            self._control = -1
        return self.proc

    def discard(self) -> None:
        """Kill the interpreter and its process group, reap it, close its pipes."""
        if self._control >= 0:
            os.close(self._control)
            self._control = -1
        if self._ready >= 0:
            os.close(self._ready)
            self._ready = -1
        if self.report >= 0:
            os.close(self.report)
            self.report = -1
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
