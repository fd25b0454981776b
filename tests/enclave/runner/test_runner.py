# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The runner against real bundles with a fake KMS step: one test per attack (issue 5 item 2)."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_runner_kit import (
    OTHER_SEED,
    DirSession,
    FakeKeyRelease,
    RecordingSink,
    make_bundle,
    owner_key,
    scan_for,
)

from enclave.runner.api import RunRequest
from enclave.runner.bundle import open_bundle
from enclave.runner.errors import (
    BadRunArgumentError,
    BundleExpiredRunError,
    BundleInvalidError,
    BundleNotYetValidRunError,
    BundleRollbackError,
    EntrypointNotDeclaredError,
    KeyReleaseError,
    RunSetupError,
    UntrustedBundleSignerError,
)
from enclave.runner.runner import Runner, RunnerConfig, generic_failure_message, version_key
from package_format.rpc.codes import ErrorCode

SECRET = b"OWNER-SECRET-7f3a9c"
NOW = datetime(2026, 1, 1, tzinfo=UTC)

MAIN = b"""# OWNER-SECRET-7f3a9c
import sys, pathlib
print("hello from main", sys.argv[1:], flush=True)
if len(sys.argv) > 2 and sys.argv[1] == "-o":
    out = pathlib.Path(sys.argv[2])
    (out / "result.txt").write_text("result")
sys.exit(0)
"""

CRASH = b"""
def owner_function():
    raise RuntimeError("boom OWNER-SECRET-7f3a9c")  # OWNER-SECRET-7f3a9c
owner_function()
"""


PRESTART = {"on": False, "runners": []}


@pytest.fixture(autouse=True, params=[False, True], ids=["spawned", "prestarted"])
def prestart(request, monkeypatch):
    """Every runner test runs twice: interpreter started at run time, and started beforehand
    (enclave.runner.zygote, as the server does); prestarted runners are closed afterwards."""
    runners: list[Runner] = []
    monkeypatch.setitem(PRESTART, "on", request.param)
    monkeypatch.setitem(PRESTART, "runners", runners)
    yield request.param
    for runner in runners:
        runner.close()


@pytest.fixture
def env(tmp_path: Path):
    ram = tmp_path / "ram"
    ram.mkdir()
    session = DirSession(tmp_path / "session")
    yield ram, session
    for runner in PRESTART["runners"]:
        runner.close()
    assert list(ram.iterdir()) == []


def _runner(ram: Path, keys=None, *, min_versions=None, now=NOW, cache=0.0, release=None):
    config = RunnerConfig(
        trusted_keys=(owner_key(),) if keys is None else keys,
        work_base=ram,
        min_versions=min_versions or {},
        key_cache_seconds=cache,
        prestart=PRESTART["on"],
    )
    release = release or FakeKeyRelease()
    runner = Runner(config, open_bundle, release, clock=lambda: now)
    PRESTART["runners"].append(runner)
    runner.warm()  # as the server does at start-up: the first run finds its interpreter
    runner.settle()
    return runner, release


def _put(session: DirSession, data: bytes, name: str = "app.nb") -> str:
    (session.root / "encrypted" / name).write_bytes(data)
    return f"encrypted/{name}"


def _assert_no_plaintext(ram: Path, session: DirSession) -> None:
    assert list(ram.iterdir()) == []
    assert scan_for(ram, [SECRET]) == []
    assert scan_for(session.root, [SECRET]) == []


def test_run_streams_stdout_and_copies_outputs(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}))
    runner, release = _runner(ram)
    sink = RecordingSink()
    result = runner.run(RunRequest(path, "main.py", ("-o", "/output/")), session, sink)
    assert result.exit_status == 0
    assert release.calls == 1
    assert b"hello from main" in sink.out
    assert (session.root / "output" / "result.txt").read_text() == "result"
    assert result.outputs == ("output/result.txt",)
    _assert_no_plaintext(ram, session)


WRITE_ONE = b"import sys; open('/output/' + sys.argv[1], 'w').write(sys.argv[1])"


def test_output_holds_the_last_runs_files_only(env) -> None:
    # specs/sync.md §2: output/ is emptied when a run's entrypoint starts.
    ram, session = env
    (session.root / "output" / "stale.txt").write_text("from an earlier run")
    path = _put(session, make_bundle({"main.py": WRITE_ONE}))
    runner, _ = _runner(ram)
    first = runner.run(RunRequest(path, "main.py", ("a.txt",)), session, RecordingSink())
    assert first.outputs == ("output/a.txt",)
    second = runner.run(RunRequest(path, "main.py", ("b.txt",)), session, RecordingSink())
    assert second.outputs == ("output/b.txt",)
    assert sorted(p.name for p in (session.root / "output").iterdir()) == ["b.txt"]


