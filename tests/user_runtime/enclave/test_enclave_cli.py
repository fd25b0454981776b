# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime enclave start/status/stop`: the local enclave from a real EIF, and nitro-cli."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enclave.nsm.simulator import create_sim_pki
from owner_tools._cli import main as owner_main
from user_runtime._cli import main
from user_runtime.enclave import backend as enclave_backend

REPO = Path(__file__).resolve().parents[3]
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """An EIF built by `owner-tools build-eif` with the dev blobs, and its PCRs."""
    work = tmp_path_factory.mktemp("image")
    assert owner_main(["keygen", "-o", str(work / "owner")]) == 0
    eif = work / "app.eif"
    args = ["build-eif", "-o", str(eif), "--blobs", str(BLOBS), "--owner-key"]
    assert owner_main([*args, str(work / "owner.pub")]) == 0
    described = json.loads((work / "app.eif.pcrs.json").read_text())
    pcrs = described.get("Measurements", described)
    return eif, {k: v for k, v in pcrs.items() if k.startswith("PCR")}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pki = tmp_path / "pki"
    create_sim_pki(pki)
    monkeypatch.setenv("NB_SIM_PKI_DIR", str(pki))
    monkeypatch.delenv("AWS_ENDPOINT_URL_KMS", raising=False)
    state_dir = tmp_path / "state"
    try:
        yield state_dir
    finally:
        main(["enclave", "stop", "--state-dir", str(state_dir)])


