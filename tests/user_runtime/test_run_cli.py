# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime run` against a real enclave server (fake KMS step): output, status, refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_run_server import serve_in_thread
from test_runner_kit import make_bundle

from package_format.bundle.manifest import EnvPolicy
from user_runtime._cli import main
from user_runtime.rpc.client import EnclaveClient

SCRIPT = b"""import sys
print("line one", flush=True)
print("to stderr", file=sys.stderr, flush=True)
print("args", sys.argv[1:], flush=True)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0)
"""


@pytest.fixture
def enclave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sock = tmp_path / "enclave.sock"
    ram = tmp_path / "ram"
    ram.mkdir()
    server, fs, thread = serve_in_thread(sock, ram)
    monkeypatch.setenv("NB_ENCLAVE_ADDRESS", f"unix:{sock}")
    monkeypatch.chdir(tmp_path)
    try:
        yield sock, fs, ram
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _bundle(tmp_path: Path, script: bytes = SCRIPT, **kwargs) -> Path:
    path = tmp_path / "app.nb"
    path.write_bytes(make_bundle({"main.py": script}, **kwargs))
    return path


def test_run_streams_output_and_returns_exit_status(enclave, tmp_path, capsys) -> None:
    bundle = _bundle(tmp_path, stderr=True)
    rc = main(["run", "-f", str(bundle), "-s", "main.py", "-a", "3 'two words'"])
    captured = capsys.readouterr()
    assert rc == 3
    assert "line one" in captured.out
    assert "['3', 'two words']" in captured.out
    assert captured.err == "to stderr\n"


def test_run_withholds_stderr_when_manifest_forbids(enclave, tmp_path, capsys) -> None:
    bundle = _bundle(tmp_path, stderr=False)
    rc = main(["run", "-f", str(bundle), "-s", "main.py", "-a", "4"])
    captured = capsys.readouterr()
    assert rc == 4
    assert "to stderr" not in captured.err
    assert "withheld by the bundle's policy" in captured.err


def test_run_uploads_local_bundle_into_encrypted(enclave, tmp_path, capsys) -> None:
    _sock, fs, _ram = enclave
    bundle = _bundle(tmp_path)
    assert main(["run", "-f", str(bundle), "-s", "main.py"]) == 0
    # A bundle in the session's encrypted/ folder, by its name, with no local file.
    fs.create("encrypted/app.nb", 0o644, truncate=True, exclusive=False)
    fs.write("encrypted/app.nb", 0, bundle.read_bytes())
    bundle.rename(tmp_path / "elsewhere.nb")
    assert main(["run", "-f", "app.nb", "-s", "main.py"]) == 0
    assert main(["run", "-f", "encrypted/app.nb", "-s", "main.py"]) == 0
    assert capsys.readouterr().out.count("line one") == 3
    assert fs.stat("encrypted/app.nb").size > 0  # the user's own copy is left alone


def _encrypted(fs) -> list[str]:
    return [name for name, _ in fs.listdir_page("encrypted", "", 1 << 16)[0]]


@pytest.mark.parametrize("status", [0, 3])
def test_run_removes_the_bundle_it_uploaded_when_the_run_ends(
    enclave, tmp_path, capsys, status: int
) -> None:
    _sock, fs, _ram = enclave
    bundle = _bundle(tmp_path)
    assert main(["run", "-f", str(bundle), "-s", "main.py", "-a", str(status)]) == status
    assert _encrypted(fs) == []
    assert fs.statfs()["used_bytes"] == 0


@pytest.mark.parametrize("damage", ["bad-magic", "truncated", "trailing"])
def test_run_local_file_that_is_not_a_whole_bundle_is_refused_before_upload(
    enclave, tmp_path, capsys, damage: str
) -> None:
    _sock, fs, _ram = enclave
    data = _bundle(tmp_path).read_bytes()
    data = {
        "bad-magic": b"\0" * len(data),
        "truncated": data[:-1],
        "trailing": data + b"x",
    }[damage]
    local = tmp_path / "big.nb"
    local.write_bytes(data)
    assert main(["run", "-f", str(local), "-s", "main.py"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"user-runtime: error: {local}: ")
    assert _encrypted(fs) == []
    assert fs.statfs()["used_bytes"] == 0


def test_run_shows_upload_progress_on_a_terminal(enclave, tmp_path, capsys, monkeypatch) -> None:
    bundle = _bundle(tmp_path)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["run", "-f", str(bundle), "-s", "main.py"]) == 0
    err = capsys.readouterr().err
    assert "uploading app.nb" in err  # rich: bar, bytes, rate, time left (cli.md §1.1)
    assert "MiB" in err or "KiB" in err or "bytes" in err
    assert ".partial" not in err