def test_refused_run_leaves_output_untouched(env) -> None:
    ram, session = env
    (session.root / "output" / "kept.txt").write_text("kept")
    path = _put(session, make_bundle({"main.py": WRITE_ONE}))
    runner, _ = _runner(ram)
    with pytest.raises(EntrypointNotDeclaredError):
        runner.run(RunRequest(path, "other.py", ("b.txt",)), session, RecordingSink())
    assert [p.name for p in (session.root / "output").iterdir()] == ["kept.txt"]


def test_entrypoint_not_declared_rejected(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN, "helper.py": b"print(1)"}))
    runner, release = _runner(ram)
    with pytest.raises(EntrypointNotDeclaredError) as info:
        runner.run(RunRequest(path, "helper.py"), session, RecordingSink())
    assert info.value.rpc_code is ErrorCode.ENTRYPOINT_NOT_DECLARED
    assert release.calls == 0
    _assert_no_plaintext(ram, session)


@pytest.mark.parametrize(
    "entry", ["dataset/evil.py", "../session/dataset/evil.py", "/dataset/evil.py"]
)
def test_user_script_in_session_rejected(env, entry: str) -> None:
    ram, session = env
    (session.root / "dataset" / "evil.py").write_text("print(open('main.py').read())")
    path = _put(session, make_bundle({"main.py": MAIN}))
    runner, release = _runner(ram)
    sink = RecordingSink()
    with pytest.raises(EntrypointNotDeclaredError):
        runner.run(RunRequest(path, entry), session, sink)
    assert release.calls == 0
    assert sink.out == b""


def test_untrusted_signer_rejected_before_kms(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}, seed=OTHER_SEED))
    runner, release = _runner(ram)
    with pytest.raises(UntrustedBundleSignerError) as info:
        runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    assert info.value.rpc_code is ErrorCode.UNTRUSTED_SIGNER
    assert release.calls == 0
    _assert_no_plaintext(ram, session)  # nothing laid out for an unverified bundle


def test_expired_bundle_rejected_before_kms(env) -> None:
    ram, session = env
    expires = int(NOW.timestamp()) - 1
    path = _put(session, make_bundle({"main.py": MAIN}, expires=expires))
    runner, release = _runner(ram)
    with pytest.raises(BundleExpiredRunError) as info:
        runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    assert info.value.rpc_code is ErrorCode.BUNDLE_EXPIRED
    assert release.calls == 0


def test_not_yet_valid_bundle_rejected(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}, not_before=int(NOW.timestamp()) + 60))
    runner, release = _runner(ram)
    with pytest.raises(BundleNotYetValidRunError):
        runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    assert release.calls == 0


def test_older_version_than_image_minimum_rejected(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}, version="1.0.0"))
    runner, release = _runner(ram, min_versions={"demo": "1.2.0"})
    with pytest.raises(BundleRollbackError):
        runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    assert release.calls == 0


def test_tampered_payload_rejected_and_wiped(env) -> None:
    ram, session = env
    data = bytearray(make_bundle({"main.py": MAIN, "zdata.bin": b"x" * 5000}))
    data[-20] ^= 1
    path = _put(session, bytes(data))
    runner, _ = _runner(ram)
    with pytest.raises(BundleInvalidError):
        runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    _assert_no_plaintext(ram, session)


def test_wrong_data_key_rejected(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}))
    runner, _ = _runner(ram, release=FakeKeyRelease(b"W" * 32))
    with pytest.raises(BundleInvalidError):
        runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    _assert_no_plaintext(ram, session)


def test_key_release_failure_is_typed(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}))

    def deny(*_args):
        raise RuntimeError("access denied by key policy")

    runner, _ = _runner(ram, release=deny)
    with pytest.raises(KeyReleaseError) as info:
        runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    assert info.value.rpc_code is ErrorCode.KEY_RELEASE_FAILED


@pytest.mark.parametrize("arg", ["a\x00b", "x" * 4097], ids=["nul", "too-long"])
def test_bad_run_argument_rejected_before_kms(env, arg: str) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}))
    runner, release = _runner(ram)
    with pytest.raises(BadRunArgumentError) as info:
        runner.run(RunRequest(path, "main.py", ("-x", arg)), session, RecordingSink())
    assert info.value.rpc_code is ErrorCode.BAD_RUN_ARGUMENT
    assert release.calls == 0


