# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime sync` command line: messages, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

from user_runtime._cli import main


def test_sync_stop_when_nothing_is_mounted(tmp_path, capsys):
    rc = main(["sync", "--stop", "-d", str(tmp_path / "f"), "--state-dir", str(tmp_path / "s")])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    assert out == f"not-mounted: {tmp_path / 'f'}\n"


def test_sync_stop_json_is_one_object(tmp_path, capsys):
    rc = main(
        ["sync", "--stop", "--json", "-d", str(tmp_path / "f"), "--state-dir", str(tmp_path / "s")]
    )
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    assert json.loads(out) == {"result": "not-mounted", "folder": str(tmp_path / "f")}


def test_sync_without_an_enclave_says_how_to_start_one(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NB_ENCLAVE_ADDRESS", raising=False)
    rc = main(["sync", "-d", str(tmp_path / "f"), "--state-dir", str(tmp_path / "s")])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert err.startswith("user-runtime: usage: no enclave is running: start one with")
    assert not (tmp_path / "f").exists()


def test_sync_bad_enclave_address(tmp_path, capsys):
    rc = main(
        [
            "sync",
            "-d",
            str(tmp_path / "f"),
            "--enclave",
            "tcp:1.2.3.4:5",
            "--state-dir",
            str(tmp_path),
        ]
    )
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert (
        err
        == "user-runtime: usage: bad enclave address 'tcp:1.2.3.4:5': use unix:/PATH, vsock:CID:PORT or uds-vsock:/PATH:PORT\n"
    )


def test_sync_refuses_a_non_empty_folder(tmp_path, capsys):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    rc = main(
        [
            "sync",
            "-d",
            str(folder),
            "--enclave",
            f"unix:{tmp_path}/none.sock",
            "--state-dir",
            str(tmp_path),
        ]
    )
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert (
        err
        == f"user-runtime: usage: {folder}: not empty; sync mounts an empty folder (its files live in the store)\n"
    )
    assert (folder / "mine.txt").read_text() == "keep me"


def test_sync_refuses_a_store_inside_the_folder(tmp_path, capsys):
    rc = main(
        [
            "sync",
            "-d",
            str(tmp_path / "f"),
            "--store",
            str(tmp_path / "f" / "st"),
            "--enclave",
            f"unix:{tmp_path}/none.sock",
            "--state-dir",
            str(tmp_path),
        ]
    )
    _, err = capsys.readouterr()
    assert rc == 2
    assert (
        err
        == f"user-runtime: usage: {tmp_path / 'f' / 'st'}: the store cannot live inside the synced folder\n"
    )


def test_sync_foreground_with_unreachable_enclave_fails_cleanly(tmp_path, capsys):
    rc = main(
        [
            "sync",
            "-d",
            str(tmp_path / "f"),
            "--enclave",
            f"unix:{tmp_path}/none.sock",
            "--state-dir",
            str(tmp_path / "s"),
            "--foreground",
        ]
    )
    out, err = capsys.readouterr()
    assert (rc, out) == (1, "")
    assert err.startswith(f"user-runtime: error: unix:{tmp_path}/none.sock: enclave unreachable:")
    assert "\n" not in err.rstrip("\n")


def test_sync_daemon_reports_the_daemons_error_without_traceback(tmp_path):
    # the real console script, backgrounding: the child's failure becomes one line, exit 1
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "user_runtime",
            "sync",
            "-d",
            str(tmp_path / "f"),
            "--enclave",
            f"unix:{tmp_path}/none.sock",
            "--state-dir",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("user-runtime: error: ")
    assert "enclave unreachable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sync_usage_error_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "user_runtime", "sync", "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
