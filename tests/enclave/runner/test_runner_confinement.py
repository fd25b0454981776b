# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 15: arguments, format-level links and time limits cannot take a run out of its bounds.

Each test is named after the attack it stops (specs/threat-model.md §7, T25-T27). The runner
runs with a real interpreter over real bundles; the KMS step is a fake.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import h5py
import pytest
from test_runner_kit import DirSession, FakeKeyRelease, RecordingSink, make_bundle, owner_key

from enclave.runner.api import RunRequest
from enclave.runner.bundle import open_bundle
from enclave.runner.errors import BadRunArgumentError, RunTimedOutError
from enclave.runner.runner import Runner, RunnerConfig, effective_timeout, system_dirs
from package_format.rpc.codes import ErrorCode

SECRET = b"OWNER-SECRET-5b1e"
ECHO = b"import sys; print(sys.argv[1:], flush=True)"


@pytest.fixture(params=[False, True], ids=["spawned", "prestarted"])
def env(request, tmp_path: Path):
    ram = tmp_path / "ram"
    ram.mkdir()
    session = DirSession(tmp_path / "session")
    config = RunnerConfig(trusted_keys=(owner_key(),), work_base=ram, prestart=request.param)
    release = FakeKeyRelease()
    runner = Runner(config, open_bundle, release)
    runner.warm()
    runner.settle()
    yield runner, release, session, ram
    runner.close()
    assert list(ram.iterdir()) == []


def _put(session: DirSession, data: bytes) -> str:
    (session.root / "encrypted" / "app.nb").write_bytes(data)
    return "encrypted/app.nb"


def _owner_model(tmp_path: Path) -> bytes:
    path = tmp_path / "owner-model.h5"
    with h5py.File(path, "w") as f:
        f["w"] = SECRET.decode()
    return path.read_bytes()


# -- item 1: arguments pass unchanged; the run's view bounds them (threat-model.md §5.3) ----

#: Tries every path an argument may hold (after an option's letters, `=`, a list separator).
PROBE = b"""
import re, sys
for arg in sys.argv[1:]:
    for cut in re.split(r"[=,:;\\s]", arg):
        for i in range(len(cut)):
            if cut[i] in "/.~" and (i == 0 or cut[i - 1] in "-x"):
                try:
                    with open(cut[i:], "rb") as f:
                        print(cut[i:], f.read(4096), flush=True)
                except OSError as exc:
                    print(cut[i:], type(exc).__name__, flush=True)
"""


@pytest.mark.parametrize(
    "arg",
    [
        "-o/tmp/x",
        "-d/etc",
        "-o..",
        "-I../app",
        "-Ifx/etc",
        "key=/etc/passwd",
        "--in=a,/etc/passwd",
        "/dataset/a:/etc/x",
        "-o/output/../../x",
        "file:///etc/passwd",
        "-o~root/.ssh",
        "x;/proc/self/environ",
        "/encrypted/app.nb",
        "/proc/1/environ",
        "../model/w.txt",
        "/proc/self/cwd/../app/model/w.txt",
    ],
)
def test_joined_option_path_outside_the_roots_reads_nothing_of_the_enclave(env, arg) -> None:
    runner, _, session, _ = env
    (session.root / "encrypted" / "secret.txt").write_bytes(SECRET)
    bundle = make_bundle({"main.py": PROBE, "model/w.txt": SECRET})
    path = _put(session, bundle)
    sink = RecordingSink()
    result = runner.run(
        RunRequest(path, "main.py", (arg, "-x/encrypted/secret.txt")), session, sink
    )
    assert result.exit_status == 0
    assert SECRET not in sink.out
    assert b"app.nb b'" not in sink.out
    assert b"AWS_" not in sink.out


@pytest.mark.parametrize("arg", ["a\x00b", "x" * 4097])
def test_argument_exec_cannot_carry_rejected_before_kms(env, arg: str) -> None:
    runner, release, session, _ = env
    path = _put(session, make_bundle({"main.py": ECHO}))
    with pytest.raises(BadRunArgumentError) as info:
        runner.run(RunRequest(path, "main.py", (arg,)), session, RecordingSink())
    assert info.value.rpc_code is ErrorCode.BAD_RUN_ARGUMENT
    assert release.calls == 0