def test_too_many_run_arguments_rejected_before_kms(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}))
    runner, release = _runner(ram)
    with pytest.raises(BadRunArgumentError):
        runner.run(RunRequest(path, "main.py", ("x",) * 257), session, RecordingSink())
    assert release.calls == 0


def test_symlink_in_the_dataset_does_not_reach_the_enclaves_files(env) -> None:
    ram, session = env
    secret = session.root / "encrypted" / "secret.txt"
    secret.write_bytes(SECRET)
    (session.root / "dataset" / "link.csv").symlink_to("/encrypted/secret.txt")
    script = b"import sys; print(open(sys.argv[1], 'rb').read())"
    path = _put(session, make_bundle({"main.py": script}, stderr=True))
    runner, _ = _runner(ram)
    sink = RecordingSink()
    result = runner.run(RunRequest(path, "main.py", ("/dataset/link.csv",)), session, sink)
    assert result.exit_status == 1
    assert b"FileNotFoundError" in sink.err
    assert SECRET not in sink.out
    secret.unlink()
    _assert_no_plaintext(ram, session)


def test_dataset_argument_is_passed_unchanged(env) -> None:
    ram, session = env
    (session.root / "dataset" / "rows.csv").write_text("a,b\n1,2\n")
    script = b"import sys, pathlib; print(sys.argv[1], pathlib.Path(sys.argv[1], 'rows.csv').read_text())"
    path = _put(session, make_bundle({"main.py": script}))
    runner, _ = _runner(ram)
    sink = RecordingSink()
    assert runner.run(RunRequest(path, "main.py", ("/dataset/",)), session, sink).exit_status == 0
    assert sink.out.startswith(b"/dataset/ a,b\n1,2")


def test_traceback_withheld_when_stderr_not_allowed(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": CRASH}, stderr=False))
    runner, _ = _runner(ram)
    sink = RecordingSink()
    result = runner.run(RunRequest(path, "main.py"), session, sink)
    assert result.exit_status == 1
    assert result.stderr_withheld
    assert bytes(sink.err) == generic_failure_message(1)
    assert SECRET not in sink.out + sink.err
    assert b"owner_function" not in sink.out + sink.err
    _assert_no_plaintext(ram, session)


def test_traceback_forwarded_when_stderr_allowed(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": CRASH}, stderr=True))
    runner, _ = _runner(ram)
    sink = RecordingSink()
    result = runner.run(RunRequest(path, "main.py"), session, sink)
    assert result.exit_status == 1
    assert b"Traceback" in sink.err
    assert b"owner_function" in sink.err


def test_stdout_withheld_when_not_allowed(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}, stdout=False))
    runner, _ = _runner(ram)
    sink = RecordingSink()
    assert runner.run(RunRequest(path, "main.py"), session, sink).exit_status == 0
    assert sink.out == b""


def test_outputs_not_copied_when_files_not_allowed(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}, allow_files=False))
    runner, _ = _runner(ram)
    result = runner.run(RunRequest(path, "main.py", ("-o", "/output/")), session, RecordingSink())
    assert result.exit_status == 0
    assert result.outputs == ()
    assert list((session.root / "output").iterdir()) == []


def test_exit_status_is_the_entrypoints(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": b"import sys; sys.exit(7)"}, stderr=True))
    runner, _ = _runner(ram)
    assert runner.run(RunRequest(path, "main.py"), session, RecordingSink()).exit_status == 7


def test_entrypoint_by_name(env) -> None:
    ram, session = env
    bundle = make_bundle({"app/main.py": MAIN}, entrypoints=(("score", "app/main.py"),))
    path = _put(session, bundle)
    runner, _ = _runner(ram)
    sink = RecordingSink()
    assert runner.run(RunRequest(path, "score"), session, sink).exit_status == 0
    assert b"hello from main" in sink.out


def test_stdout_arrives_while_entrypoint_runs(env, tmp_path: Path) -> None:
    # The script prints, then waits for a file the sink creates (in the run's /output/)
    # when that line arrives: it exits 0 only if the line reached the sink before it ended.
    ram, session = env
    script = (
        b"import os, time\n"
        b"print('first line', flush=True)\n"
        b"for _ in range(600):\n"
        b"    if os.path.exists('/output/seen'):\n"
        b"        raise SystemExit(0)\n"
        b"    time.sleep(0.05)\n"
        b"raise SystemExit(5)\n"
    )
    path = _put(session, make_bundle({"main.py": script}))
    runner, _ = _runner(ram)

    def touch(data: bytes) -> None:
        if b"first line" in data:
            (next(ram.glob("*/session/output")) / "seen").touch()

    sink = RecordingSink(on_stdout=touch)
    assert runner.run(RunRequest(path, "main.py"), session, sink).exit_status == 0


def test_cancel_kills_process_group_and_wipes(env, tmp_path: Path) -> None:
    ram, session = env
    marker = f"sleeper-{os.getpid()}-{id(tmp_path)}"
    script = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    ).encode()
    path = _put(session, make_bundle({"main.py": script + b"# OWNER-SECRET-7f3a9c\n"}))
    runner, _ = _runner(ram)
    sink = RecordingSink(on_stdout=lambda data: threading.Thread(target=runner.cancel).start())
    result = runner.run(RunRequest(path, "main.py"), session, sink)
    assert result.cancelled
    assert result.exit_status == 128 + 9
    _wait_gone(marker)
    _assert_no_plaintext(ram, session)