def test_run_upload_failure_names_the_bundle_not_a_temporary_file(tmp_path, monkeypatch, capsys):
    from user_runtime.rpc.values import RemoteError
    from user_runtime.run_upload import UploadError, upload

    class Refusing:
        def __init__(self) -> None:
            self.unlinked: list[str] = []

        def mkdir(self, path: str) -> None:
            pass

        def create(self, path: str, mode: int, *, truncate: bool) -> None:
            pass

        def flush(self, key: str) -> None:
            pass

        def write_pipelined_from(
            self, path: str, offset: int, fd: int, n: int, *, key: str
        ) -> None:
            raise RemoteError(28, "ENOSPC", f"{path}: no space left in the session")

        def unlink(self, path: str) -> None:
            self.unlinked.append(path)

    bundle = _bundle(tmp_path)
    client = Refusing()
    with pytest.raises(UploadError) as info:
        upload(client, bundle, "encrypted/app.nb")
    assert ".partial" not in str(info.value)
    assert "encrypted/app.nb: no space left in the session" in str(info.value)
    assert client.unlinked == ["encrypted/.app.nb.partial"]


def test_run_timeout_exits_124_with_one_line(enclave, tmp_path, capsys) -> None:
    _sock, fs, _ram = enclave
    slow = b"import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    bundle = _bundle(tmp_path, slow)
    assert main(["run", "-f", str(bundle), "-s", "main.py", "--timeout", "1"]) == 124
    captured = capsys.readouterr()
    assert captured.out == "started\n"
    assert captured.err == "user-runtime: error: run timed out after 1 s\n"
    assert _encrypted(fs) == []


def test_lean_entry_passes_the_timeout() -> None:
    from user_runtime._entry import parse_run

    assert parse_run(["-f", "a.nb", "-s", "m.py", "--timeout", "5"]) == {
        "file": "a.nb",
        "script": "m.py",
        "timeout": "5",
    }
    assert parse_run(["-f", "a.nb", "-s", "m.py", "--timeout", "0"]) is None  # typer: usage
    assert parse_run(["-f", "a.nb", "-s", "m.py", "--timeout", "x"]) is None