def test_joined_option_write_to_host_tmp_fails_and_writes_nothing(env, tmp_path) -> None:
    runner, _, session, _ = env
    target = tmp_path / "host-tmp-target"
    target.mkdir()
    script = b"import sys, pathlib; pathlib.Path(sys.argv[1][2:], 'x').write_text('leak')"
    path = _put(session, make_bundle({"main.py": script}, allow_files=False))
    result = runner.run(RunRequest(path, "main.py", (f"-o{target}",)), session, RecordingSink())
    assert result.exit_status != 0
    assert list(target.iterdir()) == []


WRITER = b"""
import os, sys
for target in ["/x", "/etc/x", "/usr/x", "/dataset/x", "/model/x", os.path.dirname(__file__) + "/x",
               "/output/ok", "/tmp/ok", "/dev/shm/ok"]:
    try:
        with open(target, "w") as f:
            f.write("x")
        print(target, "written", flush=True)
    except OSError as exc:
        print(target, os.strerror(exc.errno), flush=True)
"""


def test_writes_outside_output_and_tmp_fail_with_an_error_the_script_sees(env) -> None:
    runner, _, session, _ = env
    sink = RecordingSink()
    path = _put(session, make_bundle({"main.py": WRITER}))
    assert runner.run(RunRequest(path, "main.py"), session, sink).exit_status == 0
    lines = sink.out.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["Read-only file system"] * 6 + [
        "written"
    ] * 3
    assert [p.name for p in (session.root / "output").iterdir()] == ["ok"]


LISTER = b"""
import os, sys
skip = set(sys.argv[1:]) | {"/proc", "/dev"}
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
    for name in files:
        print(os.path.join(top, name), flush=True)
"""


def test_view_holds_the_run_and_the_system_only(env) -> None:
    runner, _, session, _ = env
    (session.root / "encrypted" / "secret.txt").write_bytes(SECRET)
    (session.root / "dataset" / "rows.csv").write_text("a\n")
    path = _put(session, make_bundle({"main.py": LISTER, "model/w.txt": b"w"}))
    sink = RecordingSink()
    args = tuple(system_dirs(sys.executable))
    assert runner.run(RunRequest(path, "main.py", args), session, sink).exit_status == 0
    files = sorted(re.sub(r"^/app-[0-9a-f]{16}/", "/APP/", f) for f in sink.out.decode().split())
    assert files == ["/APP/main.py", "/APP/model/w.txt", "/dataset/rows.csv"]


def test_url_and_key_value_arguments_reach_the_entrypoint_unchanged(env) -> None:
    runner, _, session, _ = env
    (session.root / "dataset" / "rows.csv").write_text("a,b\n")
    script = b"import sys; print(repr(sys.argv[1:]), open(sys.argv[2][4:]).read(), flush=True)"
    path = _put(session, make_bundle({"main.py": script}))
    args = ("see https://example.com//a/../b?x=1 either /or", "key=/dataset/rows.csv")
    sink = RecordingSink()
    assert runner.run(RunRequest(path, "main.py", args), session, sink).exit_status == 0
    assert sink.out.decode() == f"{list(args)!r} a,b\n\n"


# -- item 2: the app is not the working directory; format links do not reach it ------------


def test_hdf5_external_link_to_owner_model_does_not_resolve(env, tmp_path: Path) -> None:
    runner, _, session, _ = env
    with h5py.File(session.root / "dataset" / "evil.h5", "w") as f:
        f["w"] = h5py.ExternalLink("model.h5", "/w")
    script = b"import sys, h5py; print(h5py.File(sys.argv[1], 'r')['w'][()], flush=True)"
    bundle = make_bundle({"main.py": script, "model.h5": _owner_model(tmp_path)})
    sink = RecordingSink()
    result = runner.run(
        RunRequest(_put(session, bundle), "main.py", ("/dataset/evil.h5",)), session, sink
    )
    assert result.exit_status != 0
    assert SECRET not in sink.out
    assert SECRET not in sink.err


def test_hdf5_external_link_through_proc_cwd_does_not_resolve(env, tmp_path: Path) -> None:
    runner, _, session, _ = env
    with h5py.File(session.root / "dataset" / "evil.h5", "w") as f:
        f["w"] = h5py.ExternalLink("/proc/self/cwd/../app/model.h5", "/w")
    script = b"import sys, h5py; print(h5py.File(sys.argv[1], 'r')['w'][()], flush=True)"
    bundle = make_bundle({"main.py": script, "model.h5": _owner_model(tmp_path)})
    sink = RecordingSink()
    result = runner.run(
        RunRequest(_put(session, bundle), "main.py", ("/dataset/evil.h5",)), session, sink
    )
    assert result.exit_status != 0
    assert SECRET not in sink.out