def _running(marker: str) -> list[Path]:
    """Live (not zombie) processes whose command line holds `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            mine = marker.encode() in (proc / "cmdline").read_bytes()
            if mine and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(proc)
        except OSError:
            continue
    return found


def _wait_gone(marker: str) -> None:
    # The child was killed with its namespace; it is gone once no process carries the marker.
    for _ in range(200):
        if not _running(marker):
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"{marker} still running")


def test_sink_failure_kills_run_and_wipes(env) -> None:
    ram, session = env
    script = b"import time\nprint('x', flush=True)\ntime.sleep(600)\n# OWNER-SECRET-7f3a9c\n"
    path = _put(session, make_bundle({"main.py": script}))
    runner, _ = _runner(ram)

    def gone(_data: bytes) -> None:
        raise BrokenPipeError("client went away")

    with pytest.raises(BrokenPipeError):
        runner.run(RunRequest(path, "main.py"), session, RecordingSink(on_stdout=gone))
    _assert_no_plaintext(ram, session)


def test_key_cache_skips_second_release(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN}))
    runner, release = _runner(ram, cache=300.0)
    runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    assert release.calls == 1


def test_version_order() -> None:
    assert version_key("1.0.0-rc.1") < version_key("1.0.0") < version_key("1.0.1")
    assert version_key("1.10.0") > version_key("1.9.9")
    with pytest.raises(BundleInvalidError):
        version_key("1.0")


BIG = bytes(range(256)) * 1024 + SECRET  # > 64 KiB: the parallel path, laid out in advance


def test_files_are_laid_out_presized_during_key_release_without_plaintext(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN, "weights.bin": BIG}))
    seen: dict[str, object] = {}
    inner = FakeKeyRelease()

    def release(*args):
        # Runs while the other thread lays out the files: wait for them (bounded), look.
        for _ in range(500):
            apps = list(ram.glob("*/app-*/weights.bin"))
            if apps and apps[0].stat().st_size == len(BIG):
                break
            threading.Event().wait(0.01)
        weights = next(ram.glob("*/app-*/weights.bin"))
        seen["size"] = weights.stat().st_size
        seen["zeros"] = weights.read_bytes() == bytes(len(BIG))
        seen["mode"] = weights.parent.stat().st_mode & 0o777
        seen["secret"] = scan_for(ram, [SECRET])
        return inner(*args)

    runner, _ = _runner(ram, release=release)
    result = runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    assert result.exit_status == 0
    assert seen == {"size": len(BIG), "zeros": True, "mode": 0o700, "secret": []}
    _assert_no_plaintext(ram, session)


def test_key_release_failure_removes_the_laid_out_files(env) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN, "weights.bin": BIG}))

    def deny(*_args):
        raise RuntimeError("access denied by key policy")

    runner, _ = _runner(ram, release=deny)
    with pytest.raises(KeyReleaseError):
        runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    _assert_no_plaintext(ram, session)


def test_files_that_do_not_fit_fail_as_setup_error(env, monkeypatch) -> None:
    ram, session = env
    path = _put(session, make_bundle({"main.py": MAIN, "weights.bin": BIG}))

    def no_space(fd: int, offset: int, size: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    runner, _ = _runner(ram)
    with pytest.raises(RunSetupError) as info:
        runner.run(RunRequest(path, "main.py"), session, RecordingSink())
    assert "no space left on device" in str(info.value)
    _assert_no_plaintext(ram, session)