def _start(eif: Path, state_dir: Path, capsys, *extra: str) -> dict:
    assert main(["enclave", "start", "--eif", str(eif), "--state-dir", str(state_dir), *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _server_pid(status: dict) -> int:
    children = Path(f"/proc/{status['pid']}/task/{status['pid']}/children").read_text().split()
    return int(children[0]) if children else status["pid"]


def test_start_status_stop(image, state, capsys) -> None:
    eif, pcrs = image
    started = _start(eif, state, capsys)
    assert started["running"] is True
    assert started["pcrs"] == pcrs
    assert started["debug"] is False
    assert Path(started["socket"]).exists()
    assert main(["enclave", "status", "--state-dir", str(state)]) == 0
    assert json.loads(capsys.readouterr().out)["pid"] == started["pid"]
    ram = Path(json.loads((state / "enclave" / "state.json").read_text())["ram_dir"])
    assert stat.S_IMODE(ram.stat().st_mode) == 0o700
    assert main(["enclave", "stop", "--state-dir", str(state)]) == 0
    assert "stopped" in capsys.readouterr().err
    assert not ram.exists()
    assert main(["enclave", "status", "--state-dir", str(state)]) == 1
    assert json.loads(capsys.readouterr().out) == {"running": False}


def test_server_code_comes_from_the_image(image, state, capsys) -> None:
    eif, _ = image
    started = _start(eif, state, capsys)
    ram = json.loads((state / "enclave" / "state.json").read_text())["ram_dir"]
    pid = _server_pid(started)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"PYTHONPATH={ram}/code".encode() in environ
    code = Path(ram) / "code"
    assert (code / "enclave" / "runner" / "runner.py").is_file()
    assert (code / "package_format" / "bundle" / "reader.py").is_file()
    assert json.loads((Path(ram) / "etc" / "enclave.json").read_text())["owner_keys"]


def test_image_without_a_rootfs_runs_on_the_host_python_with_a_warning(
    image, state, capsys
) -> None:
    eif, _ = image
    assert main(["enclave", "start", "--eif", str(eif), "--state-dir", str(state)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["world"] == "host"
    assert (
        "user-runtime: warning: the image has no /opt/nitro-bundles/venv/bin/python3 "
        "(built without a --rootfs that provides it): the enclave server and entrypoints run "
        "on the host's Python"
    ) in captured.err


def test_image_world_demanded_without_a_rootfs_is_refused(
    image, state, capsys, monkeypatch
) -> None:
    eif, _ = image
    monkeypatch.setenv("NB_LOCAL_WORLD", "image")
    assert main(["enclave", "start", "--eif", str(eif), "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "NB_LOCAL_WORLD=image: the image has no /opt/nitro-bundles/venv/bin/python3" in err
    assert not (state / "enclave" / "state.json").exists()


def test_debug_mode_reports_zero_pcrs(image, state, capsys) -> None:
    eif, pcrs = image
    started = _start(eif, state, capsys, "--debug-mode")
    assert started["debug"] is True
    assert started["pcrs"]["PCR0"] == "00" * 48
    assert started["pcrs"]["PCR2"] == "00" * 48
    pid = _server_pid(started)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"NB_SIM_DEBUG=1" in environ
    assert pcrs["PCR0"] != "00" * 48


def test_second_start_while_running_is_refused(image, state, capsys) -> None:
    eif, _ = image
    _start(eif, state, capsys)
    rc = main(["enclave", "start", "--eif", str(eif), "--state-dir", str(state)])
    assert rc == 1
    assert "already running" in capsys.readouterr().err


def test_start_after_enclave_was_killed_works(image, state, capsys) -> None:
    eif, _ = image
    first = _start(eif, state, capsys)
    ram = json.loads((state / "enclave" / "state.json").read_text())["ram_dir"]
    os.killpg(first["pid"], signal.SIGKILL)
    for _ in range(200):  # hang guard while the kernel reaps the group
        if not Path(f"/proc/{first['pid']}").exists():
            break
        time.sleep(0.05)
    assert main(["enclave", "status", "--state-dir", str(state)]) == 1
    capsys.readouterr()
    second = _start(eif, state, capsys)
    assert second["pid"] != first["pid"]
    assert not Path(ram).exists()


def test_network_isolated_when_root(image, state, capsys) -> None:
    eif, _ = image
    started = _start(eif, state, capsys)
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root here")
    assert started["network_isolated"] is True
    pid = _server_pid(started)
    assert Path(f"/proc/{pid}/ns/net").readlink() != Path("/proc/self/ns/net").readlink()


def _mounts(pid: int | str) -> dict[str, tuple[str, str]]:
    """mount point -> (fs type, super options) from /proc/PID/mountinfo."""
    out = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        tail = fields[fields.index("-") + 1 :]
        out[fields[4]] = (tail[0], tail[2] if len(tail) > 2 else "")
    return out


def test_work_dir_is_a_private_tmpfs_when_root(image, state, capsys) -> None:
    eif, _ = image
    started = _start(eif, state, capsys, "--memory", "512")
    if os.geteuid() != 0:
        pytest.skip("mount namespaces need root here")
    recorded = json.loads((state / "enclave" / "state.json").read_text())
    assert recorded["private_mount"] is True
    work = f"{recorded['ram_dir']}/work"
    pid = _server_pid(started)
    assert Path(f"/proc/{pid}/ns/mnt").readlink() != Path("/proc/self/ns/mnt").readlink()
    fstype, options = _mounts(pid)[work]
    assert fstype == "tmpfs"
    assert "mode=700" in options
    assert "size=524288k" in options
    shmem = Path("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
    if shmem.exists() and "[deny]" not in shmem.read_text():
        assert "huge=within_size" in options
    # The host (outside the namespace) sees only the empty mount point.
    assert work not in _mounts("self")
    assert list(Path(work).iterdir()) == []
    inside = Path(f"/proc/{pid}/root{work}")
    assert stat.S_IMODE(inside.stat().st_mode) == 0o700


def test_bad_image_is_one_line(tmp_path, state, capsys) -> None:
    bad = tmp_path / "bad.eif"
    bad.write_bytes(b"not an eif" * 100)
    rc = main(["enclave", "start", "--eif", str(bad), "--state-dir", str(state)])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("user-runtime: error: ")
    assert not (state / "enclave" / "state.json").exists()


def test_stop_without_enclave_is_one_line(state, capsys) -> None:
    assert main(["enclave", "stop", "--state-dir", str(state)]) == 1
    assert "no enclave is running" in capsys.readouterr().err


def test_nitro_host_drives_nitro_cli(image, state, tmp_path, monkeypatch, capsys) -> None:
    eif, _ = image
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "nitro-cli"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'case "$1" in\n'
        '  run-enclave) echo \'{"EnclaveID": "i-abc-enc1", "EnclaveCID": 16}\' ;;\n'
        '  describe-enclaves) echo \'[{"EnclaveID": "i-abc-enc1"}]\' ;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(enclave_backend, "nitro_available", lambda: True)
    started = _start(eif, state, capsys, "--memory", "4096", "--debug-mode")
    assert started["mode"] == "nitro"
    assert started["address"] == "vsock:16:5005"
    assert started["enclave_id"] == "i-abc-enc1"
    assert main(["enclave", "stop", "--state-dir", str(state)]) == 0
    lines = calls.read_text().splitlines()
    assert lines[0] == f"run-enclave --eif-path {eif} --memory 4096 --cpu-count 2 --debug-mode"
    assert "terminate-enclave --enclave-id i-abc-enc1" in lines


def test_console_script_bad_image_no_traceback(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "user_runtime", "enclave", "start", "--eif", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "NB_STATE_DIR": str(tmp_path / "st")},
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_attestation_fetch_returns_a_fresh_document_bound_to_the_nonce(
    image, state, capsys, tmp_path
) -> None:
    eif, pcrs = image
    _start(eif, state, capsys)
    nonce = os.urandom(32).hex()
    root = Path(os.environ["NB_SIM_PKI_DIR"]) / "root.pem"
    out = tmp_path / "fresh.cose"
    argv = ["attestation", "fetch", "--nonce", nonce, "--root", str(root), "--out", str(out)]
    assert main([*argv, "--state-dir", str(state)]) == 0
    fetched = json.loads(capsys.readouterr().out)
    assert fetched["verified"] is True
    assert fetched["nonce"] == nonce
    assert {f"PCR{k}": v for k, v in fetched["pcrs"].items() if f"PCR{k}" in pcrs} == pcrs
    # the saved document verifies on its own, and a replay of it answers no other nonce
    from user_runtime.attestation import NonceMismatchError, verify_fresh

    with pytest.raises(NonceMismatchError):
        verify_fresh(out.read_bytes(), nonce=os.urandom(32), root_path=root)


def test_attestation_fetch_refuses_a_bad_nonce(state, capsys) -> None:
    assert main(["attestation", "fetch", "--nonce", "xyz", "--state-dir", str(state)]) == 2
    assert "--nonce" in capsys.readouterr().err


def test_enclave_logs_without_an_enclave_is_one_line(state, capsys) -> None:
    assert main(["enclave", "logs", "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err
    assert "no enclave logs" in err
    assert len(err.strip().splitlines()) == 1


def test_enclave_logs_follow_prints_appended_lines(tmp_path) -> None:
    import io
    import threading

    from user_runtime.enclave.logs import follow_logs

    log = tmp_path / "console.log"
    log.write_bytes(b"first\n")
    out = io.BytesIO()

    def append() -> None:
        time.sleep(0.3)
        with log.open("ab") as f:
            f.write(b"second\n")

    writer = threading.Thread(target=append)
    writer.start()
    follow_logs([log], out, follow=True, stop_after=1.5)
    writer.join()
    assert out.getvalue() == b"first\nsecond\n"


def test_stop_ends_the_kms_relay(image, state, capsys) -> None:
    """`enclave stop` ends the relay it started (its pid is checked by its command line)."""
    eif, _ = image
    _start(eif, state, capsys, "--kms-endpoint", "http://127.0.0.1:9")
    relay = json.loads((state / "enclave" / "state.json").read_text())["relay_pid"]
    assert relay is not None
    assert b"user_runtime.enclave.relay" in Path(f"/proc/{relay}/cmdline").read_bytes()
    assert main(["enclave", "stop", "--state-dir", str(state)]) == 0
    try:  # gone, or dead and not yet reaped (a child of this test process)
        status = Path(f"/proc/{relay}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        status = "gone"
    assert status in {"gone", "Z"}