def test_relative_argument_does_not_reach_bundle_files(env) -> None:
    runner, _, session, _ = env
    script = b"import sys; print(open(sys.argv[1]).read(), flush=True)"
    bundle = make_bundle({"main.py": script, "model/w.txt": SECRET})
    sink = RecordingSink()
    result = runner.run(
        RunRequest(_put(session, bundle), "main.py", ("model/w.txt",)), session, sink
    )
    assert result.exit_status != 0
    assert SECRET not in sink.out


def test_entrypoint_works_in_the_session_folder_and_finds_its_files_by_its_location(
    env,
) -> None:
    runner, _, session, _ = env
    script = (
        b"import os, pathlib, sys\n"
        b"print(sorted(os.listdir('.')), flush=True)\n"
        b"own = pathlib.Path(__file__).parent / 'model' / 'w.txt'\n"
        b"print(own.read_text() == 'weights', flush=True)\n"
    )
    bundle = make_bundle({"main.py": script, "model/w.txt": b"weights"})
    sink = RecordingSink()
    result = runner.run(RunRequest(_put(session, bundle), "main.py"), session, sink)
    assert result.exit_status == 0
    listed, found = sink.out.decode().splitlines()
    assert {"dataset", "model", "output"} <= set(eval(listed))
    assert "encrypted" not in listed
    assert found == "True"


# -- item 5: a run has a time limit (threat-model.md §5.5) ----------------------------------

SLEEPER = b"import time; print('started', flush=True); time.sleep(600)"


def test_run_past_the_users_time_limit_is_killed_and_wiped(env) -> None:
    runner, _, session, ram = env
    path = _put(session, make_bundle({"main.py": SLEEPER}))
    sink = RecordingSink()
    with pytest.raises(RunTimedOutError) as info:
        runner.run(RunRequest(path, "main.py", timeout=1), session, sink)
    assert info.value.rpc_code is ErrorCode.RUN_TIMED_OUT
    assert str(info.value) == "run timed out after 1 s"
    assert b"started" in sink.out
    assert list(ram.iterdir()) == []


def test_run_past_the_manifest_ceiling_is_killed_whatever_the_user_asks(env) -> None:
    runner, _, session, _ = env
    path = _put(session, make_bundle({"main.py": SLEEPER}, max_run_seconds=1))
    with pytest.raises(RunTimedOutError):
        runner.run(RunRequest(path, "main.py", timeout=3600), session, RecordingSink())


@pytest.mark.parametrize(
    ("requested", "ceiling", "expected"),
    [(None, None, None), (5, None, 5), (None, 7, 7), (5, 7, 5), (9, 7, 7), (0, 7, 7)],
)
def test_effective_time_limit_is_the_smaller(requested, ceiling, expected) -> None:
    assert effective_timeout(requested, ceiling) == expected


def test_sample_app_does_not_load_owner_weights_through_a_users_hdf5_links(env) -> None:
    runner, _, session, _ = env
    app = Path(__file__).resolve().parents[3] / "examples" / "ml_app"
    with h5py.File(session.root / "dataset" / "evil.h5", "w") as f:
        for name in ("mean", "scale", "w1", "b1", "w2", "b2"):
            f[name] = h5py.ExternalLink("model.h5", f"/{name}")
        f.attrs["features"] = ["x"]
        f.attrs["model"] = "user"
    (session.root / "dataset" / "rows.csv").write_text("x\n1.0\n")
    bundle = make_bundle(
        {
            "ml_algorithm.py": (app / "ml_algorithm.py").read_bytes(),
            "model.h5": (app / "model.h5").read_bytes(),
        },
        entrypoints=(("ml_algorithm.py", "ml_algorithm.py"),),
    )
    args = ("-m", "/dataset/evil.h5", "-d", "/dataset/", "-o", "/output/")
    sink = RecordingSink()
    result = runner.run(RunRequest(_put(session, bundle), "ml_algorithm.py", args), session, sink)
    assert result.exit_status != 0
    assert b"loaded model" not in sink.out
    assert list((session.root / "output").iterdir()) == []
