# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The pre-started entrypoint interpreter (enclave.runner.zygote): it runs the script as
`python -B -E -s -u SCRIPT ARGS` would, serves one run only, and dies with the runner."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from test_runner_kit import DirSession, FakeKeyRelease, RecordingSink, make_bundle, owner_key

from enclave.runner.api import RunRequest
from enclave.runner.bundle import open_bundle
from enclave.runner.runner import Runner, RunnerConfig, system_dirs
from enclave.runner.zygote import Zygote

PROBE = b"""
import json, os, sys
print(json.dumps({
    "argv": sys.argv[1:],
    "path0": sys.path[0],
    "name": __name__,
    "file": __file__,
    "cwd": os.getcwd(),
    "home": os.environ["HOME"],
    "env": sorted(os.environ),
    "flags": [sys.flags.dont_write_bytecode, sys.flags.ignore_environment, sys.flags.no_user_site],
    "pid": os.getpid(),
    "ppid": os.getppid(),
}), flush=True)
"""

CRASH = b"""
def owner_function():
    raise RuntimeError("boom")
owner_function()
"""


@pytest.fixture
def runner(tmp_path: Path):
    ram = tmp_path / "ram"
    ram.mkdir()
    config = RunnerConfig(trusted_keys=(owner_key(),), work_base=ram, prestart=True)
    runner = Runner(config, open_bundle, FakeKeyRelease())
    runner.warm()
    runner.settle()
    yield runner
    runner.close()
    assert list(ram.iterdir()) == []


def _run(runner: Runner, tmp_path: Path, script: bytes, args=(), **policy) -> RecordingSink:
    session = DirSession(tmp_path / "session")
    (session.root / "encrypted" / "app.nb").write_bytes(make_bundle({"main.py": script}, **policy))
    sink = RecordingSink()
    runner.run(RunRequest("encrypted/app.nb", "main.py", tuple(args)), session, sink)
    return sink


def test_prestarted_interpreter_runs_the_script_as_python_would(runner, tmp_path) -> None:
    spare = runner._spare
    assert spare is not None
    assert spare.zygote is not None
    waiting = spare.zygote.proc.pid
    seen = json.loads(_run(runner, tmp_path, PROBE, ("-x", "model.h5")).out)
    # The run used the interpreter started beforehand (it is reaped: its pid is free), and
    # runs as the second process of its own PID namespace (after its init, run_view).
    with pytest.raises(ProcessLookupError):
        os.kill(waiting, 0)
    assert (seen["pid"], seen["ppid"]) == (2, 1)
    assert seen["argv"] == ["-x", "model.h5"]
    assert seen["name"] == "__main__"
    assert Path(seen["file"]).name == "main.py"
    assert Path(seen["file"]).parent.name.startswith("app-")  # a random name (§4)
    assert seen["path0"] == str(Path(seen["file"]).parent)
    assert Path(seen["file"]).parent.parent == Path("/")
    assert seen["cwd"] == "/"
    assert seen["home"] == "/tmp"
    assert seen["env"] == ["HOME", "LANG", "LC_ALL", "PATH", "TMPDIR"]
    assert seen["flags"] == [1, 1, 1]


def test_each_run_gets_a_fresh_interpreter(runner, tmp_path) -> None:
    def waiting() -> int:
        spare = runner._spare
        assert spare is not None
        assert spare.zygote is not None
        return spare.zygote.proc.pid

    first = waiting()
    _run(runner, tmp_path / "a", PROBE)
    runner.settle()
    second = waiting()
    _run(runner, tmp_path / "b", PROBE)
    assert first != second
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)


def test_traceback_from_prestarted_interpreter_shows_owner_frames_only(runner, tmp_path) -> None:
    sink = _run(runner, tmp_path, CRASH, stderr=True)
    assert b"owner_function" in sink.err
    assert b"RuntimeError: boom" in sink.err
    assert b"<string>" not in sink.err  # no frame of the bootstrap


def test_closing_the_runner_kills_the_waiting_interpreter(tmp_path) -> None:
    ram = tmp_path / "ram"
    ram.mkdir()
    runner = Runner(
        RunnerConfig(trusted_keys=(owner_key(),), work_base=ram, prestart=True),
        open_bundle,
        FakeKeyRelease(),
    )
    runner.warm()
    runner.settle()
    spare = runner._spare
    assert spare is not None
    assert spare.zygote is not None
    proc = spare.zygote.proc
    runner.close()
    assert proc.returncode is not None
    assert list(ram.iterdir()) == []


MODULES = b"""
import json, sys
watch = ["typing", "re", "inspect", "threading", "socket", "ssl", "signal", "subprocess",
         "asyncio", "multiprocessing", "select", "selectors"]
print(json.dumps({name: name in sys.modules for name in watch}), flush=True)
"""


def test_waiting_interpreter_preloads_standard_modules_but_none_scripts_monkeypatch(
    runner, tmp_path
) -> None:
    spare = runner._spare
    assert spare is not None
    assert spare.zygote is not None
    assert spare.zygote.wait_ready(timeout=60)  # the whole list imported
    sink = _run(runner, tmp_path, MODULES)
    loaded = json.loads(sink.out)
    assert loaded["typing"]  # paid before the run (the probe itself imports neither)
    assert loaded["inspect"]
    # gevent/eventlet patch these before their first import: they must not be loaded yet.
    patched = ("threading", "socket", "ssl", "signal", "subprocess", "asyncio",
               "multiprocessing", "select", "selectors")  # fmt: skip
    assert [name for name in patched if loaded[name]] == []


def test_run_arriving_during_the_preload_does_not_wait_for_all_of_it(tmp_path) -> None:
    # The run's spec is read between two imports: the script runs in that interpreter with
    # whatever was loaded so far, and the ready signal never comes.
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("import sys; print('ran', 'typing' in sys.modules)\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    zygote = Zygote(sys.executable, env)
    try:
        view = {
            "root": str(tmp_path / "root"),
            "system": system_dirs(sys.executable),
            "dataset": str(app),
            "model": str(app),
            "output": str(tmp_path / "out"),
            "app": str(app),
            "app_at": "/app",
        }
        (tmp_path / "root").mkdir()
        (tmp_path / "out").mkdir()
        proc = zygote.go(view, env, ["/app/main.py"])
        out = proc.stdout.read() if proc.stdout is not None else b""
        assert proc.wait() == 0
        assert out.startswith(b"ran ")
        assert not zygote.wait_ready(timeout=0)
    finally:
        zygote.discard()
