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

from user_runtime._cli import main
from user_runtime.rpc_client import EnclaveClient

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
    assert fs.stat("encrypted/app.nb").size == bundle.stat().st_size
    # Now by its name in the session's encrypted/ folder, with no local file.
    bundle.rename(tmp_path / "elsewhere.nb")
    assert main(["run", "-f", "app.nb", "-s", "main.py"]) == 0
    assert main(["run", "-f", "encrypted/app.nb", "-s", "main.py"]) == 0
    assert capsys.readouterr().out.count("line one") == 3


def test_run_missing_bundle_is_one_line(enclave, capsys) -> None:
    assert main(["run", "-f", "nope.nb", "-s", "main.py"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("user-runtime: error: nope.nb: not a local file")


def test_run_entrypoint_not_declared_is_one_line(enclave, tmp_path, capsys) -> None:
    bundle = _bundle(tmp_path)
    assert main(["run", "-f", str(bundle), "-s", "other.py"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "ENTRYPOINT_NOT_DECLARED" in captured.err


@pytest.mark.parametrize("args", ["../main.py", "/etc/passwd", "//dataset/", "/dataset/../x"])
def test_run_bad_path_argument_rejected(enclave, tmp_path, capsys, args: str) -> None:
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
        from user_runtime.run import upload

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
    sock, _fs, _ram = enclave
    flag = tmp_path / "line-seen"
    script = (
        "import os, sys, time\n"
        "print('first line', flush=True)\n"
        "for _ in range(1200):\n"
        f"    if os.path.exists({str(flag)!r}):\n"
        "        print('saw the flag', flush=True)\n"
        "        sys.exit(0)\n"
        "    time.sleep(0.05)\n"
        "sys.exit(9)\n"
    ).encode()
    bundle = _bundle(tmp_path, script)
    cli = subprocess.Popen(
        [sys.executable, "-m", "user_runtime", "run", "-f", str(bundle), "-s", "main.py"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NB_ENCLAVE_ADDRESS": f"unix:{sock}"},
    )
    assert cli.stdout is not None
    assert cli.stdout.readline() == b"first line\n"
    flag.touch()
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
