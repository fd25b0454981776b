# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 21: owner code written without the enclave in mind runs unchanged in a run's view.

Each app below uses one pattern real ML projects use (threat-model.md §5.3): worker
processes (joblib/loky, multiprocessing) that need a /proc of their own, a pipeline driven by
a config file that names `/dataset/...` and `/output/...`, a stage started as `python3` from
`PATH`. Each runs with the spawned and the pre-started interpreter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_runner_kit import DirSession, FakeKeyRelease, RecordingSink, make_bundle, owner_key

from enclave.runner.api import RunRequest
from enclave.runner.bundle import open_bundle
from enclave.runner.errors import BadRunArgumentError
from enclave.runner.runner import Runner, RunnerConfig
from package_format.bundle.manifest import EnvPolicy


@pytest.fixture(params=[False, True], ids=["spawned", "prestarted"])
def env(request, tmp_path: Path):
    ram = tmp_path / "ram"
    ram.mkdir()
    session = DirSession(tmp_path / "session")
    config = RunnerConfig(trusted_keys=(owner_key(),), work_base=ram, prestart=request.param)
    runner = Runner(config, open_bundle, FakeKeyRelease())
    runner.warm()
    runner.settle()
    yield runner, session
    runner.close()
    assert list(ram.iterdir()) == []


def _run(runner: Runner, session: DirSession, files: dict[str, bytes], entry: str, args=()):
    (session.root / "encrypted" / "app.nb").write_bytes(
        make_bundle(files, entrypoints=((entry, entry),), stderr=True)
    )
    sink = RecordingSink()
    result = runner.run(RunRequest("encrypted/app.nb", entry, tuple(args)), session, sink)
    return result, sink


JOBLIB = b"""
import os
from joblib import Parallel, delayed

def square(x):
    return x * x, os.getpid()

if __name__ == "__main__":
    out = Parallel(n_jobs=2, backend="loky")(delayed(square)(i) for i in range(8))
    workers = {pid for _, pid in out}
    print(sum(v for v, _ in out), os.getpid() not in workers, os.getpid(), flush=True)
"""


def test_joblib_with_two_workers_runs_in_the_runs_pid_namespace(env) -> None:
    runner, session = env
    result, sink = _run(runner, session, {"main.py": JOBLIB}, "main.py")
    assert result.exit_status == 0, bytes(sink.err).decode()
    assert sink.out.decode().split() == ["140", "True", "2"]  # PID 2: after the run's init


POOL = b"""
import multiprocessing, os

def who(_):
    return os.getpid()

if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pids = set(pool.map(who, range(8)))
    procs = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    print(os.getpid() not in pids, all(p < 100 for p in pids), procs[:2], flush=True)
"""


def test_multiprocessing_pool_sees_its_own_processes_in_proc(env) -> None:
    runner, session = env
    result, sink = _run(runner, session, {"main.py": POOL}, "main.py")
    assert result.exit_status == 0, bytes(sink.err).decode()
    assert sink.out.decode().strip() == "True True [1, 2]"


PIPELINE = b"""
import json, subprocess, sys
from pathlib import Path

config = json.loads(Path(sys.argv[1]).read_text())
rows = [float(x) for x in Path(config["input"]).read_text().split()]
Path(config["features"]).write_text("\\n".join(str(x * 2) for x in rows))
# Stage two as its own program, by the interpreter on PATH (python3 of the app's env).
here = Path(__file__).parent
subprocess.run(["python3", str(here / "stage2.py"), sys.argv[1]], check=True)
print("pipeline done", flush=True)
"""

STAGE2 = b"""
import json, sys
from pathlib import Path

config = json.loads(Path(sys.argv[1]).read_text())
values = [float(x) for x in Path(config["features"]).read_text().split()]
Path(config["report"]).write_text(f"sum={sum(values)} python={sys.executable}\\n")
"""


def test_two_stage_pipeline_driven_by_a_config_file_with_absolute_paths(env) -> None:
    runner, session = env
    config = {
        "input": "/dataset/rows.txt",
        "features": "/output/features.txt",
        "report": "/output/report.txt",
    }
    (session.root / "dataset" / "config.json").write_text(json.dumps(config))
    (session.root / "dataset" / "rows.txt").write_text("1 2 3.5\n")
    files = {"pipeline.py": PIPELINE, "stage2.py": STAGE2}
    result, sink = _run(runner, session, files, "pipeline.py", ["/dataset/config.json"])
    assert result.exit_status == 0, bytes(sink.err).decode()
    assert sink.out == b"pipeline done\n"
    assert result.outputs == ("output/features.txt", "output/report.txt")
    report = (session.root / "output" / "report.txt").read_text()
    assert report.startswith("sum=13.0 python=")
    assert Path(report.split("python=")[1].strip()).parent == Path(runner_python()).parent


def runner_python() -> str:
    """The interpreter the runner starts entrypoints with (RunnerConfig's default)."""
    return RunnerConfig(trusted_keys=(), work_base=Path()).python