def test_run_missing_bundle_is_one_line(enclave, capsys) -> None:
    assert main(["run", "-f", "nope.nb", "-s", "main.py"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("user-runtime: error: nope.nb: not a local file")


def test_run_lists_the_files_it_produced_on_stderr(enclave, tmp_path, capsys) -> None:
    script = b"open('/output/a.csv', 'w').write('x'); open('/output/b.txt', 'w').write('y')"
    assert main(["run", "-f", str(_bundle(tmp_path, script)), "-s", "main.py"]) == 0
    assert capsys.readouterr().err == "user-runtime: output: output/a.csv output/b.txt\n"


def test_run_entrypoint_not_declared_is_one_line(enclave, tmp_path, capsys) -> None:
    bundle = _bundle(tmp_path)
    assert main(["run", "-f", str(bundle), "-s", "other.py"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "ENTRYPOINT_NOT_DECLARED" in captured.err


@pytest.mark.parametrize("args", ["a\x00b", "x" * 4097], ids=["nul", "too-long"])
def test_run_argument_exec_cannot_carry_rejected(enclave, tmp_path, capsys, args: str) -> None:
    bundle = _bundle(tmp_path)
    assert main(["run", "-f", str(bundle), "-s", "main.py", "-a", args]) == 1
    captured = capsys.readouterr()
    assert "BAD_RUN_ARGUMENT" in captured.err
    assert "line one" not in captured.out


def test_run_unbalanced_quotes_is_usage_error(enclave, tmp_path, capsys) -> None:
    bundle = _bundle(tmp_path)
    assert main(["run", "-f", str(bundle), "-s", "main.py", "-a", "'open"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("user-runtime: usage: ")
    assert "no closing quotation" in err


def test_run_without_enclave_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("NB_ENCLAVE_ADDRESS", raising=False)
    rc = main(["run", "-f", "x.nb", "-s", "main.py", "--state-dir", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no enclave is running" in err


def test_second_run_while_one_is_going_is_busy(enclave, tmp_path, capsys) -> None:
    sock, _fs, _ram = enclave
    slow = b"import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    bundle = _bundle(tmp_path, slow)
    started = threading.Event()
    with EnclaveClient.connect(f"unix:{sock}") as client:
        from user_runtime.run_upload import upload

        upload(client, bundle, "encrypted/slow.nb")
        handle = client.start_run("encrypted/slow.nb", "main.py", [])
        events = handle.events()
        first = next(events)
        assert first.data.startswith(b"started")
        started.set()
        assert main(["run", "-f", "slow.nb", "-s", "main.py"]) == 1
        assert "BUSY" in capsys.readouterr().err
        assert handle.cancel()
        with pytest.raises(Exception, match="CANCELLED"):
            list(events)


def test_console_script_bad_input_has_no_traceback(enclave, tmp_path) -> None:
    sock, _fs, _ram = enclave
    proc = subprocess.run(
        [sys.executable, "-m", "user_runtime", "run", "-f", "missing.nb", "-s", "x.py"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"NB_ENCLAVE_ADDRESS": f"unix:{sock}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_output_arrives_while_the_entrypoint_runs(enclave, tmp_path) -> None:
    # The entrypoint prints one line, then waits for a file that this test creates only after
    # reading that line from the CLI's stdout: it exits 0 only if the line came through live.
    # The flag goes into the run's /output/ (enclave.runner.view: the run sees nothing else).
    sock, _fs, ram = enclave
    script = (
        b"import os, sys, time\n"
        b"print('first line', flush=True)\n"
        b"for _ in range(1200):\n"
        b"    if os.path.exists('/output/line-seen'):\n"
        b"        print('saw the flag', flush=True)\n"
        b"        sys.exit(0)\n"
        b"    time.sleep(0.05)\n"
        b"sys.exit(9)\n"
    )
    bundle = _bundle(tmp_path, script)
    cli = subprocess.Popen(
        [sys.executable, "-m", "user_runtime", "run", "-f", str(bundle), "-s", "main.py"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NB_ENCLAVE_ADDRESS": f"unix:{sock}"},
    )
    assert cli.stdout is not None
    assert cli.stdout.readline() == b"first line\n"
    (next(Path(ram).glob("*/session/output")) / "line-seen").touch()
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 0, err
    assert out == b"saw the flag\n"


def test_lean_entry_parses_run_options() -> None:
    from user_runtime._entry import parse_run

    assert parse_run(["-f", "a.nb", "-s", "m.py", "-a", "-d /dataset/"]) == {
        "file": "a.nb",
        "script": "m.py",
        "args": "-d /dataset/",
    }
    assert parse_run(["--file=a.nb", "--script", "m.py", "--state-dir", "st"]) == {
        "file": "a.nb",
        "script": "m.py",
        "state_dir": "st",
    }
    assert parse_run(["-f", "a.nb"]) is None  # missing -s: typer prints the usage error
    assert parse_run(["-f", "a.nb", "-s", "m.py", "--verbose"]) is None
    assert parse_run(["-f", "a.nb", "-f", "b.nb", "-s", "m.py"]) is None


def test_lean_entry_runs_without_importing_typer(enclave, tmp_path) -> None:
    sock, _fs, _ram = enclave
    bundle = _bundle(tmp_path)
    code = (
        "import sys\n"
        "from user_runtime._entry import run_fast\n"
        f"rc = run_fast(['-f', {str(bundle)!r}, '-s', 'main.py', '-a', '5'])\n"
        "print('typer loaded:', 'typer' in sys.modules, 'rc:', rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "NB_ENCLAVE_ADDRESS": f"unix:{sock}"},
    )
    assert "line one" in proc.stdout
    assert proc.stdout.strip().endswith("typer loaded: False rc: 5")


def test_console_script_usage_error_goes_through_typer(tmp_path) -> None:
    script = Path(sys.executable).parent / "user-runtime"
    proc = subprocess.run(
        [str(script), "run", "-f", "x.nb"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("user-runtime: usage: ")
    assert "Traceback" not in proc.stderr


ENV_SCRIPT = b"import os; print(os.environ['N'], os.environ['SEED'])"


def test_run_env_reaches_the_entrypoint_with_the_owners_defaults(enclave, tmp_path, capsys) -> None:
    policy = EnvPolicy(("N", "SEED"), (("N", "5"),))
    bundle = _bundle(tmp_path, ENV_SCRIPT, env=policy)
    assert main(["run", "-f", str(bundle), "-s", "main.py", "--env", "SEED=a=b c"]) == 0
    assert capsys.readouterr().out == "5 a=b c\n"


def test_run_env_name_not_allowed_is_one_line(enclave, tmp_path, capsys) -> None:
    bundle = _bundle(tmp_path, ENV_SCRIPT, env=EnvPolicy(("N",)))
    assert main(["run", "-f", str(bundle), "-s", "main.py", "--env", "SEED=1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'SEED' is not allowed by the bundle's manifest" in err
    assert "BAD_RUN_ARGUMENT" in err


def test_run_env_without_a_name_is_a_usage_error(enclave, tmp_path, capsys) -> None:
    assert main(["run", "-f", str(_bundle(tmp_path)), "-s", "main.py", "--env", "SEED"]) == 2
    assert capsys.readouterr().err.startswith("user-runtime: usage: --env: expected NAME=VALUE")


def test_lean_entry_and_typer_app_print_the_same_error_with_its_hint(
    tmp_path, monkeypatch, capsys
) -> None:
    # Issue 19: the lean entry used a copy of the shell's error mapping, without the hints.
    import user_runtime.run
    from user_runtime._entry import run_fast
    from user_runtime.errors import ExternalError

    def refuse(*_args, **_kwargs):
        raise ExternalError("the sync mount holds the enclave", hint="stop-sync")

    monkeypatch.setattr(user_runtime.run, "run_entrypoint", refuse)
    argv = ["-f", "x.nb", "-s", "main.py", "--state-dir", str(tmp_path)]
    assert run_fast(argv) == 1
    lean = capsys.readouterr().err
    assert main(["run", *argv]) == 1
    assert (
        capsys.readouterr().err
        == lean
        == (
            "user-runtime: error: the sync mount holds the enclave"
            " (hint: stop it first with user-runtime sync --stop FOLDER)\n"
        )
    )


def test_run_library_prints_nothing_and_shows_the_run_through_its_view(
    enclave, tmp_path, capsys
) -> None:
    from user_runtime.run import run_entrypoint

    class Recorder:
        def __init__(self) -> None:
            self.seen: list[tuple[str, bytes]] = []

        def output(self, stream: str, data: bytes) -> None:
            self.seen.append((stream, data))

        def sync_pending(self, pending: int) -> None:
            raise AssertionError("no sync mount here")

        def sync_done(self) -> None:
            raise AssertionError("no sync mount here")

        def upload_progress(self, label: str) -> None:
            self.seen.append((label, b""))  # no progress callback: None

        def uploads_done(self) -> None:
            self.seen.append(("uploads done", b""))

        def cancelling(self) -> None:
            raise AssertionError("no Ctrl-C here")

    bundle = _bundle(tmp_path, stderr=True)
    view = Recorder()
    result = run_entrypoint(str(bundle), "main.py", ["3"], None, view)
    assert (result.status, result.stopped, result.outputs) == (3, None, ())
    assert view.seen[:2] == [("uploading app.nb", b""), ("uploads done", b"")]
    streams = {
        stream: b"".join(d for s, d in view.seen[2:] if s == stream)
        for stream in ("stdout", "stderr")
    }
    assert streams == {"stdout": b"line one\nargs ['3']\n", "stderr": b"to stderr\n"}
    assert capsys.readouterr() == ("", "")
