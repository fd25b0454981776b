# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`local-stack up | down | status`, in-process and as the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack import stack
from local_stack._cli import main


@pytest.fixture
def state_dir(tmp_path) -> Path:
    directory = tmp_path / "state"
    yield directory
    stack.down(directory)


def test_up_status_down_cycle(state_dir, capsys):
    assert main(["up", "--state-dir", str(state_dir)]) == 0
    out, err = capsys.readouterr()
    assert "started" in err
    lines = dict(
        line.split(": ", 1) for line in out.splitlines() if not line.startswith("principal")
    )
    assert lines["kms"].startswith("http://127.0.0.1:")
    assert lines["s3"].startswith("http://127.0.0.1:")
    recorded = json.loads((state_dir / "stack.json").read_text())
    assert (state_dir / "nsm-pki" / "root.pem").is_file()  # created by up
    assert lines["nsm-root"] == str(state_dir / "nsm-pki" / "root.pem")
    assert recorded["kms_url"] == lines["kms"]

    assert main(["up", "--state-dir", str(state_dir)]) == 0
    assert "already running" in capsys.readouterr().err

    assert main(["status", "--state-dir", str(state_dir), "--json"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["running"] == {"kms": True, "moto": True}

    assert main(["down", "--state-dir", str(state_dir)]) == 0
    assert "stopped" in capsys.readouterr().err
    assert not (state_dir / "stack.json").exists()
    assert not stack.is_ours(stack.ServerProcess(recorded["kms"]["pid"], ""), "kms")

    assert main(["status", "--state-dir", str(state_dir)]) == 1
    out, err = capsys.readouterr()
    assert "not running" in out
    assert err == ""


def test_up_env_prints_export_lines_only(state_dir, capsys, monkeypatch):
    monkeypatch.setenv("NB_STATE_DIR", str(state_dir))
    assert main(["up", "--env"]) == 0
    out, _ = capsys.readouterr()
    exports = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    assert exports["AWS_ENDPOINT_URL_KMS"].startswith("http://127.0.0.1:")
    assert exports["NB_STATE_DIR"] == str(state_dir)
    assert all(line.startswith("export ") for line in out.splitlines())


def test_down_when_nothing_running(tmp_path, capsys):
    assert main(["down", "--state-dir", str(tmp_path)]) == 0
    assert "nothing running" in capsys.readouterr().err


def test_corrupt_state_file_one_line_error(tmp_path, capsys):
    (tmp_path / "stack.json").write_text("{not json")
    assert main(["status", "--state-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("local-stack: error: ")
    assert "unreadable stack state" in err
    assert len(err.splitlines()) == 1


def test_bad_port_is_usage_error(tmp_path, capsys):
    assert main(["up", "--state-dir", str(tmp_path), "--port", "70000"]) == 2
    _, err = capsys.readouterr()
    assert "1..65535" in err


def test_console_script_bad_input_no_traceback(tmp_path):
    (tmp_path / "stack.json").write_text('{"moto": 1}')
    script = Path(sys.executable).parent / "local-stack"
    result = subprocess.run(
        [str(script), "status", "--state-dir", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NB_STATE_DIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("local-stack: error: ")
    bad = subprocess.run(
        [str(script), "up", "--port", "abc"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