CONFIGURED = b"""
import os
n = int(os.environ["N_ESTIMATORS"])
seed = int(os.environ["SEED"])
print(n, seed, os.environ.get("UNSET", "-"), flush=True)
"""

ENV_POLICY = EnvPolicy(("N_ESTIMATORS", "SEED", "UNSET"), (("N_ESTIMATORS", "10"),))


def test_script_configured_only_by_environment_variables(env) -> None:
    runner, session = env
    (session.root / "encrypted" / "app.nb").write_bytes(
        make_bundle({"main.py": CONFIGURED}, stderr=True, env=ENV_POLICY)
    )
    sink = RecordingSink()
    request = RunRequest("encrypted/app.nb", "main.py", env=(("SEED", "7"),))
    result = runner.run(request, session, sink)
    assert result.exit_status == 0, bytes(sink.err).decode()
    assert sink.out == b"10 7 -\n"  # the owner's default, the user's value, unset stays unset
    sink = RecordingSink()
    request = RunRequest("encrypted/app.nb", "main.py", env=(("SEED", "1"), ("N_ESTIMATORS", "3")))
    assert runner.run(request, session, sink).exit_status == 0
    assert sink.out == b"3 1 -\n"


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PATH", "OTHER"])
def test_env_name_the_owner_did_not_allow_is_refused_before_kms(tmp_path, name: str) -> None:
    ram = tmp_path / "ram"
    ram.mkdir()
    session = DirSession(tmp_path / "session")
    release = FakeKeyRelease()
    runner = Runner(RunnerConfig(trusted_keys=(owner_key(),), work_base=ram), open_bundle, release)
    (session.root / "output" / "kept.txt").write_text("kept")
    (session.root / "encrypted" / "app.nb").write_bytes(
        make_bundle({"main.py": CONFIGURED}, env=ENV_POLICY)
    )
    request = RunRequest("encrypted/app.nb", "main.py", env=((name, "/dataset/x.so"),))
    with pytest.raises(BadRunArgumentError) as info:
        runner.run(request, session, RecordingSink())
    assert str(info.value) == (
        f"run: environment variable {name!r} is not allowed by the bundle's manifest"
    )
    assert release.calls == 0
    assert [p.name for p in (session.root / "output").iterdir()] == ["kept.txt"]


PKG_CLI = b"""
import sys
from . import helper
print(__name__, __package__, sys.argv[1:], helper.VALUE, flush=True)
"""


@pytest.mark.parametrize(
    ("module", "path"), [("pkg.cli", "pkg/cli.py"), ("pkg", "pkg/__main__.py")]
)
def test_python_dash_m_entrypoint_runs_its_package(env, module: str, path: str) -> None:
    runner, session = env
    files = {"pkg/__init__.py": b"", "pkg/helper.py": b"VALUE = 42\n", path: PKG_CLI}
    (session.root / "encrypted" / "app.nb").write_bytes(
        make_bundle(files, entrypoints=((module, path),), stderr=True, modules={module: module})
    )
    sink = RecordingSink()
    request = RunRequest("encrypted/app.nb", module, ("--url", "https://a//b"))
    result = runner.run(request, session, sink)
    assert result.exit_status == 0, bytes(sink.err).decode()
    assert sink.out.decode() == "__main__ pkg ['--url', 'https://a//b'] 42\n"


def test_python_dash_m_traceback_shows_the_owners_frames_only(env) -> None:
    runner, session = env
    files = {
        "pkg/__init__.py": b"",
        "pkg/cli.py": b"def boom():\n    raise RuntimeError('x')\nboom()\n",
    }
    (session.root / "encrypted" / "app.nb").write_bytes(
        make_bundle(
            files,
            entrypoints=(("pkg.cli", "pkg/cli.py"),),
            stderr=True,
            modules={"pkg.cli": "pkg.cli"},
        )
    )
    sink = RecordingSink()
    result = runner.run(RunRequest("encrypted/app.nb", "pkg.cli"), session, sink)
    assert result.exit_status == 1
    assert b"RuntimeError: x" in sink.err
    assert b"boom" in sink.err


def test_an_interpreter_installed_under_tmp_stays_visible_in_the_view(tmp_path: Path) -> None:
    # The run's /tmp is a fresh tmpfs: an interpreter that lives under /tmp (a venv in a clone
    # there, as CI may have) must be bound onto it, not hidden beneath it.
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    assert str(venv).startswith("/tmp/")
    ram = tmp_path / "ram"
    ram.mkdir()
    session = DirSession(tmp_path / "session")
    config = RunnerConfig(
        trusted_keys=(owner_key(),), work_base=ram, prestart=False, python=str(venv / "bin/python3")
    )
    runner = Runner(config, open_bundle, FakeKeyRelease())
    try:
        main = b"import sys\nprint(sys.prefix, flush=True)\n"
        result, sink = _run(runner, session, {"main.py": main}, "main.py")
    finally:
        runner.close()
    assert result.exit_status == 0, bytes(sink.err).decode()
    assert sink.out.decode().strip() == str(venv)
